"""What an enrolled box keeps to join its hub, in one folder (`python -m edge enroll` writes it,
the leaf nats-server and `edge check` read it): the TLS key (made on the box) and the client
certificate the hub signed, the hub's CA, the leaf credential (0600), and the agent's password on
the box's own nats-server (docs/architecture.md §4.1).
"""
from __future__ import annotations

from pathlib import Path

import msgspec

from shared.enrolment import LeafCredential
from shared.nats_server import (AGENT_USER, EdgeNatsConfig, LeafRemote, NatsConfigError, NatsUser, TlsFiles,
                                ensure_password_file, hash_password)
from shared.private_file import read_private_file, write_private_file
from shared.subjects import edge_inbox_prefix


class EdgeNatsAuth:
    """One edge's leaf key, certificate, credentials and agent password, under `directory`."""

    def __init__(self, directory: Path, edge_id: str) -> None:
        self.directory = directory
        self.edge_id = edge_id
        self.key = directory / "leaf.key"
        self.cert = directory / "leaf.pem"
        self.ca = directory / "hub-ca.pem"
        self.credentials = directory / "leaf.json"
        self.agent_password_file = directory / "agent.password"

    def store(self, credential: LeafCredential, ca_pem: str, cert_pem: str) -> None:
        """Keep what the hub gave this edge at enrolment: the leaf credential, the hub's CA and
        the client certificate for the key in this folder."""
        write_private_file(self.credentials, msgspec.json.encode(credential).decode())
        write_private_file(self.ca, ca_pem)
        write_private_file(self.cert, cert_pem)

    @property
    def enrolled(self) -> bool:
        return self.credentials.exists()

    def remote(self) -> LeafRemote:
        """The leaf connection the kept credentials describe."""
        raw = read_private_file(self.credentials, "leaf credentials", NatsConfigError)
        try:
            creds = msgspec.json.decode(raw, type=LeafCredential)
        except msgspec.ValidationError as exc:
            raise NatsConfigError(f"leaf credentials {self.credentials} are damaged: {exc}") from None
        return LeafRemote(creds.url, creds.user, creds.password, TlsFiles(self.cert, self.key, self.ca))

    def server_config(self, name: str, host: str, port: int, http_port: int, store_dir: Path, domain: str,
                      extra_users: tuple[NatsUser, ...] = ()) -> EdgeNatsConfig:
        """The edge's leaf server: the agent's user (its password made the first time), the
        leaf remote with the kept credentials."""
        agent_hash = hash_password(ensure_password_file(self.agent_password_file))
        return EdgeNatsConfig(name, host, port, http_port, store_dir, domain, self.edge_id, self.remote(), agent_hash,
                              extra_users=extra_users)

    def agent_login(self) -> dict[str, str]:
        """`nats.connect` keyword arguments for the agent's user (and the inbox its permissions allow)."""
        return {"user": AGENT_USER, "password": ensure_password_file(self.agent_password_file),
                "inbox_prefix": edge_inbox_prefix(self.edge_id)}

    def edge_settings(self) -> dict[str, str]:
        """The agent's NATS settings (load_edge_config overrides)."""
        return {"nats_user": AGENT_USER, "nats_password_file": str(self.agent_password_file)}

    def edge_env(self) -> dict[str, str]:
        """The same as VIGIL_EDGE_* variables, for an agent subprocess."""
        return {"VIGIL_EDGE_NATS_USER": AGENT_USER, "VIGIL_EDGE_NATS_PASSWORD_FILE": str(self.agent_password_file)}
