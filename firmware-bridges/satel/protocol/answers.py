"""Typed answers (module → client). Each validates its fields when constructed."""

from __future__ import annotations

import datetime

import msgspec

from .commands import TROUBLE_BYTES, TROUBLE_MEMORY_BYTES, PartitionState, ResultCode, ZoneState
from .events import EventRecord
from .validation import check_items, check_range, check_text, freeze_set

#: Device and event texts are CP1250 (Polish panels; the language byte of 0x7E says which).
TEXT_ENCODING = "cp1250"
NAME_BYTES = 16
SHORT_TEXT_BYTES = 16
LONG_TEXT_BYTES = 46
VERSION_CHARS = 11
#: 0x7D raw value meaning "temperature unknown".
TEMPERATURE_UNKNOWN = 0xFFFF


def _check_version(value: str) -> None:
    if len(value) != VERSION_CHARS or not value.isascii():
        raise ValueError(f"version {value!r} must be {VERSION_CHARS} ASCII characters")


class ZonesAnswer(msgspec.Struct, frozen=True):
    """Zones whose bit is set in the queried zone bitmap."""

    state: ZoneState
    zones: frozenset[int]
    wide: bool = False

    def __post_init__(self) -> None:
        msgspec.structs.force_setattr(self, "state", ZoneState(self.state))
        check_items("zone", freeze_set(self, "zones"), 1, 256 if self.wide else 128)


class PartitionsAnswer(msgspec.Struct, frozen=True):
    """Partitions whose bit is set in the queried partition bitmap."""

    state: PartitionState
    partitions: frozenset[int]

    def __post_init__(self) -> None:
        msgspec.structs.force_setattr(self, "state", PartitionState(self.state))
        check_items("partition", freeze_set(self, "partitions"), 1, 32)


class OutputsAnswer(msgspec.Struct, frozen=True):
    """Outputs that are on."""

    outputs: frozenset[int]
    wide: bool = False

    def __post_init__(self) -> None:
        check_items("output", freeze_set(self, "outputs"), 1, 256 if self.wide else 128)


class StatusAnswer(msgspec.Struct, frozen=True):
    """Panel clock (None when the panel's RTC holds no valid date) and the two status bytes."""

    clock: datetime.datetime | None
    status1: int = 0
    status2: int = 0

    def __post_init__(self) -> None:
        check_range("status byte 1", self.status1, 0, 0xFF)
        check_range("status byte 2", self.status2, 0, 0xFF)

    @property
    def service_mode(self) -> bool:
        """The panel is in service mode."""
        return bool(self.status1 & 0x80)

    @property
    def troubles(self) -> bool:
        """The panel has at least one trouble."""
        return bool(self.status1 & 0x40)

    @property
    def troubles_memory(self) -> bool:
        """The panel has troubles in memory."""
        return bool(self.status2 & 0x20)


class TroublesAnswer(msgspec.Struct, frozen=True):
    """The raw bytes of troubles part 1–5 or of troubles memory part 1–5."""

    part: int
    memory: bool
    data: bytes

    def __post_init__(self) -> None:
        check_range("troubles part", self.part, 1, 5)
        expected = (TROUBLE_MEMORY_BYTES if self.memory else TROUBLE_BYTES)[self.part - 1]
        if len(self.data) != expected:
            raise ValueError(f"troubles part {self.part} holds {expected} bytes, got {len(self.data)}")

    @property
    def active(self) -> frozenset[int]:
        """1-based numbers of the set bits (bit n-1 % 8 of byte (n-1) // 8)."""
        value = int.from_bytes(self.data, "little")
        return frozenset(bit + 1 for bit in range(value.bit_length()) if value >> bit & 1)


class ModuleVersionAnswer(msgspec.Struct, frozen=True):
    """Module firmware as 11 characters (``12320120527`` = v1.23 2012-05-27) and capability bits."""

    version: str
    capabilities: int = 0

    def __post_init__(self) -> None:
        _check_version(self.version)
        check_range("capabilities", self.capabilities, 0, 0xFF)

    @property
    def supports_wide(self) -> bool:
        """The module can serve 32-byte zone and output bitmaps (INTEGRA 256 PLUS)."""
        return bool(self.capabilities & 0x01)


