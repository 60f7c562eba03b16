"""What an event means to the hub: does it open (or join) an alarm, restore one, change a panel
element's state, or change a link's state. Pure functions over (kind, body)."""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec

from shared.bodies import core as body_kinds
from shared.bodies import robots as robot_bodies
from shared.bodies import local as local_bodies

# Alarm types operators see; bundles group by (object, alarm type).
BURGLARY = "BURGLARY"
TAMPER = "TAMPER"
FIRE = "FIRE"
PANIC = "PANIC"
TROUBLE = "TROUBLE"
TEMPERATURE = "TEMPERATURE"
LINK = "LINK"
ROBOT = "ROBOT"
SYSTEM = "SYSTEM"  # raised by the hub about an edge as a whole (its segments refused, …)
OPEN_CLOSE = "OPEN_CLOSE"  # raised by the hub's open/close supervision (hub.commands.supervision)


# Alarm types whose acknowledgement needs a note.
NOTE_REQUIRED = frozenset({TEMPERATURE})


@dataclass(frozen=True)
class StateChange:
    """A panel element's new state (merged into its current-state row)."""

    element: str  # partition | zone | output
    number: int
    state: dict[str, Any]


@dataclass(frozen=True)
class Meaning:
    """The effects of one event; most events have one, some (a partition alarm) two."""

    opens: str | None = None       # alarm type this event raises
    restores: str | None = None    # alarm type this event ends
    state: StateChange | None = None
    link_up: bool | None = None    # True/False for edge.link.up/down
    planned: bool = False          # a link down someone chose: no LINK alarm within the grace
    # When the panel logged it, for an event-log record that happened while the edge or its link
    # was down (satel.log.record with `offline`).
    happened_offline_at: datetime | None = None
    # A panel snapshot: the whole state of every element it names; every other element of the
    # panel is back to normal (see NORMAL_STATE).
    snapshot: tuple[StateChange, ...] | None = None
    # An acknowledgement given on site (edge.local.ack): the id of the event it acknowledges. It
    # joins that event's bundle as a record and moves nothing: the hub owns the lifecycle.
    acknowledges: str | None = None

    @property
    def matters(self) -> bool:
        return bool(self.opens or self.restores or self.state or self.link_up is not None or self.snapshot is not None
                    or self.acknowledges)

    @property
    def changes(self) -> tuple[StateChange, ...]:
        """Every element state this event sets."""
        if self.state is not None:
            return (self.state,)
        return self.snapshot or ()


NOTHING = Meaning()

# satel.zone.<event> → (opens, restores, state)
_ZONE: dict[str, tuple[str | None, str | None, dict[str, Any] | None]] = {
    "violation": (None, None, {"violated": True}),
    "restore": (None, BURGLARY, {"violated": False}),
    "tamper": (TAMPER, None, {"tamper": True}),
    "tamper_restore": (None, TAMPER, {"tamper": False}),
    "alarm": (BURGLARY, None, {"alarm": True}),
    "alarm_cleared": (None, BURGLARY, {"alarm": False}),
    "tamper_alarm": (TAMPER, None, {"tamper_alarm": True}),
    "tamper_alarm_cleared": (None, TAMPER, {"tamper_alarm": False}),
    "bypass": (None, None, {"bypassed": True}),
    "unbypass": (None, None, {"bypassed": False}),
}
_PARTITION: dict[str, tuple[str | None, str | None, dict[str, Any] | None]] = {
    "disarmed": (None, None, {"armed": False, "mode": None}),
    "entry": (None, None, {"entry_time": True}),
    "entry_end": (None, None, {"entry_time": False}),
    "exit": (None, None, {"exit_time": True}),
    "exit_end": (None, None, {"exit_time": False}),
    "alarm": (BURGLARY, None, {"alarm": True}),
    "alarm_cleared": (None, BURGLARY, {"alarm": False}),
    "fire_alarm": (FIRE, None, {"fire_alarm": True}),
    "fire_alarm_cleared": (None, FIRE, {"fire_alarm": False}),
}


# What an element not named in a snapshot is: nothing active. The same keys as the events set.
NORMAL_STATE: dict[str, dict[str, Any]] = {
    "zone": {"violated": False, "tamper": False, "alarm": False, "tamper_alarm": False, "bypassed": False},
    "partition": {"armed": False, "mode": None, "entry_time": False, "exit_time": False, "alarm": False,
                  "fire_alarm": False},
    "output": {"on": False},
}
_SNAPSHOT_FLAGS = {
    "zone": {"violated": "violated", "tamper": "tamper", "alarm": "alarm", "tamper_alarm": "tamper_alarm",
             "bypassed": "bypassed"},
    "partition": {"entry_time": "entry_time", "exit_time": "exit_time", "alarm": "partition_alarm",
                  "fire_alarm": "fire_alarm"},
    "output": {"on": "outputs_on"},
}
_SNAPSHOT_NAMES = {"zone": "zone_names", "partition": "partition_names", "output": "output_names"}


def _numbers(value: Any) -> set[int]:
    """Element numbers from a snapshot list, or from a map's keys (JSON keys are strings)."""
    items = value.keys() if isinstance(value, dict) else value if isinstance(value, list) else ()
    out = set()
    for item in items:
        if isinstance(item, str) and item.isascii() and item.isdigit():
            item = int(item)
        if isinstance(item, int) and not isinstance(item, bool) and item > 0:
            out.add(item)
    return out


