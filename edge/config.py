"""The edge agent's settings: defaults < TOML file < VIGIL_EDGE_* environment."""
from __future__ import annotations

import ipaddress
import json
import os
import zoneinfo
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

from edge.journal_pressure import DiskPolicy
from edge.links.gsm.templates import load_templates
from firmware_bridges.satel.protocol import derive_aes_key
from shared.bodies.satel import ZONE_EVENTS
from shared.config import ConfigError, load_config
from shared.envelope import Priority
from shared.robots import RESERVED_ROBOT_IDS, valid_robot_id
from shared.subjects import valid_edge_id

#: The Satel panels as one JSON array (a list has no VIGIL_EDGE_<KEY> form of its own), e.g.
#: `[{"id": "panel-1", "host": "10.0.0.5", "integration_key": "…"}]`.
SATEL_PANELS_VAR = "VIGIL_EDGE_SATEL_PANELS"
#: The GSM modems likewise, e.g. `[{"id": "gsm-1", "port": "/dev/ttyUSB0", "trusted_senders": ["Efento"]}]`.
GSM_MODEMS_VAR = "VIGIL_EDGE_GSM_MODEMS"
#: The robots likewise, e.g. `[{"id": "RB-001", "telemetry_hz": 2.0, "name": "patrol north"}]`.
ROBOTS_VAR = "VIGIL_EDGE_ROBOTS"


class JournalSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """The journal's size (docs/architecture.md §3 "The journal"). Above `max_bytes` of envelopes,
    or while its filesystem has less free than `min_free_bytes` (or `min_free_percent` of its
    size, whichever is more), rows are evicted in the retention order; the filesystem is looked at
    every `disk_check_s` at most (and after an eighth of `min_free_bytes` appended).
    `pressure_hold_s`: how long the local page keeps showing "evicting" after the last row lost."""

    max_bytes: int = 512 * 1024 * 1024
    retention_hours: float = 72.0
    prune_interval_s: float = 60.0
    min_free_bytes: int = 64 * 1024 * 1024
    min_free_percent: float = 0.0
    disk_check_s: float = 5.0
    pressure_hold_s: float = 60.0

    def __post_init__(self) -> None:
        if self.max_bytes < 64 * 1024:
            raise ValueError(f"journal.max_bytes must be at least 65536, got {self.max_bytes}")
        if self.retention_hours <= 0:
            raise ValueError(f"journal.retention_hours must be positive, got {self.retention_hours}")
        if self.min_free_bytes < 0:
            raise ValueError(f"journal.min_free_bytes must be 0 or more, got {self.min_free_bytes}")
        if not 0 <= self.min_free_percent <= 50:
            raise ValueError(f"journal.min_free_percent must be 0..50, got {self.min_free_percent}")
        if not 0.1 <= self.disk_check_s <= 600:
            raise ValueError(f"journal.disk_check_s must be 0.1..600, got {self.disk_check_s}")
        if not 0 <= self.pressure_hold_s <= 86400:
            raise ValueError(f"journal.pressure_hold_s must be 0..86400, got {self.pressure_hold_s}")

    def disk_policy(self) -> DiskPolicy:
        """These settings as the journal takes them."""
        return DiskPolicy(min_free_bytes=self.min_free_bytes, min_free_percent=self.min_free_percent,
                          check_s=self.disk_check_s, hold_s=self.pressure_hold_s)


class ForwarderSettingsConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    segment_max_events: int = 256
    segment_max_bytes: int = 256 * 1024
    window: int = 8
    ack_timeout_s: float = 5.0
    # At shutdown, how long to wait for the last rows (the links' planned `edge.link.down`) to
    # reach the hub; well inside the 30 s a SIGTERM may take.
    drain_on_stop_s: float = 3.0
    # Catch-up pacing: the evt lane's envelopes a second at most (0: unpaced); the alarm lane is
    # never paced (edge/forwarder.py, docs/architecture.md §3 "Catch-up").
    evt_events_per_s: float = 5_000.0

    def __post_init__(self) -> None:
        if not (self.evt_events_per_s == 0 or 10 <= self.evt_events_per_s <= 1_000_000):
            raise ValueError(f"forwarder.evt_events_per_s must be 0 (unpaced) or 10..1000000, got {self.evt_events_per_s}")
        if not 0 <= self.drain_on_stop_s <= 20:
            raise ValueError(f"forwarder.drain_on_stop_s must be 0..20, got {self.drain_on_stop_s}")
        if not 1 <= self.segment_max_events <= 10_000:
            raise ValueError(f"forwarder.segment_max_events must be 1..10000, got {self.segment_max_events}")
        if not 1024 <= self.segment_max_bytes <= 900 * 1024:
            raise ValueError(f"forwarder.segment_max_bytes must be 1024..921600 (NATS max payload), got {self.segment_max_bytes}")
        if not 1 <= self.window <= 256:
            raise ValueError(f"forwarder.window must be 1..256, got {self.window}")


class StatusReportSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """The status report to the hub (edge/status_report.py): sent every `interval_s`; one the hub
    did not answer (leaf link down, hub away) is sent again after `retry_s`, so the hub hears the
    box soon after the link returns."""

    interval_s: float = 30.0
    retry_s: float = 5.0
    # While the journal holds unforwarded rows the hub hears this often (never less often than
    # `interval_s`), so its "catching up: N events, ~T s left" stays current.
    catchup_interval_s: float = 5.0

    def __post_init__(self) -> None:
        if not 0.05 <= self.interval_s <= 3600:
            raise ValueError(f"status_report.interval_s must be 0.05..3600, got {self.interval_s}")
        if not 0.05 <= self.catchup_interval_s <= 3600:
            raise ValueError(f"status_report.catchup_interval_s must be 0.05..3600, got {self.catchup_interval_s}")
        if not 0.05 <= self.retry_s <= self.interval_s:
            raise ValueError(f"status_report.retry_s must be 0.05..interval_s, got {self.retry_s}")


class DiscoverySettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """mDNS advertisement of this box while the agent runs (edge/discovery.py). `interfaces`: the
    IPv4 addresses to advertise on; empty: where the local page listens (every interface when
    `http_host` is 0.0.0.0, none beyond loopback when it is 127.0.0.1)."""

    enabled: bool = True
    interfaces: list[str] = msgspec.field(default_factory=list)

    def __post_init__(self) -> None:
        for address in self.interfaces:
            try:
                ipaddress.IPv4Address(address)
            except ValueError:
                raise ValueError(f"discovery.interfaces: {address!r} is not an IPv4 address") from None


class DemoSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    enabled: bool = False
    interval_s: float = 1.0


class ProbeSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """The synthetic probe (edge/probe.py): on a box enrolled as a probe edge, a `probe.tick` every
    `interval_s` through the whole path to the hub's live stream."""

    enabled: bool = False
    interval_s: float = 300.0

    def __post_init__(self) -> None:
        if not 1.0 <= self.interval_s <= 3600.0:
            raise ValueError(f"probe.interval_s must be 1..3600, got {self.interval_s}")


class SatelPanelSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """One Satel INTEGRA panel behind an ETHM-1 (Plus) module.

    `integration_key` (encrypted integration, optional) is a secret: diagnostics and logs never
    show it. No user code is kept: every command carries the code the person typed.
    `zones` overrides the default priority per zone and zone event, e.g.
    `{"8": {"violation": "HIGH"}}` (events: see shared.bodies.satel.ZONE_EVENTS).
    """

    id: str  # the events' `source`
    host: str
    port: int = 7094
    integration_key: str | None = None
    code_prefix: str = ""  # digits the panel expects before every user code, if any
    poll_interval_s: float = 0.25  # how often 0x7F asks what changed
    push: bool = False  # let an ETHM-1 Plus (firmware > 2.00) push changes instead of polling
    keepalive_s: float = 10.0  # in push mode, how often 0x7F is read anyway (keepalive, safety net)
    request_timeout_s: float = 3.0  # an answer later than this closes the connection
    reconnect_min_s: float = 1.0  # backoff: first ceiling, doubling up to reconnect_max_s, full jitter
    reconnect_max_s: float = 30.0
    command_timeout_s: float = 10.0  # a command not sent by then is dropped (TIMEOUT), never sent late
    command_queue: int = 16  # commands waiting at most; more are refused (UNAVAILABLE)
    clock_check_s: float = 60.0  # how often the panel's clock is compared with the edge's
    max_clock_drift_s: float = 120.0
    timezone: str = "UTC"  # the zone the panel's clock runs in (IANA name)
    event_log_window: int = 50  # panel event log records read back when there is no cursor to read on from
    event_log_alarm_age_s: float = 3600.0  # records read back that are older than this are history, not alarms
    zones: dict[int, dict[str, Priority]] = msgspec.field(default_factory=dict)

    def __post_init__(self) -> None:
        if not valid_edge_id(self.id):
            raise ValueError(f"panel id {self.id!r} must be lower-case letters, digits and dashes")
        if not self.host:
            raise ValueError(f"panel {self.id}: host must not be empty")
        if not 1 <= self.port <= 65535:
            raise ValueError(f"panel {self.id}: port must be 1..65535, got {self.port}")
        if self.integration_key is not None:
            derive_aes_key(self.integration_key)  # its ValueError names the rule, never the key
        if self.code_prefix and not (self.code_prefix.isascii() and self.code_prefix.isdigit()):
            raise ValueError(f"panel {self.id}: code_prefix must be digits")
        # The module drops a connection idle for 25 s (ETHM-1 Plus ≥ 2.03): never idle more than 15 s.
        if not 0.05 <= self.poll_interval_s <= 15:
            raise ValueError(f"panel {self.id}: poll_interval_s must be 0.05..15, got {self.poll_interval_s}")
        if not 0.05 <= self.keepalive_s <= 15:
            raise ValueError(f"panel {self.id}: keepalive_s must be 0.05..15, got {self.keepalive_s}")
        if not 0.05 <= self.request_timeout_s <= 30:
            raise ValueError(f"panel {self.id}: request_timeout_s must be 0.05..30, got {self.request_timeout_s}")
        if not 0 < self.reconnect_min_s <= self.reconnect_max_s:
            raise ValueError(f"panel {self.id}: need 0 < reconnect_min_s <= reconnect_max_s")
        if self.command_timeout_s < self.request_timeout_s:
            raise ValueError(f"panel {self.id}: command_timeout_s must be at least request_timeout_s")
        if not 1 <= self.command_queue <= 1000:
            raise ValueError(f"panel {self.id}: command_queue must be 1..1000, got {self.command_queue}")
        if self.clock_check_s < 1 or self.max_clock_drift_s <= 0:
            raise ValueError(f"panel {self.id}: clock_check_s must be >= 1 and max_clock_drift_s positive")
        if not 1 <= self.event_log_window <= 1024:
            raise ValueError(f"panel {self.id}: event_log_window must be 1..1024, got {self.event_log_window}")
        if self.event_log_alarm_age_s <= 0:
            raise ValueError(f"panel {self.id}: event_log_alarm_age_s must be positive, got {self.event_log_alarm_age_s}")
        try:
            zoneinfo.ZoneInfo(self.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"panel {self.id}: timezone {self.timezone!r} is not a known IANA time zone") from None
        for zone, events in self.zones.items():
            if not 1 <= zone <= 256:
                raise ValueError(f"panel {self.id}: zone {zone} in zones is outside 1..256")
            unknown = sorted(set(events) - set(ZONE_EVENTS))
            if unknown:
                raise ValueError(f"panel {self.id}: zone {zone}: unknown events {unknown}; known: {', '.join(ZONE_EVENTS)}")


class SatelSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """The Satel panels this edge watches (none by default)."""

    panels: list[SatelPanelSettings] = msgspec.field(default_factory=list)

    def __post_init__(self) -> None:
        ids = [panel.id for panel in self.panels]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"panel ids must be unique; repeated: {', '.join(duplicates)}")


class GsmModemSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """One USB GSM modem receiving temperature loggers' SMS (edge/links/gsm/).

    `trusted_senders`: the numbers (any spelling: `+48…`, `0048…`, spaces) and alphanumeric ids
    whose messages may raise alarms; anything else is archived for review, never an alarm.
    `templates_file`: the SMS templates (TOML, edge/links/gsm/default_templates.toml's format);
    empty: the shipped Efento and BluLog ones. `timezone`: how a time in a text without an offset
    is read. `priorities`: per sensor, a priority per event kind that differs from the default,
    e.g. `{"282C02": {"sms.temp.alarm": "CRITICAL"}}`."""

    id: str  # the events' `source`
    port: str  # the serial device, e.g. /dev/ttyUSB0
    baudrate: int = 115200
    trusted_senders: list[str] = msgspec.field(default_factory=list)
    templates_file: str = ""
    timezone: str = "Europe/Warsaw"
    priorities: dict[str, dict[str, Priority]] = msgspec.field(default_factory=dict)
    command_timeout_s: float = 10.0  # an AT command unanswered this long: the modem is gone
    sweep_interval_s: float = 60.0  # AT+CMGL over the storage: notifications get lost
    status_interval_s: float = 30.0  # registration, signal and storage read this often
    concat_timeout_s: float = 600.0  # an incomplete concatenated message is read as it is after this
    signal_low_rssi: int = 8  # +CSQ rssi at or below this (≈ -97 dBm) is "signal low"
    storage_warn_ratio: float = 0.8
    reconnect_min_s: float = 1.0
    reconnect_max_s: float = 30.0

    def __post_init__(self) -> None:
        if not valid_edge_id(self.id):
            raise ValueError(f"modem id {self.id!r} must be lower-case letters, digits and dashes")
        if not self.port:
            raise ValueError(f"modem {self.id}: port must not be empty")
        if not 0.5 <= self.command_timeout_s <= 120:
            raise ValueError(f"modem {self.id}: command_timeout_s must be 0.5..120, got {self.command_timeout_s}")
        if not 1 <= self.sweep_interval_s <= 3600 or not 1 <= self.status_interval_s <= 3600:
            raise ValueError(f"modem {self.id}: sweep_interval_s and status_interval_s must be 1..3600")
        if not 1 <= self.concat_timeout_s <= 86400:
            raise ValueError(f"modem {self.id}: concat_timeout_s must be 1..86400, got {self.concat_timeout_s}")
        if not 0 <= self.signal_low_rssi <= 31 or not 0 < self.storage_warn_ratio <= 1:
            raise ValueError(f"modem {self.id}: signal_low_rssi must be 0..31 and storage_warn_ratio in (0, 1]")
        if not 0 < self.reconnect_min_s <= self.reconnect_max_s:
            raise ValueError(f"modem {self.id}: need 0 < reconnect_min_s <= reconnect_max_s")
        try:
            zoneinfo.ZoneInfo(self.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"modem {self.id}: timezone {self.timezone!r} is not a known IANA time zone") from None
        if self.templates_file:
            # A bad template file stops the start here, naming the template, not at the first SMS.
            load_templates(Path(self.templates_file), zone=self.timezone)


class GsmSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """The GSM modems this edge reads (none by default)."""

    modems: list[GsmModemSettings] = msgspec.field(default_factory=list)

    def __post_init__(self) -> None:
        ids = [modem.id for modem in self.modems]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"modem ids must be unique; repeated: {', '.join(duplicates)}")


class RobotSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """One robot of the site (edge/links/robots/): its id (its NATS user on the box's server, made
    by `python -m edge robot add`), a name for people, and how many telemetry samples per second
    the edge keeps (latest wins; the rest are counted as skipped)."""

    id: str  # the events' `source`
    name: str = ""
    telemetry_hz: float = 1.0

    def __post_init__(self) -> None:
        if not valid_robot_id(self.id):
            raise ValueError(f"robot id {self.id!r} must be letters, digits, '-' and '_' (one NATS token), "
                             f"none of {sorted(RESERVED_ROBOT_IDS)}")
        if not 0.01 <= self.telemetry_hz <= 50:
            raise ValueError(f"robot {self.id}: telemetry_hz must be 0.01..50, got {self.telemetry_hz}")


class RobotsSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """The site's robots and how the edge watches them (docs/architecture.md §7 "Robots").

    A robot is CONNECTION_BROKEN when no status (its heartbeat) came for `missed_heartbeats` times
    the interval it states; `battery_critical_pct` raises battery_critical at or below it even when
    the robot reports no fault. A command is handed to its robot again every `command_retry_s`
    until the robot's first ack; an identity or capability question unanswered for
    `query_timeout_s` is asked again (`query_attempts` times in all). `poll_interval_s` bounds how
    late a missed heartbeat is noticed and how often telemetry is fetched. `events_max_age_h` and
    `events_max_bytes` bound the box's ROBOT_EVENTS stream (what robots said while the agent was
    away)."""

    robots: list[RobotSettings] = msgspec.field(default_factory=list)
    missed_heartbeats: int = 3
    battery_critical_pct: float = 10.0
    command_retry_s: float = 2.0
    query_timeout_s: float = 5.0
    query_attempts: int = 2
    poll_interval_s: float = 0.25
    events_max_age_h: float = 168.0
    events_max_bytes: int = 256 * 1024 * 1024

    def __post_init__(self) -> None:
        ids = [robot.id for robot in self.robots]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"robot ids must be unique; repeated: {', '.join(duplicates)}")
        if not 1 <= self.missed_heartbeats <= 100:
            raise ValueError(f"robots.missed_heartbeats must be 1..100, got {self.missed_heartbeats}")
        if not 0 <= self.battery_critical_pct <= 100:
            raise ValueError(f"robots.battery_critical_pct must be 0..100, got {self.battery_critical_pct}")
        if not 0.05 <= self.command_retry_s <= 60:
            raise ValueError(f"robots.command_retry_s must be 0.05..60, got {self.command_retry_s}")
        if not 0.05 <= self.query_timeout_s <= 300 or not 1 <= self.query_attempts <= 10:
            raise ValueError("robots.query_timeout_s must be 0.05..300 and robots.query_attempts 1..10")
        if not 0.02 <= self.poll_interval_s <= 5:
            raise ValueError(f"robots.poll_interval_s must be 0.02..5, got {self.poll_interval_s}")
        if self.events_max_age_h <= 0 or self.events_max_bytes < 1024 * 1024:
            raise ValueError("robots.events_max_age_h must be positive and robots.events_max_bytes at least 1048576")


#: Replica kinds Litestream is run with (edge/replication.py): `hub`, the JetStream object store
#: of the edge's own account on the hub, through the box's server and the leaf (the default);
#: `file`, a folder on a second disk; `s3`, an S3-compatible store.
REPLICA_KINDS = ("hub", "file", "s3")


class ReplicationSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Continuous replication of the journal by a supervised Litestream (edge/replication.py,
    docs/architecture.md §3). `hub`: the object store of the edge's replica account on the hub,
    reached through the box's own server (`nats_url`) with the login enrolment made
    (`hub.credentials_dir`); `file`: `path` is a folder on a second disk; `s3`: `url` is
    `s3://bucket/path`, `endpoint` an S3-compatible store's URL, credentials from Litestream's own
    environment (LITESTREAM_ACCESS_KEY_ID, LITESTREAM_SECRET_ACCESS_KEY). The replica counts as
    lagging once it is `lagging_after_s` behind."""

    enabled: bool = False
    kind: str = "hub"
    path: str = ""
    url: str = ""
    endpoint: str = ""
    sync_interval_s: float = 1.0
    probe_interval_s: float = 5.0
    lagging_after_s: float = 30.0

    def __post_init__(self) -> None:
        if self.kind not in REPLICA_KINDS:
            raise ValueError(f"replication.kind must be one of {', '.join(REPLICA_KINDS)}, got {self.kind!r}")
        if self.enabled and self.kind == "file" and not Path(self.path).is_absolute():
            raise ValueError(f"replication.path must be an absolute folder for a file replica, got {self.path!r}")
        if self.enabled and self.kind == "s3" and not self.url.startswith("s3://"):
            raise ValueError(f"replication.url must be s3://bucket/path for an s3 replica, got {self.url!r}")
        if not 0.1 <= self.sync_interval_s <= 3600:
            raise ValueError(f"replication.sync_interval_s must be 0.1..3600, got {self.sync_interval_s}")
        if not 0.1 <= self.probe_interval_s <= 3600:
            raise ValueError(f"replication.probe_interval_s must be 0.1..3600, got {self.probe_interval_s}")
        if self.lagging_after_s <= self.sync_interval_s:
            raise ValueError("replication.lagging_after_s must exceed sync_interval_s")


class HubLinkSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """How this box reaches its hub, as `edge enroll` wrote it (`edge check` tests each): the hub's
    HTTPS URL and CA, the folder with the leaf credential (user and password, client certificate
    and key, hub CA) and the leaf nats-server's config made from it."""

    url: str = ""  # https://hub.example:8443
    ca_file: str = ""  # the hub CA (PEM)
    credentials_dir: str = ""
    nats_config_file: str = ""

    def __post_init__(self) -> None:
        if self.url and not self.url.startswith("https://"):
            raise ValueError(f"hub.url must be an https:// URL, got {self.url!r}")


class EdgeConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    edge_id: str
    data_dir: str = "var/edge"
    nats_url: str = "nats://127.0.0.1:4223"
    # The agent's user on the site's leaf server; its password in a 0600 file. Empty file setting:
    # connect without credentials (an open development server).
    nats_user: str = "agent"
    nats_password_file: str = ""
    http_host: str = "127.0.0.1"
    http_port: int = 8081
    log_level: str = "INFO"
    journal: JournalSettings = msgspec.field(default_factory=JournalSettings)
    status_report: StatusReportSettings = msgspec.field(default_factory=StatusReportSettings)
    forwarder: ForwarderSettingsConfig = msgspec.field(default_factory=ForwarderSettingsConfig)
    demo: DemoSettings = msgspec.field(default_factory=DemoSettings)
    probe: ProbeSettings = msgspec.field(default_factory=ProbeSettings)
    discovery: DiscoverySettings = msgspec.field(default_factory=DiscoverySettings)
    satel: SatelSettings = msgspec.field(default_factory=SatelSettings)
    gsm: GsmSettings = msgspec.field(default_factory=GsmSettings)
    robots: RobotsSettings = msgspec.field(default_factory=RobotsSettings)
    hub: HubLinkSettings = msgspec.field(default_factory=HubLinkSettings)
    replication: ReplicationSettings = msgspec.field(default_factory=ReplicationSettings)

    def __post_init__(self) -> None:
        if not valid_edge_id(self.edge_id):
            raise ValueError(f"edge_id {self.edge_id!r} must be lower-case letters, digits and dashes")
        if not 0 <= self.http_port <= 65535:
            raise ValueError(f"http_port must be 0..65535, got {self.http_port}")
        if self.replication.enabled and self.replication.kind == "hub" and not self.hub.credentials_dir:
            raise ValueError("replication.kind hub needs an enrolled box (hub.credentials_dir): enrol it, or "
                             "replicate to a file or s3 replica")

    @property
    def journal_path(self) -> Path:
        return Path(self.data_dir) / "journal.db"

    @property
    def key_path(self) -> Path:
        return Path(self.data_dir) / "edge.key"


def _list_from_env(env: Mapping[str, str], var: str, section: str, key: str,
                   settings: type[msgspec.Struct]) -> list[Any] | None:
    """The JSON list of a list variable (VIGIL_EDGE_SATEL_PANELS, VIGIL_EDGE_GSM_MODEMS, VIGIL_EDGE_ROBOTS), checked
    here so an error names the variable."""
    raw = env.get(var)
    if raw is None:
        return None
    try:
        items = json.loads(raw)
    except ValueError as exc:
        raise ConfigError(f"{var} is not valid JSON: {exc}") from None
    try:
        msgspec.convert({key: items}, settings, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{var}: {exc}".replace("`$.", f"`{section}.")) from None
    return items


_LIST_VARS = ((SATEL_PANELS_VAR, "satel", "panels", SatelSettings), (GSM_MODEMS_VAR, "gsm", "modems", GsmSettings),
              (ROBOTS_VAR, "robots", "robots", RobotsSettings))


def load_edge_config(
    path: Path | None = None, *, env: Mapping[str, str] | None = None, overrides: Mapping[str, Any] | None = None
) -> EdgeConfig:
    """Load and validate the edge config; raises shared.config.ConfigError."""
    env = dict(os.environ if env is None else env)
    for var, section, key, settings in _LIST_VARS:
        items = _list_from_env(env, var, section, key, settings)
        if items is not None:
            # The shared loader would hand the JSON text to a list field as is; it goes in decoded,
            # above the file and below explicit overrides, where an environment value belongs.
            del env[var]
            values = dict((overrides or {}).get(section) or {})
            values.setdefault(key, items)
            overrides = {**(overrides or {}), section: values}
    return load_config(EdgeConfig, prefix="EDGE", path=path, env=env, overrides=overrides)
