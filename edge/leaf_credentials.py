"""What an enrolled box keeps to join its hub, in one folder (`python -m edge enroll` writes it,
the leaf nats-server and `edge check` read it): the TLS key (made on the box) and the client
certificate the hub signed, the hub's CA, the leaf credential (0600), the agent's password on
the box's own nats-server, and the site's robots' logins on it, as bcrypt hashes only
(docs/architecture.md §4.1, §4.4).

The box's nats.conf is rendered from these by one function, `write_site_nats_config`, at
enrolment and whenever a robot is added or removed; the server's own parameters (ports, store,
domain) are kept beside it in `nats-server.json`, so a re-render describes the same server.
"""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import msgspec

from shared import robots as robots_wire
from shared.enrolment import LeafCredential
from shared.nats_server import (AGENT_USER, EdgeNatsConfig, LeafRemote, NatsConfigError, NatsUser, TlsFiles,
                                ensure_password_file, hash_password, new_password)
from shared.private_file import read_private_file, write_private_file
from shared.subjects import edge_inbox_prefix

#: Beside nats.conf: the parameters it was rendered with.
SERVER_PARAMS_SUFFIX = ".json"


class RobotLoginError(Exception):
    """A robot login cannot be added or removed; the message says why."""


class RobotLogin(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One robot's login on the box's server: the bcrypt hash of its password, never the password."""

    password_hash: str
    added_at: datetime


class SiteServerParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What the box's nats-server was set up with at enrolment (kept in `nats-server.json`)."""

    name: str
    host: str
    port: int
    http_port: int
    store_dir: str
    domain: str
    pid_file: str = ""

    @classmethod
    def path_for(cls, conf_path: Path) -> Path:
        """Where the parameters of the config at `conf_path` are kept."""
        return conf_path.with_name(conf_path.stem + "-server" + SERVER_PARAMS_SUFFIX)

    @classmethod
    def read(cls, conf_path: Path) -> "SiteServerParams":
        """The parameters kept beside `conf_path`; NatsConfigError when they are missing or damaged."""
        path = cls.path_for(conf_path)
        raw = read_private_file(path, "the box's nats-server parameters", NatsConfigError)
        try:
            return msgspec.json.decode(raw, type=cls)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise NatsConfigError(f"{path} is damaged: {exc}") from None


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
        # Litestream's login in the box's replica account (edge.replication).
        self.replica_password_file = directory / "replica.password"
        self.robots_file = directory / "robots.json"

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
                      extra_users: tuple[NatsUser, ...] = (), pid_file: Path | None = None) -> EdgeNatsConfig:
        """The edge's leaf server: the agent's user and Litestream's (their passwords made the
        first time), the site's robots, the leaf remotes with the kept credentials."""
        agent_hash = hash_password(ensure_password_file(self.agent_password_file))
        replica_hash = hash_password(self.replica_password())
        robots = tuple((robot, login.password_hash) for robot, login in sorted(self.robot_logins().items()))
        return EdgeNatsConfig(name, host, port, http_port, store_dir, domain, self.edge_id, self.remote(), agent_hash,
                              robots=robots, extra_users=extra_users, pid_file=pid_file,
                              replica_password_hash=replica_hash)

    def replica_password(self) -> str:
        """Litestream's password in the box's replica account (made the first time)."""
        return ensure_password_file(self.replica_password_file)

    def site_server_config(self, params: SiteServerParams) -> EdgeNatsConfig:
        """The box's server as enrolment set it up, with the users as they are now."""
        return self.server_config(params.name, params.host, params.port, params.http_port, Path(params.store_dir),
                                  params.domain, pid_file=Path(params.pid_file) if params.pid_file else None)

    # --- the site's robots ------------------------------------------------------------------------

    def robot_logins(self) -> dict[str, RobotLogin]:
        """Every robot that may log in to the box's server, by id (none before the first is added)."""
        if not self.robots_file.exists():
            return {}
        raw = read_private_file(self.robots_file, "robot logins", NatsConfigError)
        try:
            return msgspec.json.decode(raw, type=dict[str, RobotLogin])
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise NatsConfigError(f"robot logins {self.robots_file} are damaged: {exc}") from None

    def add_robot(self, robot_id: str, now: datetime | None = None) -> robots_wire.RobotCredentials:
        """Make a login for `robot_id` and keep its hash; the returned credentials hold the only
        copy of its password. RobotLoginError for a bad id or one that has a login already."""
        if not robots_wire.valid_robot_id(robot_id):
            raise RobotLoginError(f"robot id {robot_id!r} must be one token of letters, digits, '-' and '_', "
                                  f"none of {sorted(robots_wire.RESERVED_ROBOT_IDS)}")
        logins = self.robot_logins()
        if robot_id in logins:
            raise RobotLoginError(f"robot {robot_id} has a login already; remove it first to give it a new one")
        password = new_password()
        logins[robot_id] = RobotLogin(hash_password(password), now or datetime.now(timezone.utc))
        self._write_robot_logins(logins)
        return robots_wire.RobotCredentials(robot_id=robot_id, user=robot_id, password=password)

    def remove_robot(self, robot_id: str) -> bool:
        """Drop the robot's login; False when it had none."""
        logins = self.robot_logins()
        if logins.pop(robot_id, None) is None:
            return False
        self._write_robot_logins(logins)
        return True

    def _write_robot_logins(self, logins: dict[str, RobotLogin]) -> None:
        write_private_file(self.robots_file, msgspec.json.encode(dict(sorted(logins.items()))).decode())

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


def write_site_nats_config(auth: EdgeNatsAuth, conf_path: Path, params: SiteServerParams | None = None) -> EdgeNatsConfig:
    """Write the box's nats.conf (0600) from `auth` as it is now, and its parameters beside it;
    without `params`, those kept from the last write. The one way that file is written."""
    if params is None:
        params = SiteServerParams.read(conf_path)
    config = auth.site_server_config(params)
    text = config.render()
    write_private_file(SiteServerParams.path_for(conf_path), msgspec.json.encode(params).decode())
    write_private_file(conf_path, text)
    return config