def snapshot_states(body: dict[str, Any]) -> tuple[StateChange, ...]:
    """The full state of every element a `satel.snapshot` names (active in some way, or named)."""
    armed = {n: body["armed"].get(str(n), body["armed"].get(n)) for n in _numbers(body.get("armed"))} \
        if isinstance(body.get("armed"), dict) else {}
    changes = []
    for element, flags in _SNAPSHOT_FLAGS.items():
        active = {flag: _numbers(body.get(field)) for flag, field in flags.items()}
        named = set().union(*active.values(), _numbers(body.get(_SNAPSHOT_NAMES[element])))
        if element == "partition":
            named |= set(armed)
        for n in sorted(named):
            state = {**NORMAL_STATE[element], **{flag: n in members for flag, members in active.items()}}
            if element == "partition" and n in armed:
                mode = armed[n]
                state.update(armed=True, mode=mode if isinstance(mode, int) and not isinstance(mode, bool) else None)
            changes.append(StateChange(element, n, state))
    return tuple(changes)


def _int(body: dict[str, Any], key: str) -> int | None:
    value = body.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


# The panel's event-log categories (firmware_bridges.satel.protocol event codes) that are alarms.
_LOG_ALARMS = {"ALARM": BURGLARY, "TAMPER": TAMPER, "FIRE": FIRE, "PANIC": PANIC, "TROUBLE": TROUBLE}


def _log_record(body: dict[str, Any]) -> Meaning:
    """A record read back from the panel's own event log. Its alarms open and end bundles like
    live ones (the edge gives both paths one occurrence key, so the hub keeps one event); it sets
    no element state, which the state bitmaps own. History-only records mean nothing here."""
    category = body.get("category")
    alarm_type = _LOG_ALARMS.get(category) if isinstance(category, str) else None
    if alarm_type is None or body.get("history_only") is True:
        return NOTHING
    happened = None
    if body.get("offline") is True and isinstance(body.get("recorded_at"), str):
        try:
            happened = msgspec.convert(body["recorded_at"], datetime, strict=False)
        except msgspec.ValidationError:
            happened = None
    if body.get("restore") is True:
        return Meaning(restores=alarm_type, happened_offline_at=happened)
    return Meaning(opens=alarm_type, happened_offline_at=happened)


def classify(kind: str, body: dict[str, Any]) -> Meaning:
    """The meaning of one event; NOTHING for kinds the lifecycle ignores (demo ticks, telemetry)."""
    parts = kind.split(".")
    if kind.startswith("satel.zone.") and len(parts) == 3 and parts[2] in _ZONE and (n := _int(body, "zone")):
        opens, restores, state = _ZONE[parts[2]]
        return Meaning(opens, restores, StateChange("zone", n, state) if state else None)
    if kind == "satel.partition.armed" and (n := _int(body, "partition")):
        return Meaning(state=StateChange("partition", n, {"armed": True, "mode": _int(body, "mode")}))
    if kind.startswith("satel.partition.") and len(parts) == 3 and parts[2] in _PARTITION and (n := _int(body, "partition")):
        opens, restores, state = _PARTITION[parts[2]]
        return Meaning(opens, restores, StateChange("partition", n, state) if state else None)
    if kind in ("satel.output.on", "satel.output.off") and (n := _int(body, "output")):
        return Meaning(state=StateChange("output", n, {"on": kind.endswith(".on")}))
    if kind == "satel.snapshot":
        return Meaning(snapshot=snapshot_states(body))
    if kind == "satel.log.record":
        return _log_record(body)
    if kind in ("satel.trouble.on", "satel.trouble.off"):
        if kind.endswith(".on"):
            return Meaning(opens=TROUBLE)
        return Meaning(restores=TROUBLE)
    if kind == "edge.link.down":
        planned = body.get("planned") is True
        # A planned stop raises no LINK alarm now; the housekeeping sweep raises it if the stop
        # outlasts the grace (hub.alarms.apply.raise_overdue_link_alarms).
        return Meaning(opens=None if planned else LINK, link_up=False, planned=planned)
    if kind == "edge.link.up":
        return Meaning(restores=LINK, link_up=True)
    # A link that works but is failing (a modem off the network, its signal or storage): trouble.
    if kind == "edge.link.degraded":
        return Meaning(opens=TROUBLE)
    if kind == "edge.link.recovered":
        return Meaning(restores=TROUBLE)
    # The edge's journal refused appends (only unforwarded alarms filled it): events are lost. SYSTEM,
    # not TROUBLE: it is the monitoring box failing, as when the hub refuses its segments, not the
    # site's equipment; and no site event restores it (a panel's trouble restore would end a
    # TROUBLE bundle): an operator closes it once the box is looked after.
    if kind == body_kinds.JOURNAL_REFUSED_KIND:
        return Meaning(opens=SYSTEM)
    if kind.startswith("sms.temp."):
        if parts[-1] in ("restore", "normal", "ok"):
            return Meaning(restores=TEMPERATURE)
        if parts[-1] in ("battery_low", "lost_connection"):
            return Meaning(opens=TROUBLE)  # the logger's own fault: a technician's job, not a cold room's
        return Meaning(opens=TEMPERATURE)
    # A robot's alarm (emergency stop, collision, battery, stuck, fault) and its end; bundled per
    # robot (hub.alarms.apply.group_key_of), so one robot's restore ends that robot's bundle only.
    if kind.startswith(robot_bodies.ALARM_PREFIX):
        return Meaning(opens=ROBOT)
    if kind.startswith(robot_bodies.RESTORE_PREFIX):
        return Meaning(restores=ROBOT)
    if kind == local_bodies.LOCAL_ACK_KIND and isinstance(acked := body.get("acked_id"), str) and _is_uuid(acked):
        return Meaning(acknowledges=acked)
    return NOTHING


def _is_uuid(text: str) -> bool:
    """Whether `text` is a UUID (an id the events table can hold); a malformed ack names nothing."""
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True