class ZoneTemperatureAnswer(msgspec.Struct, frozen=True):
    """Raw temperature of one zone: °C = -55 + 0.5 · raw; 0xFFFF = unknown."""

    zone: int
    raw: int

    def __post_init__(self) -> None:
        check_range("zone", self.zone, 1, 256)
        check_range("temperature", self.raw, 0, 0xFFFF)

    @property
    def celsius(self) -> float | None:
        """Temperature in °C, or None when the panel does not know it."""
        return None if self.raw == TEMPERATURE_UNKNOWN else -55 + self.raw / 2


class IntegraVersionAnswer(msgspec.Struct, frozen=True):
    """Panel type (72 = INTEGRA 256 PLUS, …), firmware version, language, settings stored in flash."""

    panel_type: int
    version: str
    language: int = 0
    settings_in_flash: bool = True

    def __post_init__(self) -> None:
        check_range("panel type", self.panel_type, 0, 0xFF)
        _check_version(self.version)
        check_range("language", self.language, 0, 0xFF)


class NewDataAnswer(msgspec.Struct, frozen=True):
    """Command codes with new data since they were last read; ``size`` is the answer's byte count."""

    commands: frozenset[int]
    size: int = 5

    def __post_init__(self) -> None:
        check_range("new-data size", self.size, 5, 7)
        check_items("command", freeze_set(self, "commands"), 0, self.size * 8 - 1)


class ResultAnswer(msgspec.Struct, frozen=True):
    """0xEF result of a control command (or of an unknown or refused request)."""

    code: int

    def __post_init__(self) -> None:
        check_range("result code", self.code, 0, 0xFF)

    @property
    def result(self) -> ResultCode | None:
        """The code as a ResultCode, or None for the unnamed 0x8? 'other errors'."""
        try:
            return ResultCode(self.code)
        except ValueError:
            return None

    @property
    def ok(self) -> bool:
        """The command succeeded (00) or was accepted for processing (FF)."""
        return self.code in (ResultCode.OK, ResultCode.ACCEPTED)


class EventAnswer(msgspec.Struct, frozen=True):
    """One event log record; read ``previous_index`` next to walk back through the log."""

    record: EventRecord
    previous_index: int
    requested_index: int

    def __post_init__(self) -> None:
        check_range("event index", self.previous_index, 0, 0xFFFFFF)
        check_range("event index", self.requested_index, 0, 0xFFFFFF)


class EventTextAnswer(msgspec.Struct, frozen=True):
    """Text of an event code, with the kinds of long and short description (manual appendices 2, 3)."""

    code: int
    restore: bool
    long: bool
    long_kind: int
    short_kind: int
    text: str

    def __post_init__(self) -> None:
        check_range("event code", self.code, 0, 0x3FF)
        check_range("long description kind", self.long_kind, 0, 0xFF)
        check_range("short description kind", self.short_kind, 0, 0xFFFF)
        check_text("event text", self.text, LONG_TEXT_BYTES if self.long else SHORT_TEXT_BYTES, TEXT_ENCODING)


class DeviceNameAnswer(msgspec.Struct, frozen=True):
    """Name of a device; ``function`` is its type/reaction; ``extra`` is the 20th byte, if sent.

    ``extra`` is the zone's partition for type 5, the user's serial number + 128 for type 2.
    """

    device_type: int
    number: int
    function: int
    name: str
    extra: int | None = None

    def __post_init__(self) -> None:
        check_range("device type", self.device_type, 0, 0xFF)
        check_range("device number", self.number, 1, 256)
        check_range("device function", self.function, 0, 0xFF)
        check_text("device name", self.name, NAME_BYTES, TEXT_ENCODING)
        if self.extra is not None:
            check_range("device extra byte", self.extra, 0, 0xFF)


class UnknownAnswer(msgspec.Struct, frozen=True):
    """A frame with a command byte this codec does not model (e.g. pushed by newer firmware)."""

    cmd: int
    data: bytes


Answer = (
    ZonesAnswer
    | PartitionsAnswer
    | OutputsAnswer
    | StatusAnswer
    | TroublesAnswer
    | ModuleVersionAnswer
    | ZoneTemperatureAnswer
    | IntegraVersionAnswer
    | NewDataAnswer
    | ResultAnswer
    | EventAnswer
    | EventTextAnswer
    | DeviceNameAnswer
    | UnknownAnswer
)
