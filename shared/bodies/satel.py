"""Bodies of the Satel INTEGRA link's events (`satel.*`) and of a link's release (`edge.link.released`).

The kinds name what changed: `satel.zone.<event>`, `satel.partition.<event>`, `satel.output.on|off`,
`satel.trouble.on|off`, `satel.clock.drift|synced`, `satel.snapshot` for the state the link
read when it (re)connected, and `satel.log.record` for a record of the panel's own event log.
`source` is always the panel id from the edge's config.
"""
from __future__ import annotations

from datetime import datetime

import msgspec

#: Zone events, in the order a link reports them; `satel.zone.<name>` is the kind, and the same
#: names are the keys of the per-zone priority overrides in the edge's config.
ZONE_EVENTS = (
    "violation",
    "restore",
    "tamper",
    "tamper_restore",
    "alarm",
    "alarm_cleared",
    "tamper_alarm",
    "tamper_alarm_cleared",
    "bypass",
    "unbypass",
)

#: Partition events other than `armed` (which has its own body carrying the arming mode).
PARTITION_EVENTS = (
    "disarmed",
    "entry",
    "entry_end",
    "exit",
    "exit_end",
    "alarm",
    "alarm_cleared",
    "fire_alarm",
    "fire_alarm_cleared",
)


class ZoneEvent(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A zone changed state (violation, tamper, alarm, bypass, or their end)."""

    zone: int
    name: str = ""


class PartitionArmed(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A partition was armed, or its arming mode changed (mode 0 = full, 1–3 = the panel's modes)."""

    partition: int
    mode: int
    name: str = ""


class PartitionEvent(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A partition was disarmed, started or ended entry/exit time, or raised or ended an alarm."""

    partition: int
    name: str = ""


class OutputEvent(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """An output switched on or off."""

    output: int
    name: str = ""


class TroubleEvent(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A panel trouble started or ended: bit `bit` of troubles part `part` (0x1B–0x1F).

    `trouble` is a short name for the well-known system troubles of part 1 (e.g. `ac`), else empty.
    """

    part: int
    bit: int
    trouble: str = ""


class ClockDrift(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The panel's clock is off by more than `max_drift_s` (`satel.clock.drift`), or back within it
    (`satel.clock.synced`). `panel_clock` is the panel's local time as it reported it, or None when
    its clock holds no valid date (then `drift_s` is None too)."""

    panel_clock: str | None
    edge_clock: datetime
    drift_s: float | None
    max_drift_s: float


class TroubleRef(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One active trouble inside a snapshot."""

    part: int
    bit: int
    trouble: str = ""


class PanelSnapshot(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The panel's state as the link read it after (re)connecting: recorded as state, not as alarms.

    Lists hold zone, partition or output numbers; `armed` maps partition → arming mode; the name
    maps hold the names the link has read so far (number → name).
    """

    module_version: str | None
    panel_type: int | None
    panel_version: str | None
    wide: bool
    push: bool
    violated: list[int]
    tamper: list[int]
    alarm: list[int]
    tamper_alarm: list[int]
    bypassed: list[int]
    armed: dict[int, int]
    entry_time: list[int]
    exit_time: list[int]
    partition_alarm: list[int]
    fire_alarm: list[int]
    outputs_on: list[int]
    troubles: list[TroubleRef]
    service_mode: bool
    panel_clock: str | None
    zone_names: dict[int, str]
    partition_names: dict[int, str]
    output_names: dict[int, str]


class CommandGiven(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A control command someone gave a panel through this edge (arm, disarm, clear alarm,
    outputs, bypass), with its outcome: the hub shows and audits it. Never the user code."""

    command: str         # e.g. "arm mode 0", "disarm", "outputs on"
    items: list[int]     # the partitions, zones or outputs it named
    result: str          # ACK, NACK, TIMEOUT or UNAVAILABLE
    code: int | None     # the panel's 0xEF result code, when it answered
    reason: str
    who: str             # who gave it, as far as the edge knows


class LinkReleased(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A device link let go of its device for `minutes` (e.g. so an installer can program a Satel
    panel with DLOADX, which needs the module's only connection); it reconnects by itself at `until`."""

    link: str
    who: str
    why: str
    minutes: float
    until: datetime


class LogRecord(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One record of the panel's own event log (`satel.log.record`), read with command 0x8C.

    `index` names the record in the panel's log: the event index the module returns with it,
    which the manual defines as the one that reads the record before it (the module gives no
    record's own index when asked for the newest); it stays the same for as long as the panel
    keeps the record. `category` (EventCategory: ALARM, TAMPER, FIRE, PANIC, ARM, DISARM,
    ALARM_CLEARED, BYPASS, TROUBLE, SYSTEM, OTHER) and `text` follow the code and `restore` flag.
    `zone` or `user` is set when the record's `source` byte names one. `recorded_at` is the
    panel's own time of the event (to the minute, in the panel's time zone), None when the record
    holds no valid date. `offline`: read when the link (re)connected and not also seen live, so it
    happened while the link or the agent was down. `history_only`: read back on a first start (or
    after the panel's log was reset) and older than the edge's alarm age: history, not an alarm.
    """

    index: int
    code: int
    category: str
    text: str
    restore: bool
    partition: int
    zone: int | None
    user: int | None
    source: int
    recorded_at: datetime | None
    offline: bool
    history_only: bool


_PARTITION_BODIES: dict[str, type[msgspec.Struct]] = {
    "armed": PartitionArmed,
    **{name: PartitionEvent for name in PARTITION_EVENTS},
}

#: kind → body Struct for every `satel.*` kind, and `edge.link.released`.
SATEL_BODY_TYPES: dict[str, type[msgspec.Struct]] = {
    **{f"satel.zone.{name}": ZoneEvent for name in ZONE_EVENTS},
    **{f"satel.partition.{name}": body for name, body in _PARTITION_BODIES.items()},
    "satel.output.on": OutputEvent,
    "satel.output.off": OutputEvent,
    "satel.trouble.on": TroubleEvent,
    "satel.trouble.off": TroubleEvent,
    "satel.clock.drift": ClockDrift,
    "satel.clock.synced": ClockDrift,
    "satel.snapshot": PanelSnapshot,
    "satel.log.record": LogRecord,
    "edge.link.released": LinkReleased,
    "satel.command": CommandGiven,
}
