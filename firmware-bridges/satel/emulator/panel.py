"""State of the emulated INTEGRA panel: zones, partitions, outputs, troubles, users, event log.

Pure state, no I/O: every mutation records which query commands now answer differently (the
0x7F new-data bits) and tells listeners, which is how the server pushes in push mode.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from ..protocol import (
    Cmd,
    EventRecord,
    MonitoringStatus,
    PartitionState,
    ResultCode,
    UserCode,
    ZoneState,
    event_code,
)
from ..protocol.answers import TEXT_ENCODING
from ..protocol.commands import TROUBLE_BYTES, TROUBLE_MEMORY_BYTES
from . import catalog
from .devices import ModuleInfo, Output, Partition, UnknownDevice, User, Zone
from .event_log import EventLog

Clock = Callable[[], datetime.datetime]


def utc_clock() -> datetime.datetime:
    """The panel's RTC: UTC without tzinfo, as the panel sends it."""
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None)


@dataclass(frozen=True)
class PanelChange:
    """What one mutation changed: query commands with new answers, and new event log indices."""

    commands: frozenset[int]
    events: tuple[int, ...]


_TROUBLE_SIZES = {
    **{Cmd.TROUBLES_1 + i: size for i, size in enumerate(TROUBLE_BYTES)},
    **{Cmd.TROUBLES_MEMORY_1 + i: size for i, size in enumerate(TROUBLE_MEMORY_BYTES)},
}


