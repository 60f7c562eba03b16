"""The hub's settings: defaults < TOML file < VIGIL_HUB_* environment."""
from __future__ import annotations

import functools
import ipaddress
import urllib.parse
import zoneinfo
from datetime import timedelta
from pathlib import Path

import msgspec

from shared.config import load_config

#: The libpq `target_session_attrs` values that land only on a writable server.
FAILOVER_TARGETS = ("read-write", "primary")


class IngestSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    batch: int = 512
    # A batch's bytes at most: one transaction holds its edges' rows, and a live alarm of the same
    # edge waits for it (hub/ingest/pull.py, docs/architecture.md §6.7).
    batch_max_bytes: int = 1024 * 1024
    # Ingest's own connections: the API can never take them (slow exports, a burst of requests).
    db_pool_size: int = 8
    key_cache_s: float = 5.0
    rebalance_s: float = 1.0
    stream_max_bytes: int = -1
    # An edge ts further than this from the hub's receive time is flagged; the receive time then
    # files the event (bundling windows, partition).
    clock_tolerance_s: float = 300.0

    def __post_init__(self) -> None:
        if not 1 <= self.batch <= 10_000:
            raise ValueError(f"ingest.batch must be 1..10000, got {self.batch}")
        if not 64 * 1024 <= self.batch_max_bytes <= 256 * 1024 * 1024:
            raise ValueError(f"ingest.batch_max_bytes must be 65536..268435456, got {self.batch_max_bytes}")
        if not 1 <= self.db_pool_size <= 100:
            raise ValueError(f"ingest.db_pool_size must be 1..100, got {self.db_pool_size}")
        if not 1 <= self.clock_tolerance_s <= 86_400:
            raise ValueError(f"ingest.clock_tolerance_s must be 1..86400, got {self.clock_tolerance_s}")


PRIORITIES = ("CRITICAL", "HIGH", "NORMAL", "LOW")


def _default_escalation() -> dict[str, float]:
    return {"CRITICAL": 60.0, "HIGH": 180.0}


class AlarmSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """The alarm lifecycle's tunables."""

    # A planned link stop (agent shutdown, DLOADX release) raises its LINK alarm only past this.
    planned_stop_grace_s: float = 600.0
    # Per priority: a bundle still NEW this many seconds after the hub opened it is escalated once
    # (highlighted, a supervisor notice on the stream). A priority not named never escalates: by
    # default NORMAL and LOW, which are worked in turn rather than chased.
    escalate_after_s: dict[str, float] = msgspec.field(default_factory=_default_escalation)

    def __post_init__(self) -> None:
        if not 0 <= self.planned_stop_grace_s <= 7 * 86_400:
            raise ValueError(f"alarms.planned_stop_grace_s must be 0..604800, got {self.planned_stop_grace_s}")
        for priority, seconds in self.escalate_after_s.items():
            if priority not in PRIORITIES:
                raise ValueError(f"alarms.escalate_after_s: {priority!r} is not a priority ({', '.join(PRIORITIES)})")
            if not 1 <= seconds <= 86_400:
                raise ValueError(f"alarms.escalate_after_s.{priority} must be 1..86400, got {seconds}")

    def escalation(self) -> dict[str, timedelta]:
        """The escalation thresholds per priority, for the housekeeping sweep."""
        return {p: timedelta(seconds=s) for p, s in self.escalate_after_s.items()}


class ConsoleSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """What the operator console shows by default."""

    # The IANA time zone times are shown in for users who chose none (users.time_zone).
    time_zone: str = "UTC"

    def __post_init__(self) -> None:
        if not valid_time_zone(self.time_zone):
            raise ValueError(f"console.time_zone must be an IANA time zone name, got {self.time_zone!r}")


@functools.cache
def _known_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def valid_time_zone(name: str) -> bool:
    """True for an IANA time zone name this machine knows ("Europe/Warsaw", "UTC"): listed by
    zoneinfo, so no file name or path that merely opens passes."""
    return name in _known_zones()


class AuthSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Operator authentication: token lifetimes, the secret file and the first MASTER account."""

    secret_file: str = "var/hub/secret.key"  # 32-byte AES key (0600), created at first start
    access_ttl_s: int = 900
    refresh_ttl_s: int = 7 * 24 * 3600
    issuer: str = "vigil-hub"
    audience: str = "vigil-api"
    key_rotation_days: int = 30
    master_email: str = "master@vigil.local"
    # Empty: the first start generates a one-time password, prints it once and forces a change.
    master_password: str = ""
    # A session (its refresh family) ends this long after its login, however often refreshed.
    session_max_age_days: int = 30
    # IPs/CIDRs of reverse proxies whose X-Forwarded-For names the client; from any other peer
    # the header is ignored (anyone could forge it to dodge the per-address throttle).
    trusted_proxies: list[str] = msgspec.field(default_factory=list)

    def __post_init__(self) -> None:
        if not 60 <= self.access_ttl_s <= 3600:
            raise ValueError(f"auth.access_ttl_s must be 60..3600, got {self.access_ttl_s}")
        if not self.access_ttl_s < self.refresh_ttl_s <= 90 * 24 * 3600:
            raise ValueError(f"auth.refresh_ttl_s must be above access_ttl_s and at most 90 days, got {self.refresh_ttl_s}")
        if not 1 <= self.key_rotation_days <= 365:
            raise ValueError(f"auth.key_rotation_days must be 1..365, got {self.key_rotation_days}")
        if not self.secret_file:
            raise ValueError("auth.secret_file must name a file")
        if not 1 <= self.session_max_age_days <= 365:
            raise ValueError(f"auth.session_max_age_days must be 1..365, got {self.session_max_age_days}")
        for proxy in self.trusted_proxies:
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError:
                raise ValueError(f"auth.trusted_proxies: {proxy!r} is not an IP address or CIDR") from None


class NatsAccessSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Who may connect to the hub's NATS server, managed by this hub process (hub.nats_access).

    Empty `users_file`: this process does not manage NATS users (the server is managed by another
    hub process beside it, or is an open development server). Set it on the one hub process that
    runs beside the nats-server whose `include` names that file."""

    users_file: str = ""  # the include file with the server's accounts and users (0600, rewritten)
    system_user: str = "sys"  # in the server's system account: reloads users, drops revoked leaf nodes
    system_password_file: str = ""  # 0600
    ca_dir: str = ""  # the hub CA (shared/pki.py) that signs the edges' leaf client certificates
    leaf_url: str = ""  # what edges connect to, tls://host:port, handed over at enrolment
    # What each edge's journal replica may keep in its own account on this server (bytes).
    replica_max_bytes: int = 1024 ** 3

    def __post_init__(self) -> None:
        if self.users_file and not self.system_password_file:
            raise ValueError("nats_access.system_password_file is required when nats_access.users_file is set")
        if self.replica_max_bytes < 16 * 1024 ** 2:
            raise ValueError(f"nats_access.replica_max_bytes must be at least 16 MiB, got {self.replica_max_bytes}")
        if self.leaf_url and not self.leaf_url.startswith("tls://"):
            raise ValueError(f"nats_access.leaf_url must be a tls://host:port URL (the leaf link is never plaintext), "
                             f"got {self.leaf_url!r}")


class EnrolmentSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Enrolling edge boxes (hub.edges): served on the HTTPS listener, with the CA in
    `nats_access.ca_dir` and the leaf URL in `nats_access.leaf_url`. What a new edge is told to
    run with comes from here."""

    public_url: str = ""  # the https:// URL boxes reach; empty: https://<https_host>:<https_port>
    token_ttl_h: float = 24.0
    journal_max_bytes: int = 512 * 1024 * 1024
    journal_retention_hours: float = 72.0
    forwarder_window: int = 8
    segment_max_events: int = 256

    def __post_init__(self) -> None:
        if self.public_url and not self.public_url.startswith("https://"):
            raise ValueError(f"enrolment.public_url must be an https:// URL, got {self.public_url!r}")
        if not 5 / 60 <= self.token_ttl_h <= 30 * 24:
            raise ValueError(f"enrolment.token_ttl_h must be 5 minutes .. 30 days, got {self.token_ttl_h}")


class SupervisorSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """When /readyz reports a background task as failing (shared.supervise.Supervisor): after
    `failure_threshold` failures within `window_s`."""

    failure_threshold: int = 3
    window_s: float = 300.0

    def __post_init__(self) -> None:
        if not 1 <= self.failure_threshold <= 1000:
            raise ValueError(f"supervisor.failure_threshold must be 1..1000, got {self.failure_threshold}")
        if not 1 <= self.window_s <= 86_400:
            raise ValueError(f"supervisor.window_s must be 1..86400, got {self.window_s}")


class ProbeSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """The synthetic probe (hub.probe): a probe edge silent for `missing_after_s` raises a SYSTEM
    alarm (the edge sends one every `probe.interval_s`, 300 s by default)."""

    missing_after_s: float = 600.0

    def __post_init__(self) -> None:
        if not 10 <= self.missing_after_s <= 86400:
            raise ValueError(f"probe.missing_after_s must be 10..86400, got {self.missing_after_s}")


class MetricsSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """The gauges computed from PostgreSQL (hub.db_gauges, docs/operations.md): refreshed every
    `refresh_s` by a background task, never on scrape."""

    refresh_s: float = 15.0

    def __post_init__(self) -> None:
        if not 1 <= self.refresh_s <= 3600:
            raise ValueError(f"metrics.refresh_s must be 1..3600, got {self.refresh_s}")


class DocumentSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Object documents (hub/api/documents_api.py): the largest file an upload may carry. It is held
    in memory while it streams in, then stored in PostgreSQL."""

    max_bytes: int = 20 * 1024 * 1024

    def __post_init__(self) -> None:
        if not 1024 <= self.max_bytes <= 256 * 1024 * 1024:
            raise ValueError(f"documents.max_bytes must be 1 KiB .. 256 MiB, got {self.max_bytes}")


class ReportSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Report exports: a PDF holds at most `pdf_max_rows` rows and says so when it stops there
    (CSV has no cap: it streams)."""

    pdf_max_rows: int = 5000

    def __post_init__(self) -> None:
        if not 1 <= self.pdf_max_rows <= 100_000:
            raise ValueError(f"reports.pdf_max_rows must be 1..100000, got {self.pdf_max_rows}")


class CommandSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Panel commands (hub.commands). `settle_grace_s`: how long after its expiry a SENT command
    with no result from its edge becomes TIMEOUT at the hub (the edge's late result replaces it);
    it must cover the edge link's command timeout. `publish_interval_s`: how often the outbox is
    swept for commands another hub process committed (its own are sent at once). `ack_wait_s`:
    how long an edge may take to acknowledge a command before JetStream delivers it again (the
    edge runs it at most once either way); it must exceed the edge links' longest command
    (command_timeout_s + request_timeout_s, 13 s by default)."""

    settle_grace_s: float = 30.0
    publish_interval_s: float = 1.0
    ack_wait_s: float = 30.0

    def __post_init__(self) -> None:
        if not 5 <= self.settle_grace_s <= 3600:
            raise ValueError(f"commands.settle_grace_s must be 5..3600, got {self.settle_grace_s}")
        if not 0.05 <= self.publish_interval_s <= 60:
            raise ValueError(f"commands.publish_interval_s must be 0.05..60, got {self.publish_interval_s}")
        if not 5 <= self.ack_wait_s <= 600:
            raise ValueError(f"commands.ack_wait_s must be 5..600, got {self.ack_wait_s}")


class AutoArmSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Auto-arm schedules and open/close supervision (hub.commands.scheduler). `interval_s`: how
    often a pass runs. `lookback_s`: a run due longer ago than this (no hub ran then) is recorded
    MISSED and never armed late, and a supervision deadline that old is not judged. It must
    outlast two passes, or a run due between two passes would be missed."""

    interval_s: float = 15.0
    lookback_s: float = 600.0

    def __post_init__(self) -> None:
        if not 1 <= self.interval_s <= 600:
            raise ValueError(f"auto_arm.interval_s must be 1..600, got {self.interval_s}")
        # At most an hour: an arm later than that would surprise whoever is on site by then.
        if not 2 * self.interval_s < self.lookback_s <= 3600:
            raise ValueError(f"auto_arm.lookback_s must be above twice interval_s and at most 3600, "
                             f"got {self.lookback_s}")


class RobotSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Robots (hub.robots, docs/architecture.md §5 "Robots"). `lease_ttl_s`: how long a lease
    lasts from its take or last renewal. `command_ttl_s`: how long a robot command may take to
    reach the robot (its `expires_at`). `settle_grace_s`: how long after that expiry a SENT command
    with no word from the edge becomes TIMEOUT at the hub (the edge's late word replaces it).
    `telemetry_retention_days`: telemetry older than this is dropped, a day at a time.
    `stream_telemetry_interval_s`: each live client gets at most one telemetry sample per robot
    this often (the latest). `telemetry_max_rows`: the most samples one telemetry query answers."""

    lease_ttl_s: float = 60.0
    command_ttl_s: float = 30.0
    settle_grace_s: float = 30.0
    telemetry_retention_days: int = 30
    stream_telemetry_interval_s: float = 1.0
    telemetry_max_rows: int = 10_000

    def __post_init__(self) -> None:
        if not 5 <= self.lease_ttl_s <= 3600:
            raise ValueError(f"robots.lease_ttl_s must be 5..3600, got {self.lease_ttl_s}")
        if not 1 <= self.command_ttl_s <= 3600:
            raise ValueError(f"robots.command_ttl_s must be 1..3600, got {self.command_ttl_s}")
        if not 1 <= self.settle_grace_s <= 3600:
            raise ValueError(f"robots.settle_grace_s must be 1..3600, got {self.settle_grace_s}")
        if not 1 <= self.telemetry_retention_days <= 3650:
            raise ValueError(f"robots.telemetry_retention_days must be 1..3650, got {self.telemetry_retention_days}")
        if not 0 <= self.stream_telemetry_interval_s <= 60:
            raise ValueError(f"robots.stream_telemetry_interval_s must be 0..60, got {self.stream_telemetry_interval_s}")
        if not 1 <= self.telemetry_max_rows <= 100_000:
            raise ValueError(f"robots.telemetry_max_rows must be 1..100000, got {self.telemetry_max_rows}")


class HubConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    # The role the hub runs as. With `database_owner_url` set it must own no table: migrations
    # run as the owner and the hub grants this role row access only (hub/db/roles.py), so the
    # audit log stays append-only against the hub itself. Empty owner URL: one role does both.
    database_url: str = "postgresql://127.0.0.1:5432/vigil"
    database_owner_url: str = ""
    nats_url: str = "nats://127.0.0.1:4222"
    nats_user: str = "hub"
    # 0600 file with the hub's NATS password; empty: connect without credentials (an open
    # development server, as some tests run).
    nats_password_file: str = ""
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    # The HTTPS listener (the same API and console; enrolment only here). 0: none.
    https_host: str = "0.0.0.0"
    https_port: int = 0
    https_cert_file: str = ""  # PEM, e.g. the server certificate of the hub CA
    https_key_file: str = ""  # 0600
    log_level: str = "INFO"
    db_pool_size: int = 8  # the API's, housekeeping's and the stream's connections
    # An API statement running longer is cancelled; an API transaction idle longer (an export
    # whose client stopped reading) is ended by PostgreSQL and its connection freed.
    db_statement_timeout_s: float = 30.0
    db_idle_in_transaction_timeout_s: float = 60.0
    ingest: IngestSettings = msgspec.field(default_factory=IngestSettings)
    alarms: AlarmSettings = msgspec.field(default_factory=AlarmSettings)
    auth: AuthSettings = msgspec.field(default_factory=AuthSettings)
    nats_access: NatsAccessSettings = msgspec.field(default_factory=NatsAccessSettings)
    enrolment: EnrolmentSettings = msgspec.field(default_factory=EnrolmentSettings)
    supervisor: SupervisorSettings = msgspec.field(default_factory=SupervisorSettings)
    metrics: MetricsSettings = msgspec.field(default_factory=MetricsSettings)
    probe: ProbeSettings = msgspec.field(default_factory=ProbeSettings)
    console: ConsoleSettings = msgspec.field(default_factory=ConsoleSettings)
    documents: DocumentSettings = msgspec.field(default_factory=DocumentSettings)
    reports: ReportSettings = msgspec.field(default_factory=ReportSettings)
    commands: CommandSettings = msgspec.field(default_factory=CommandSettings)
    auto_arm: AutoArmSettings = msgspec.field(default_factory=AutoArmSettings)
    robots: RobotSettings = msgspec.field(default_factory=RobotSettings)

    def __post_init__(self) -> None:
        if self.nats_access.users_file and not self.nats_password_file:
            # The users file must carry the hub's own user, and so its password's hash.
            raise ValueError("nats_password_file is required when nats_access.users_file is set")
        if not 0 <= self.http_port <= 65535:
            raise ValueError(f"http_port must be 0..65535, got {self.http_port}")
        if not 0 <= self.https_port <= 65535:
            raise ValueError(f"https_port must be 0..65535, got {self.https_port}")
        if self.https_port and not (self.https_cert_file and self.https_key_file):
            raise ValueError("https_cert_file and https_key_file are required when https_port is set")
        if not self.database_url.startswith(("postgresql://", "postgres://")):
            raise ValueError(f"database_url must be a postgresql:// URL, got {self.database_url!r}")
        if self.database_owner_url and not self.database_owner_url.startswith(("postgresql://", "postgres://")):
            raise ValueError("database_owner_url must be a postgresql:// URL or empty")
        for name, url in (("database_url", self.database_url), ("database_owner_url", self.database_owner_url)):
            _check_failover(name, url)


def _check_failover(name: str, url: str) -> None:
    """A URL naming several servers (a primary and its standbys, for failover) must ask for the
    writable one: otherwise a connection may land on a standby and every write fails there."""
    parts = urllib.parse.urlsplit(url)
    if "," not in parts.netloc.rpartition("@")[2]:
        return
    attrs = urllib.parse.parse_qs(parts.query).get("target_session_attrs", [""])[-1]
    if attrs not in FAILOVER_TARGETS:
        raise ValueError(f"{name} names several servers, so it must end in ?target_session_attrs=read-write "
                         f"(or primary), got {attrs or 'none'}")


def load_hub_config(path: Path | None = None, **kwargs: object) -> HubConfig:
    """Load and validate the hub config; raises shared.config.ConfigError."""
    return load_config(HubConfig, prefix="HUB", path=path, **kwargs)  # type: ignore[arg-type]
