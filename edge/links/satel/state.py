"""The panel's last known state, and the typed events that a new answer makes of it.

Pure: no sockets, no timers, no journal. `PanelState.apply` takes decoded answers (a poll cycle's,
a snapshot's or pushed ones) and returns `Observation`s — kind, the edge's default priority and
the body — for every real difference from what it knew before. A query it has never seen an
answer to is recorded silently, so the first snapshot after start-up is state, not alarms, and a
snapshot after a reconnect yields only what really changed while the link was down.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import msgspec

from firmware_bridges.satel.protocol import (
    Answer,
    Cmd,
    DeviceNameAnswer,
    DeviceType,
    IntegraVersionAnswer,
    ModuleVersionAnswer,
    OutputsAnswer,
    PartitionsAnswer,
    PartitionState,
    ReadOutputs,
    ReadPartitions,
    ReadStatus,
    ReadTroubles,
    ReadZones,
    Request,
    StatusAnswer,
    TroublesAnswer,
    ZonesAnswer,
    ZoneState,
)
from shared.bodies.satel import (
    ClockDrift,
    OutputEvent,
    PanelSnapshot,
    PartitionArmed,
    PartitionEvent,
    TroubleEvent,
    TroubleRef,
    ZoneEvent,
)
from shared.clock import Clock
from shared.envelope import Priority

#: Panel type byte of 0x7E for the INTEGRA 256 PLUS, the only panel with zones and outputs above 128.
INTEGRA_256_PLUS = 72

_TROUBLE_PARTS = 5

#: Zone bitmaps the link keeps, with the events a zone entering / leaving the set produces.
ZONE_TRANSITIONS: dict[ZoneState, tuple[str, str]] = {
    ZoneState.VIOLATION: ("violation", "restore"),
    ZoneState.TAMPER: ("tamper", "tamper_restore"),
    ZoneState.ALARM: ("alarm", "alarm_cleared"),
    ZoneState.TAMPER_ALARM: ("tamper_alarm", "tamper_alarm_cleared"),
    ZoneState.BYPASS: ("bypass", "unbypass"),
}

#: The four bitmaps that together say whether, and in which mode, a partition is armed.
ARMING_STATES = (
    PartitionState.ARMED,
    PartitionState.ARMED_MODE_1,
    PartitionState.ARMED_MODE_2,
    PartitionState.ARMED_MODE_3,
)
_EXIT_STATES = (PartitionState.EXIT_TIME_LONG, PartitionState.EXIT_TIME_SHORT)

#: Partition conditions other than arming: (event when it starts, event when it ends, bitmaps).
PARTITION_CONDITIONS: tuple[tuple[str, str, tuple[PartitionState, ...]], ...] = (
    ("entry", "entry_end", (PartitionState.ENTRY_TIME,)),
    ("exit", "exit_end", _EXIT_STATES),
    ("alarm", "alarm_cleared", (PartitionState.ALARM,)),
    ("fire_alarm", "fire_alarm_cleared", (PartitionState.FIRE_ALARM,)),
)

_TROUBLE_COMMANDS = tuple(Cmd.TROUBLES_1 + i for i in range(_TROUBLE_PARTS))
_ZONE_COMMANDS = frozenset(state.value for state in ZONE_TRANSITIONS)

#: Every query the link reads for a snapshot and re-reads when 0x7F flags it as changed.
QUERY_COMMANDS: frozenset[int] = frozenset(
    {
        *(state.value for state in ZONE_TRANSITIONS),
        *(state.value for state in ARMING_STATES),
        *(state.value for _, _, states in PARTITION_CONDITIONS for state in states),
        Cmd.OUTPUTS_STATE,
        Cmd.STATUS,
        *_TROUBLE_COMMANDS,
    }
)

# Bitmaps that only mean something together: when one has changed, all of its group are read,
# so an arming in mode 2 is one `armed` event with mode 2, not `armed` (mode 0) then a mode change.
_GROUPS = (frozenset(s.value for s in ARMING_STATES), frozenset(s.value for s in _EXIT_STATES))

#: The edge's default priority per kind: burglary and fire alarms CRITICAL, tampers HIGH, troubles
#: and a drifting clock NORMAL, every other state change LOW. Zones can override theirs in config.
DEFAULT_PRIORITIES: dict[str, Priority] = {
    **{f"satel.zone.{name}": Priority.LOW for names in ZONE_TRANSITIONS.values() for name in names},
    "satel.zone.alarm": Priority.CRITICAL,
    "satel.zone.tamper": Priority.HIGH,
    "satel.zone.tamper_alarm": Priority.HIGH,
    "satel.partition.armed": Priority.LOW,
    "satel.partition.disarmed": Priority.LOW,
    **{f"satel.partition.{event}": Priority.LOW for on, off, _ in PARTITION_CONDITIONS for event in (on, off)},
    "satel.partition.alarm": Priority.CRITICAL,
    "satel.partition.fire_alarm": Priority.CRITICAL,
    "satel.output.on": Priority.LOW,
    "satel.output.off": Priority.LOW,
    "satel.trouble.on": Priority.NORMAL,
    "satel.trouble.off": Priority.NORMAL,
    "satel.clock.drift": Priority.NORMAL,
    "satel.clock.synced": Priority.LOW,
}

#: Names of the system troubles in troubles part 1 (bit number → name), from the protocol manual.
SYSTEM_TROUBLE_NAMES: dict[int, str] = {
    1: "out1", 2: "out2", 3: "out3", 4: "out4", 5: "kpd", 6: "ex", 7: "battery", 8: "ac", 9: "dt1",
    10: "dt2", 11: "dtm", 12: "rtc", 13: "no_dtr", 14: "no_battery", 20: "station1", 21: "station2",
}

Device = tuple[DeviceType, int]


@dataclass(frozen=True)
class Observation:
    """One event for the journal: kind, the edge's default priority, body, the device it is
    about (so the link can fetch that device's name if it does not know it yet), and the
    occurrence key it shares with the other path of the same occurrence, if any."""

    kind: str
    priority: Priority
    body: msgspec.Struct
    device: Device | None = None
    occurrence: str | None = None


def answer_command(answer: Answer) -> int | None:
    """The query command an answer belongs to, or None for answers that are not panel state."""
    match answer:
        case ZonesAnswer(state=state) | PartitionsAnswer(state=state):
            return int(state)
        case OutputsAnswer():
            return int(Cmd.OUTPUTS_STATE)
        case StatusAnswer():
            return int(Cmd.STATUS)
        case TroublesAnswer(part=part, memory=False):
            return int(Cmd.TROUBLES_1) + part - 1
    return None


def query_for(cmd: int, wide: bool) -> Request:
    """The request that reads query command `cmd` (one of QUERY_COMMANDS)."""
    if cmd in _TROUBLE_COMMANDS:
        return ReadTroubles(cmd - Cmd.TROUBLES_1 + 1)
    if cmd == Cmd.OUTPUTS_STATE:
        return ReadOutputs(wide)
    if cmd == Cmd.STATUS:
        return ReadStatus()
    if cmd in _ZONE_COMMANDS:
        return ReadZones(ZoneState(cmd), wide)
    if cmd in QUERY_COMMANDS:
        return ReadPartitions(PartitionState(cmd))
    raise ValueError(f"command 0x{cmd:02x} is not a query the Satel link reads")


def complete_groups(commands: Iterable[int]) -> frozenset[int]:
    """`commands` plus the rest of every group one of them belongs to."""
    wanted = set(commands)
    for group in _GROUPS:
        if wanted & group:
            wanted |= group
    return frozenset(wanted)


def supports_push(module_version: str | None) -> bool:
    """ETHM-1 Plus firmware above 2.00 can push changes (0x7F with a 12-byte mask).

    The 0x7C version is 11 characters, `20620190301` = v2.06 of 2019-03-01.
    """
    if module_version is None or len(module_version) < 3 or not (module_version[:3].isascii() and module_version[:3].isdigit()):
        return False
    return (int(module_version[0]), int(module_version[1:3])) > (2, 0)


def trouble_name(part: int, bit: int) -> str:
    """Short name of a well-known trouble bit, or '' when this edge has no name for it."""
    return SYSTEM_TROUBLE_NAMES.get(bit, "") if part == 1 else ""


class PanelState:
    """What the link knows about one panel, and the events each answer makes of it.

    `zone_priorities` overrides the default priority per zone and zone event
    (e.g. ``{8: {"violation": Priority.HIGH}}``). `clock` gives the edge's time, for the module
    clock drift check against `max_clock_drift_s`; `timezone` is the zone the panel's clock runs in.
    """

    def __init__(
        self,
        clock: Clock,
        *,
        zone_priorities: Mapping[int, Mapping[str, Priority]] | None = None,
        max_clock_drift_s: float = 120.0,
        timezone: str = "UTC",
    ) -> None:
        self._clock = clock
        self._zone_priorities = {zone: dict(events) for zone, events in (zone_priorities or {}).items()}
        self.max_clock_drift_s = max_clock_drift_s
        self._tz = ZoneInfo(timezone)
        self._sets: dict[int, frozenset[int]] = {}  # query command → the set it last answered
        self._status: StatusAnswer | None = None
        self._clock_off: bool | None = None  # None until the first clock check
        self.module: ModuleVersionAnswer | None = None
        self.panel: IntegraVersionAnswer | None = None
        self._names: dict[Device, str] = {}

    # --- what is known -------------------------------------------------------------------------

    @property
    def wide(self) -> bool:
        """Zones and outputs travel as 32-byte bitmaps: an INTEGRA 256 PLUS behind a module that can."""
        return bool(
            self.module is not None
            and self.module.supports_wide
            and self.panel is not None
            and self.panel.panel_type == INTEGRA_256_PLUS
        )

    def known(self, cmd: int) -> bool:
        """An answer to query `cmd` has been applied."""
        return cmd in self._sets or (cmd == Cmd.STATUS and self._status is not None)

    def name(self, device_type: DeviceType, number: int) -> str | None:
        """The device's name, '' if the panel has none for it, or None if not read yet."""
        return self._names.get((device_type, number))

    def set_name(self, device_type: DeviceType, number: int, name: str) -> None:
        """Remember a device's name ('' when the module says the device does not exist)."""
        self._names[(device_type, number)] = name

    def forget_names(self) -> None:
        """Drop every name (after the panel may have been reprogrammed)."""
        self._names.clear()

    def active_devices(self) -> set[Device]:
        """Every zone, partition and output that is in any tracked state right now."""
        devices: set[Device] = set()
        for cmd, members in self._sets.items():
            if cmd in _ZONE_COMMANDS:
                devices.update((DeviceType.ZONE, n) for n in members)
            elif cmd == Cmd.OUTPUTS_STATE:
                devices.update((DeviceType.OUTPUT, n) for n in members)
            elif cmd not in _TROUBLE_COMMANDS:
                devices.update((DeviceType.PARTITION, n) for n in members)
        return devices

    # --- applying answers ----------------------------------------------------------------------

    def apply(self, answers: Iterable[Answer]) -> list[Observation]:
        """Record `answers` (taken together, as one moment) and return the events they make.

        Answers that are not panel state (versions, names) are recorded too; anything else is
        ignored. A query answered for the first time changes what is known but yields no event.
        """
        before = dict(self._sets)
        status: StatusAnswer | None = None
        for answer in answers:
            match answer:
                case DeviceNameAnswer(device_type=device_type, number=number, name=name):
                    self._names[(DeviceType(device_type), number)] = name
                case ModuleVersionAnswer():
                    self.module = answer
                case IntegraVersionAnswer():
                    self.panel = answer
                case StatusAnswer():
                    status = self._status = answer
                case TroublesAnswer(memory=False, part=part):
                    self._sets[int(Cmd.TROUBLES_1) + part - 1] = answer.active
                case ZonesAnswer(state=state, zones=zones) if state in ZONE_TRANSITIONS:
                    self._sets[int(state)] = zones
                case PartitionsAnswer(state=state, partitions=partitions) if state in QUERY_COMMANDS:
                    self._sets[int(state)] = partitions
                case OutputsAnswer(outputs=outputs):
                    self._sets[int(Cmd.OUTPUTS_STATE)] = outputs
        # Within one moment: arming first, then what the zones did, then what that caused.
        events = [
            *self._arming_events(before),
            *self._zone_events(before),
            *self._condition_events(before),
            *self._output_events(before),
            *self._trouble_events(before),
        ]
        if status is not None:
            events.extend(self._clock_events(status))
        return events

    def _zone_events(self, before: Mapping[int, frozenset[int]]) -> list[Observation]:
        events = []
        for state, (on, off) in ZONE_TRANSITIONS.items():
            for zone, entered in _changes(before.get(state), self._sets.get(state)):
                kind = on if entered else off
                events.append(self._zone_event(kind, zone))
        return events

    def _zone_event(self, event: str, zone: int) -> Observation:
        kind = f"satel.zone.{event}"
        priority = self._zone_priorities.get(zone, {}).get(event, DEFAULT_PRIORITIES[kind])
        body = ZoneEvent(zone, self._names.get((DeviceType.ZONE, zone), ""))
        return Observation(kind, priority, body, (DeviceType.ZONE, zone))

    def _partition_event(self, event: str, partition: int, **fields: int) -> Observation:
        kind = f"satel.partition.{event}"
        name = self._names.get((DeviceType.PARTITION, partition), "")
        body: msgspec.Struct
        if event == "armed":
            body = PartitionArmed(partition, fields["mode"], name)
        else:
            body = PartitionEvent(partition, name)
        return Observation(kind, DEFAULT_PRIORITIES[kind], body, (DeviceType.PARTITION, partition))

    @staticmethod
    def _armed_modes(sets: Mapping[int, frozenset[int]]) -> dict[int, int] | None:
        """Partition → arming mode, or None while any of the four arming bitmaps is unknown."""
        if any(state not in sets for state in ARMING_STATES):
            return None
        modes = {partition: 0 for state in ARMING_STATES for partition in sets[state]}
        for mode, state in ((1, PartitionState.ARMED_MODE_1), (2, PartitionState.ARMED_MODE_2), (3, PartitionState.ARMED_MODE_3)):
            for partition in sets[state]:
                modes[partition] = mode
        return modes

    def _arming_events(self, before: Mapping[int, frozenset[int]]) -> list[Observation]:
        old, new = self._armed_modes(before), self._armed_modes(self._sets)
        if old is None or new is None:
            return []
        events = []
        for partition in sorted(old.keys() | new.keys()):
            if partition not in new:
                events.append(self._partition_event("disarmed", partition))
            elif old.get(partition) != new[partition]:
                events.append(self._partition_event("armed", partition, mode=new[partition]))
        return events

    def _condition_events(self, before: Mapping[int, frozenset[int]]) -> list[Observation]:
        events = []
        for on, off, states in PARTITION_CONDITIONS:
            for partition, entered in _changes(_union(before, states), _union(self._sets, states)):
                events.append(self._partition_event(on if entered else off, partition))
        return events

    def _output_events(self, before: Mapping[int, frozenset[int]]) -> list[Observation]:
        cmd = int(Cmd.OUTPUTS_STATE)
        events = []
        for output, entered in _changes(before.get(cmd), self._sets.get(cmd)):
            kind = "satel.output.on" if entered else "satel.output.off"
            body = OutputEvent(output, self._names.get((DeviceType.OUTPUT, output), ""))
            events.append(Observation(kind, DEFAULT_PRIORITIES[kind], body, (DeviceType.OUTPUT, output)))
        return events

    def _trouble_events(self, before: Mapping[int, frozenset[int]]) -> list[Observation]:
        events = []
        for part, cmd in enumerate(_TROUBLE_COMMANDS, start=1):
            for bit, entered in _changes(before.get(cmd), self._sets.get(cmd)):
                kind = "satel.trouble.on" if entered else "satel.trouble.off"
                events.append(Observation(kind, DEFAULT_PRIORITIES[kind], TroubleEvent(part, bit, trouble_name(part, bit))))
        return events

    def _clock_events(self, status: StatusAnswer) -> list[Observation]:
        """Report once when the panel's clock drifts past the limit, and once when it is back."""
        now = self._clock.now()
        panel_clock = status.clock
        drift: float | None = None
        if panel_clock is not None:
            drift = round((panel_clock.replace(tzinfo=self._tz) - now).total_seconds(), 1)
        off = drift is None or abs(drift) > self.max_clock_drift_s
        was_off, self._clock_off = self._clock_off, off
        # The first check reports only a drifting clock: a correct one is not news.
        if off == bool(was_off):
            return []
        kind = "satel.clock.drift" if off else "satel.clock.synced"
        body = ClockDrift(
            panel_clock.isoformat() if panel_clock is not None else None, now, drift, self.max_clock_drift_s
        )
        return [Observation(kind, DEFAULT_PRIORITIES[kind], body)]

    # --- the snapshot --------------------------------------------------------------------------

    def snapshot(self, *, push: bool) -> PanelSnapshot:
        """Everything known, as the body of a `satel.snapshot` event (unknown bitmaps are empty)."""

        def members(*states: int) -> list[int]:
            return sorted(_union(self._sets, states) or frozenset())

        def names(device_type: DeviceType) -> dict[int, str]:
            return {n: name for (t, n), name in sorted(self._names.items()) if t == device_type and name}

        troubles = [
            TroubleRef(part, bit, trouble_name(part, bit))
            for part, cmd in enumerate(_TROUBLE_COMMANDS, start=1)
            for bit in sorted(self._sets.get(cmd, frozenset()))
        ]
        status = self._status
        return PanelSnapshot(
            module_version=self.module.version if self.module else None,
            panel_type=self.panel.panel_type if self.panel else None,
            panel_version=self.panel.version if self.panel else None,
            wide=self.wide,
            push=push,
            violated=members(ZoneState.VIOLATION),
            tamper=members(ZoneState.TAMPER),
            alarm=members(ZoneState.ALARM),
            tamper_alarm=members(ZoneState.TAMPER_ALARM),
            bypassed=members(ZoneState.BYPASS),
            armed=dict(sorted((self._armed_modes(self._sets) or {}).items())),
            entry_time=members(PartitionState.ENTRY_TIME),
            exit_time=members(*_EXIT_STATES),
            partition_alarm=members(PartitionState.ALARM),
            fire_alarm=members(PartitionState.FIRE_ALARM),
            outputs_on=members(Cmd.OUTPUTS_STATE),
            troubles=troubles,
            service_mode=bool(status and status.service_mode),
            panel_clock=status.clock.isoformat() if status and status.clock else None,
            zone_names=names(DeviceType.ZONE),
            partition_names=names(DeviceType.PARTITION),
            output_names=names(DeviceType.OUTPUT),
        )


def _union(sets: Mapping[int, frozenset[int]], states: Iterable[int]) -> frozenset[int] | None:
    """The union of several bitmaps, or None while any of them is unknown."""
    result: frozenset[int] = frozenset()
    for state in states:
        members = sets.get(int(state))
        if members is None:
            return None
        result |= members
    return result


def _changes(old: frozenset[int] | None, new: frozenset[int] | None) -> list[tuple[int, bool]]:
    """(item, entered) for each item that entered or left the set, in item order; nothing while
    either side is unknown."""
    if old is None or new is None or old == new:
        return []
    return sorted([(item, True) for item in new - old] + [(item, False) for item in old - new])