@dataclass
class Panel:
    """The whole panel. Build it with :func:`~.site.sample_panel` or from your own parts."""

    zones: dict[int, Zone]
    partitions: dict[int, Partition]
    outputs: dict[int, Output]
    users: list[User]
    code_prefix: str = ""
    info: ModuleInfo = field(default_factory=ModuleInfo)
    clock: Clock = utc_clock
    log_size: int = 1024
    new_data: set[int] = field(default_factory=set)
    listeners: list[Callable[[PanelChange], None]] = field(default_factory=list)
    troubles: dict[int, bytearray] = field(init=False)
    events: EventLog = field(init=False)

    def __post_init__(self) -> None:
        self.troubles = {cmd: bytearray(size) for cmd, size in _TROUBLE_SIZES.items()}
        self.events = EventLog(self.log_size)

    # --- lookups --------------------------------------------------------------------------

    def zone(self, number: int) -> Zone:
        """The zone with this number; raises UnknownDevice."""
        try:
            return self.zones[number]
        except KeyError:
            raise UnknownDevice(f"zone {number} does not exist") from None

    def partition(self, number: int) -> Partition:
        """The partition with this number; raises UnknownDevice."""
        try:
            return self.partitions[number]
        except KeyError:
            raise UnknownDevice(f"partition {number} does not exist") from None

    def output(self, number: int) -> Output:
        """The output with this number; raises UnknownDevice."""
        try:
            return self.outputs[number]
        except KeyError:
            raise UnknownDevice(f"output {number} does not exist") from None

    # --- query answers --------------------------------------------------------------------

    def zone_set(self, state: ZoneState) -> frozenset[int]:
        """Zones whose bit is set in the bitmap of ``state``."""
        attribute = _ZONE_ATTRIBUTES.get(state)
        if attribute is None:
            return frozenset()
        return frozenset(n for n, zone in self.zones.items() if getattr(zone, attribute))

    def partition_set(self, state: PartitionState) -> frozenset[int]:
        """Partitions whose bit is set in the bitmap of ``state``."""
        if state is PartitionState.VIOLATED_ZONES:
            return frozenset(zone.partition for zone in self.zones.values() if zone.violated)
        test = _PARTITION_TESTS.get(state)
        if test is None:
            return frozenset()
        return frozenset(n for n, partition in self.partitions.items() if test(partition))

    def outputs_on(self) -> frozenset[int]:
        """Outputs that are on."""
        return frozenset(n for n, output in self.outputs.items() if output.on)

    def status_bytes(self) -> tuple[int, int]:
        """The two 0x1A status bytes: troubles present (byte 1 bit 6), troubles memory (byte 2 bit 5)."""
        troubles = any(any(self.troubles[Cmd.TROUBLES_1 + i]) for i in range(5))
        memory = any(any(self.troubles[Cmd.TROUBLES_MEMORY_1 + i]) for i in range(5))
        return (0x40 if troubles else 0x00), (0x20 if memory else 0x00)

    def authorise(self, code: UserCode) -> User | None:
        """The user whose code (behind the panel's prefix, if any) was sent, or None."""
        digits = code.digits
        if digits is None or not digits.startswith(self.code_prefix):
            return None
        sent = digits[len(self.code_prefix) :]
        return next((user for user in self.users if user.code == sent), None)

    # --- change tracking ------------------------------------------------------------------

    def _snapshot(self) -> dict[int, object]:
        state: dict[int, object] = {cmd.value: self.zone_set(cmd) for cmd in ZoneState}
        state.update({cmd.value: self.partition_set(cmd) for cmd in PartitionState})
        state[Cmd.OUTPUTS_STATE] = self.outputs_on()
        state[Cmd.STATUS] = self.status_bytes()
        state.update({cmd: bytes(data) for cmd, data in self.troubles.items()})
        return state

    @contextmanager
    def _changing(self) -> Iterator[None]:
        before = self._snapshot()
        logged_before = self.events.appended
        yield
        after = self._snapshot()
        changed = frozenset(cmd for cmd, value in after.items() if before[cmd] != value)
        new_events = self.events.latest(self.events.appended - logged_before)
        self.new_data |= changed
        if changed or new_events:
            change = PanelChange(changed, new_events)
            for listener in list(self.listeners):
                listener(change)

    def _log_event(self, code: int, *, restore: bool, partition: int, source: int) -> None:
        """Log event ``code``; ``source`` is what its description kind names (zone, user, 0)."""
        now = self.clock()
        record = EventRecord(
            not_empty=True,
            present=True,
            year_marker=now.year % 4,
            monitoring_1=MonitoringStatus.NOT_MONITORED,
            monitoring_2=MonitoringStatus.NOT_MONITORED,
            event_class=event_code(code).event_class,
            day=now.day,
            month=now.month,
            minutes=now.hour * 60 + now.minute,
            partition=partition,
            restore=restore,
            code=code,
            source=source & 0xFF,
        )
        self.events.append(record)

    # --- what happens on site ---------------------------------------------------------------

    def violate_zone(self, number: int) -> None:
        """A detector sees something; alarms if its partition is armed and it is not bypassed."""
        zone = self.zone(number)
        with self._changing():
            zone.violated = True
            partition = self.partition(zone.partition)
            if partition.armed_mode is not None and not zone.bypassed:
                zone.alarm = zone.alarm_memory = True
                partition.alarm = partition.alarm_memory = True
                self._log_event(catalog.ZONE_ALARM, restore=False, partition=partition.number, source=number)

    def restore_zone(self, number: int) -> None:
        """The detector is quiet again; alarm bits stay until the alarm is cleared."""
        zone = self.zone(number)
        with self._changing():
            zone.violated = False

    def tamper_zone(self, number: int) -> None:
        """The detector's tamper loop opens: a tamper alarm, armed or not."""
        zone = self.zone(number)
        with self._changing():
            zone.tamper = zone.tamper_alarm = zone.tamper_alarm_memory = True
            partition = self.partition(zone.partition)
            partition.alarm = partition.alarm_memory = True
            self._log_event(catalog.TAMPER_ALARM, restore=False, partition=partition.number, source=number)

    def restore_tamper(self, number: int) -> None:
        """The tamper loop closes again."""
        zone = self.zone(number)
        with self._changing():
            zone.tamper = False
            self._log_event(catalog.TAMPER_ALARM, restore=True, partition=zone.partition, source=number)

    def set_temperature(self, number: int, celsius: float | None) -> None:
        """Make a zone a temperature zone reading ``celsius`` (None: temperature unknown)."""
        zone = self.zone(number)
        zone.temperature_raw = 0xFFFF if celsius is None else max(0, min(0xFFFE, round((celsius + 55) * 2)))

    def trigger_trouble(self, name: str) -> None:
        """Raise a named system trouble (see ``catalog.SYSTEM_TROUBLES``) and its memory."""
        trouble = _trouble(name)
        with self._changing():
            _set_bit(self.troubles[Cmd.TROUBLES_1], trouble.bit, True)
            _set_bit(self.troubles[Cmd.TROUBLES_MEMORY_1], trouble.bit, True)
            if trouble.event is not None:
                self._log_event(trouble.event, restore=False, partition=1, source=0)

    def clear_trouble(self, name: str) -> None:
        """End a named system trouble; its memory stays."""
        trouble = _trouble(name)
        with self._changing():
            _set_bit(self.troubles[Cmd.TROUBLES_1], trouble.bit, False)
            if trouble.event is not None:
                self._log_event(trouble.event, restore=True, partition=1, source=0)

    def start_entry_time(self, number: int) -> None:
        """Someone entered an armed partition: entry time runs until disarmed."""
        partition = self.partition(number)
        with self._changing():
            partition.entry_time = True

    def start_exit_time(self, number: int) -> None:
        """Exit time (> 10 s) runs in a partition until it is armed or disarmed."""
        partition = self.partition(number)
        with self._changing():
            partition.exit_time = True

    def rename(self, device: str, number: int, name: str) -> None:
        """Rename a zone, partition or output (``device``), as an installer does with DLOADX.

        The name is kept as given, control bytes included: real panels' names sometimes hold a
        NUL. The module sends its first 16 bytes, CP1250-encoded; raises ValueError for a name
        CP1250 cannot encode and UnknownDevice for an unknown device.
        """
        lookups = {"zone": self.zone, "partition": self.partition, "output": self.output}
        if device not in lookups:
            raise UnknownDevice(f"device kind {device!r} cannot be renamed (known: {', '.join(lookups)})")
        target = lookups[device](number)
        try:
            name.encode(TEXT_ENCODING)
        except UnicodeEncodeError:
            raise ValueError(f"name {name!r} cannot be encoded as {TEXT_ENCODING}") from None
        target.name = name

    def clear_event_log(self) -> None:
        """The installer resets the event log: every record goes, and the reset is the first new one."""
        with self._changing():
            self.events.clear()
            self._log_event(catalog.EVENT_LOG_CLEARED, restore=False, partition=1, source=0)

    # --- what a user with a code can do ----------------------------------------------------

    def _user_for(self, code: UserCode, partitions: Iterable[int]) -> User | ResultCode:
        user = self.authorise(code)
        if user is None:
            return ResultCode.USER_CODE_NOT_FOUND
        wanted = frozenset(partitions)
        if not wanted or not wanted <= user.partitions or not wanted <= self.partitions.keys():
            return ResultCode.NO_ACCESS
        return user

    def arm(self, code: UserCode, partitions: Iterable[int], mode: int, *, force: bool = False) -> ResultCode:
        """Arm partitions: a violated zone refuses (0x11, force allowed), a tampered one always (0x12)."""
        user = self._user_for(code, partitions)
        if isinstance(user, ResultCode):
            return user
        wanted = frozenset(partitions)
        zones = [zone for zone in self.zones.values() if zone.partition in wanted and not zone.bypassed]
        if any(zone.tamper for zone in zones):
            return ResultCode.CANNOT_ARM
        if not force and any(zone.violated for zone in zones):
            return ResultCode.CANNOT_ARM_USE_FORCE
        with self._changing():
            for number in sorted(wanted):
                partition = self.partitions[number]
                partition.armed_mode = mode
                partition.exit_time = partition.entry_time = False
                kind = catalog.FORCED_ARMING if force else catalog.ARMING
                self._log_event(kind, restore=not force, partition=number, source=user.number)
        return ResultCode.OK

    def disarm(self, code: UserCode, partitions: Iterable[int]) -> ResultCode:
        """Disarm partitions; a running alarm stops (its memory stays)."""
        user = self._user_for(code, partitions)
        if isinstance(user, ResultCode):
            return user
        with self._changing():
            for number in sorted(frozenset(partitions)):
                partition = self.partitions[number]
                partition.armed_mode = None
                partition.entry_time = partition.exit_time = partition.alarm = partition.fire_alarm = False
                self._log_event(catalog.ARMING, restore=False, partition=number, source=user.number)
        return ResultCode.OK

    def clear_alarm(self, code: UserCode, partitions: Iterable[int]) -> ResultCode:
        """Clear alarms and alarm memory of partitions and of their zones."""
        user = self._user_for(code, partitions)
        if isinstance(user, ResultCode):
            return user
        wanted = frozenset(partitions)
        with self._changing():
            for number in sorted(wanted):
                partition = self.partitions[number]
                partition.alarm = partition.fire_alarm = False
                partition.alarm_memory = partition.fire_alarm_memory = False
                self._log_event(catalog.ALARM_CLEARED, restore=False, partition=number, source=user.number)
            for zone in self.zones.values():
                if zone.partition in wanted:
                    zone.alarm = zone.tamper_alarm = zone.alarm_memory = zone.tamper_alarm_memory = False
        return ResultCode.OK

    def set_bypass(self, code: UserCode, zones: Iterable[int], bypassed: bool) -> ResultCode:
        """Bypass or unbypass zones in the user's partitions."""
        if self.authorise(code) is None:
            return ResultCode.USER_CODE_NOT_FOUND
        wanted = frozenset(zones)
        if not wanted <= self.zones.keys():
            return ResultCode.NO_ACCESS
        user = self._user_for(code, {self.zones[n].partition for n in wanted})
        if isinstance(user, ResultCode):
            return user
        with self._changing():
            for number in sorted(wanted):
                zone = self.zones[number]
                zone.bypassed = bypassed
                self._log_event(catalog.ZONE_BYPASS, restore=not bypassed, partition=zone.partition, source=number)
        return ResultCode.OK

    def switch_outputs(self, code: UserCode, outputs: Iterable[int], on: bool | None) -> ResultCode:
        """Switch outputs on, off, or toggle them (``on`` None)."""
        if self.authorise(code) is None:
            return ResultCode.USER_CODE_NOT_FOUND
        wanted = frozenset(outputs)
        if not wanted <= self.outputs.keys():
            return ResultCode.NO_ACCESS
        with self._changing():
            for number in wanted:
                output = self.outputs[number]
                output.on = (not output.on) if on is None else on
        return ResultCode.OK


