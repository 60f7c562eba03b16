"""Typed requests (client → module). Each validates its fields when constructed."""

from __future__ import annotations

import msgspec

from .commands import DEVICES_UP_TO_256, OutputAction, PartitionState, ZoneState
from .user_code import UserCode
from .validation import check_items, check_range, freeze_set

#: ReadEvent index meaning "the newest event of the standard log".
NEWEST_EVENT = 0xFFFFFF
#: Push mode: the 12-byte command mask covers command codes 0..95.
PUSH_MASK_BYTES = 12


def _zone_limit(wide: bool) -> int:
    return 256 if wide else 128


class ReadZones(msgspec.Struct, frozen=True):
    """Query a zone bitmap (0x00–0x08, 0x26, 0x28, 0x29); ``wide`` asks for 32 bytes (1–256)."""

    state: ZoneState = ZoneState.VIOLATION
    wide: bool = False

    def __post_init__(self) -> None:
        msgspec.structs.force_setattr(self, "state", ZoneState(self.state))


class ReadPartitions(msgspec.Struct, frozen=True):
    """Query a 4-byte partition bitmap (0x09–0x16, 0x25, 0x27, 0x2A, 0x2B)."""

    state: PartitionState = PartitionState.ARMED

    def __post_init__(self) -> None:
        msgspec.structs.force_setattr(self, "state", PartitionState(self.state))


class ReadOutputs(msgspec.Struct, frozen=True):
    """Query the outputs state (0x17); ``wide`` asks for 32 bytes (1–256)."""

    wide: bool = False


class ReadStatus(msgspec.Struct, frozen=True):
    """Query the panel clock and basic status bits (0x1A); also a good keepalive."""


class ReadTroubles(msgspec.Struct, frozen=True):
    """Query troubles part 1–5 (0x1B–0x1F) or, with ``memory``, troubles memory (0x20–0x24)."""

    part: int
    memory: bool = False

    def __post_init__(self) -> None:
        check_range("troubles part", self.part, 1, 5)


class ReadModuleVersion(msgspec.Struct, frozen=True):
    """Query the ETHM-1 / INT-RS module version and capabilities (0x7C)."""


class ReadIntegraVersion(msgspec.Struct, frozen=True):
    """Query the INTEGRA panel type and firmware version (0x7E)."""


class ReadZoneTemperature(msgspec.Struct, frozen=True):
    """Query the temperature of one zone (0x7D)."""

    zone: int

    def __post_init__(self) -> None:
        check_range("zone", self.zone, 1, 256)


class ReadNewData(msgspec.Struct, frozen=True):
    """Ask which commands have new data since they were last read (0x7F)."""

    wide: bool = False


class StartPush(msgspec.Struct, frozen=True):
    """ETHM-1 Plus push mode (0x7F + 12 bytes): push these command codes when they change."""

    commands: frozenset[int]

    def __post_init__(self) -> None:
        check_items("push command", freeze_set(self, "commands"), 0, PUSH_MASK_BYTES * 8 - 1)


class Arm(msgspec.Struct, frozen=True):
    """Arm partitions in mode 0–3 (0x80–0x83), or force-arm them (0xA0–0xA3)."""

    code: UserCode
    partitions: frozenset[int]
    mode: int = 0
    force: bool = False

    def __post_init__(self) -> None:
        check_items("partition", freeze_set(self, "partitions"), 1, 32)
        check_range("arming mode", self.mode, 0, 3)


class Disarm(msgspec.Struct, frozen=True):
    """Disarm partitions (0x84)."""

    code: UserCode
    partitions: frozenset[int]

    def __post_init__(self) -> None:
        check_items("partition", freeze_set(self, "partitions"), 1, 32)


class ClearAlarm(msgspec.Struct, frozen=True):
    """Clear the alarm in partitions (0x85)."""

    code: UserCode
    partitions: frozenset[int]

    def __post_init__(self) -> None:
        check_items("partition", freeze_set(self, "partitions"), 1, 32)


class BypassZones(msgspec.Struct, frozen=True):
    """Bypass zones (0x86)."""

    code: UserCode
    zones: frozenset[int]
    wide: bool = False

    def __post_init__(self) -> None:
        check_items("zone", freeze_set(self, "zones"), 1, _zone_limit(self.wide))


class UnbypassZones(msgspec.Struct, frozen=True):
    """Remove the bypass of zones (0x87)."""

    code: UserCode
    zones: frozenset[int]
    wide: bool = False

    def __post_init__(self) -> None:
        check_items("zone", freeze_set(self, "zones"), 1, _zone_limit(self.wide))


class SwitchOutputs(msgspec.Struct, frozen=True):
    """Switch outputs on (0x88), off (0x89) or toggle them (0x91)."""

    code: UserCode
    outputs: frozenset[int]
    action: OutputAction = OutputAction.ON
    wide: bool = False

    def __post_init__(self) -> None:
        check_items("output", freeze_set(self, "outputs"), 1, _zone_limit(self.wide))
        msgspec.structs.force_setattr(self, "action", OutputAction(self.action))


class ReadEvent(msgspec.Struct, frozen=True):
    """Read one event log record (0x8C); start at NEWEST_EVENT, then follow ``previous_index``."""

    index: int = NEWEST_EVENT

    def __post_init__(self) -> None:
        check_range("event index", self.index, 0, 0xFFFFFF)


class ReadEventText(msgspec.Struct, frozen=True):
    """Read the short (16) or long (46 characters) text of an event code (0x8F)."""

    code: int
    restore: bool = False
    long: bool = False

    def __post_init__(self) -> None:
        check_range("event code", self.code, 0, 0x3FF)


class ReadDeviceName(msgspec.Struct, frozen=True):
    """Read the name of a partition, zone, user, expander or output (0xEE)."""

    device_type: int
    number: int

    def __post_init__(self) -> None:
        check_range("device type", self.device_type, 0, 0xFF)
        check_range("device number", self.number, 1, 256)
        if self.number == 256 and self.device_type not in DEVICES_UP_TO_256:
            raise ValueError(f"device number 256 is only valid for zones and outputs, not type {self.device_type}")


Request = (
    ReadZones
    | ReadPartitions
    | ReadOutputs
    | ReadStatus
    | ReadTroubles
    | ReadModuleVersion
    | ReadIntegraVersion
    | ReadZoneTemperature
    | ReadNewData
    | StartPush
    | Arm
    | Disarm
    | ClearAlarm
    | BypassZones
    | UnbypassZones
    | SwitchOutputs
    | ReadEvent
    | ReadEventText
    | ReadDeviceName
)
