"""The NATS trust boundary set up on one machine, for `make run`, the tests and the benchmarks
(docs/architecture.md §4.1).

`HubNatsAuth` keeps, in one folder, what the hub's nats-server and the hub need: the hub CA and
the leaf listener's certificate, the hub's and the system user's passwords and the users include
file. `enrol_by_hand` does in one process what enrolment does between a box (its credentials in
edge.leaf_credentials.EdgeNatsAuth) and the hub.
"""
from __future__ import annotations

from pathlib import Path

from edge.leaf_credentials import EdgeNatsAuth
from hub.nats_access import EdgeLeafUser, NatsAccess, leaf_user_name, render_users, write_users_file
from shared.enrolment import LeafCredential
from shared.nats_server import HubNatsConfig, TlsFiles, ensure_password_file, hash_password, new_password
from shared.pki import CaPaths, ensure_ca, ensure_server_cert, make_csr, sign_csr

HUB_USER = "hub"
SYSTEM_USER = "sys"


class HubNatsAuth:
    """The hub side's CA, certificate, passwords and users file, under `directory`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.users_file = directory / "users.conf"
        self.hub_password_file = directory / "hub.password"
        self.system_password_file = directory / "system.password"
        self._ca: CaPaths | None = None
        self._tls: TlsFiles | None = None

    def prepare(self, hostnames: list[str], ips: list[str]) -> None:
        """Make (or reuse) the CA, the leaf listener's certificate for these names and the
        passwords; write a users file without edges if there is none, as the server needs one
        from its first start."""
        self._ca = ensure_ca(self.directory / "ca")
        server = ensure_server_cert(self.directory / "tls", self._ca, hostnames, ips)
        self._tls = TlsFiles(server.cert, server.key, self._ca.cert)
        if not self.users_file.exists():
            self.write_users([])

    @property
    def ca(self) -> CaPaths:
        assert self._ca is not None, "prepare() first"
        return self._ca

    def write_users(self, edges: list[EdgeLeafUser]) -> None:
        """Write the users file for these edges (before the server starts; NatsAccess.apply once
        it runs)."""
        hub_password = ensure_password_file(self.hub_password_file)
        system_password = ensure_password_file(self.system_password_file)
        write_users_file(self.users_file, render_users(HUB_USER, hash_password(hub_password), SYSTEM_USER,
                                                       hash_password(system_password), edges))

    def server_config(self, name: str, host: str, port: int, leaf_port: int, http_port: int,
                      store_dir: Path) -> HubNatsConfig:
        """The hub's nats-server with these users and the leaf listener's TLS."""
        assert self._tls is not None, "prepare() first"
        return HubNatsConfig(name, host, port, leaf_port, http_port, store_dir, self.users_file, self._tls)

    def login(self) -> dict[str, str]:
        """`nats.connect` keyword arguments for the hub's service user."""
        return {"user": HUB_USER, "password": ensure_password_file(self.hub_password_file)}

    def access(self, nats_url: str) -> NatsAccess:
        """A NatsAccess on the server at `nats_url` (call its `start`)."""
        return NatsAccess(self.users_file, nats_url, hub_user=HUB_USER,
                          hub_password=ensure_password_file(self.hub_password_file),
                          system_user=SYSTEM_USER, system_password=ensure_password_file(self.system_password_file))

    def hub_settings(self, *, manage_users: bool = False, leaf_url: str = "") -> dict[str, object]:
        """The hub's NATS settings (load_hub_config overrides). With `manage_users` the hub
        applies the edges of its database to the server at start and owns the users file."""
        settings: dict[str, object] = {"nats_user": HUB_USER, "nats_password_file": str(self.hub_password_file)}
        if manage_users:
            settings["nats_access"] = {"users_file": str(self.users_file), "system_user": SYSTEM_USER,
                                       "system_password_file": str(self.system_password_file),
                                       "ca_dir": str(self.ca.key.parent), "leaf_url": leaf_url}
        return settings

    def hub_env(self, *, manage_users: bool = False, leaf_url: str = "") -> dict[str, str]:
        """The same as VIGIL_HUB_* variables, for a hub subprocess."""
        env = {"VIGIL_HUB_NATS_USER": HUB_USER, "VIGIL_HUB_NATS_PASSWORD_FILE": str(self.hub_password_file)}
        if manage_users:
            env |= {"VIGIL_HUB_NATS_ACCESS_USERS_FILE": str(self.users_file),
                    "VIGIL_HUB_NATS_ACCESS_SYSTEM_USER": SYSTEM_USER,
                    "VIGIL_HUB_NATS_ACCESS_SYSTEM_PASSWORD_FILE": str(self.system_password_file),
                    "VIGIL_HUB_NATS_ACCESS_CA_DIR": str(self.ca.key.parent),
                    "VIGIL_HUB_NATS_ACCESS_LEAF_URL": leaf_url}
        return env

    @property
    def server_tls(self) -> TlsFiles:
        """The server certificate of the hub CA (the leaf listener's, and the hub's HTTPS)."""
        assert self._tls is not None, "prepare() first"
        return self._tls

    def sign(self, edge_id: str, csr_pem: str) -> str:
        """The client certificate the hub gives an edge at enrolment, from the edge's CSR."""
        return sign_csr(self.ca, csr_pem, leaf_user_name(edge_id))


def enrol_by_hand(edge: EdgeNatsAuth, hub: HubNatsAuth, leaf_url: str) -> EdgeLeafUser:
    """What enrolment does between a box and the hub, done here in one process (tests, benchmarks):
    a fresh leaf password and a client certificate from `hub` for the edge's key, kept in the
    edge's folder; returns what the hub must apply for this edge."""
    password = new_password()
    cert_pem = hub.sign(edge.edge_id, make_csr(edge.key, leaf_user_name(edge.edge_id)))
    edge.store(LeafCredential(leaf_url, leaf_user_name(edge.edge_id), password), hub.ca.cert_pem(), cert_pem)
    return EdgeLeafUser(edge.edge_id, hash_password(password))