def _trouble(name: str) -> catalog.SystemTrouble:
    try:
        return catalog.SYSTEM_TROUBLES[name]
    except KeyError:
        known = ", ".join(sorted(catalog.SYSTEM_TROUBLES))
        raise UnknownDevice(f"trouble {name!r} does not exist (known: {known})") from None


def _set_bit(data: bytearray, number: int, value: bool) -> None:
    byte, bit = divmod(number - 1, 8)
    if value:
        data[byte] |= 1 << bit
    else:
        data[byte] &= ~(1 << bit) & 0xFF


_ZONE_ATTRIBUTES = {
    ZoneState.VIOLATION: "violated",
    ZoneState.TAMPER: "tamper",
    ZoneState.ALARM: "alarm",
    ZoneState.TAMPER_ALARM: "tamper_alarm",
    ZoneState.ALARM_MEMORY: "alarm_memory",
    ZoneState.TAMPER_ALARM_MEMORY: "tamper_alarm_memory",
    ZoneState.BYPASS: "bypassed",
}

_PARTITION_TESTS: dict[PartitionState, Callable[[Partition], bool]] = {
    PartitionState.ARMED_SUPPRESSED: lambda p: p.armed_mode is not None,
    PartitionState.ARMED: lambda p: p.armed_mode is not None,
    PartitionState.ARMED_MODE_1: lambda p: p.armed_mode == 1,
    PartitionState.ARMED_MODE_2: lambda p: p.armed_mode == 2,
    PartitionState.ARMED_MODE_3: lambda p: p.armed_mode == 3,
    PartitionState.ENTRY_TIME: lambda p: p.entry_time,
    PartitionState.EXIT_TIME_LONG: lambda p: p.exit_time,
    PartitionState.ALARM: lambda p: p.alarm,
    PartitionState.FIRE_ALARM: lambda p: p.fire_alarm,
    PartitionState.ALARM_MEMORY: lambda p: p.alarm_memory,
    PartitionState.FIRE_ALARM_MEMORY: lambda p: p.fire_alarm_memory,
}
