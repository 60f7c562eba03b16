"""Typed requests and answers to and from frames.

``encode_request``/``decode_answer`` are what a client uses; ``decode_request``/``encode_answer``
are the module's side (the emulator). All four are pure functions.
"""

from __future__ import annotations

import datetime
import unicodedata
from collections.abc import Callable
from typing import TypeVar

from .answers import (
    LONG_TEXT_BYTES,
    NAME_BYTES,
    SHORT_TEXT_BYTES,
    TEXT_ENCODING,
    Answer,
    DeviceNameAnswer,
    EventAnswer,
    EventTextAnswer,
    IntegraVersionAnswer,
    ModuleVersionAnswer,
    NewDataAnswer,
    OutputsAnswer,
    PartitionsAnswer,
    ResultAnswer,
    StatusAnswer,
    TroublesAnswer,
    UnknownAnswer,
    ZonesAnswer,
    ZoneTemperatureAnswer,
)
from .bitmaps import NARROW_BYTES, PARTITION_BYTES, WIDE_BYTES, decode_bitmap, encode_bitmap, zone_bytes
from .commands import (
    DEVICES_UP_TO_256,
    PARTITION_STATE_CODES,
    TROUBLE_BYTES,
    TROUBLE_MEMORY_BYTES,
    ZONE_STATE_CODES,
    Cmd,
    OutputAction,
    PartitionState,
    ZoneState,
)
from .events import RECORD_BYTES, decode_event_record, encode_event_record
from .frame import Frame, encode_frame
from .requests import (
    PUSH_MASK_BYTES,
    Arm,
    BypassZones,
    ClearAlarm,
    Disarm,
    ReadDeviceName,
    ReadEvent,
    ReadEventText,
    ReadIntegraVersion,
    ReadModuleVersion,
    ReadNewData,
    ReadOutputs,
    ReadPartitions,
    ReadStatus,
    ReadTroubles,
    ReadZones,
    ReadZoneTemperature,
    Request,
    StartPush,
    SwitchOutputs,
    UnbypassZones,
)
from .user_code import CODE_BYTES, UserCode


class SatelDecodeError(ValueError):
    """A frame with a known command byte whose data does not fit that command."""

    def __init__(self, frame: Frame, reason: str) -> None:
        super().__init__(f"command 0x{frame.cmd:02x} with {len(frame.data)} data bytes: {reason}")
        self.frame = frame
        self.reason = reason


_TROUBLES = range(Cmd.TROUBLES_1, Cmd.TROUBLES_1 + 5)
_TROUBLES_MEMORY = range(Cmd.TROUBLES_MEMORY_1, Cmd.TROUBLES_MEMORY_1 + 5)
_ARM = range(Cmd.ARM_MODE_0, Cmd.ARM_MODE_0 + 4)
_FORCE_ARM = range(Cmd.FORCE_ARM_MODE_0, Cmd.FORCE_ARM_MODE_0 + 4)
_OUTPUT_ACTIONS = {action.value for action in OutputAction}
_WIDE_FLAG = b"\x00"  # the one extra request byte that asks for 32-byte zone/output bitmaps
_LONG_TEXT_FLAG = 0x8000
_RESTORE_FLAG = 0x0400

T = TypeVar("T")

# --- requests -------------------------------------------------------------------------------


def _wide_flag(wide: bool) -> bytes:
    return _WIDE_FLAG if wide else b""


def _encode_request_payload(req: Request) -> tuple[int, bytes]:
    match req:
        case ReadZones(state=state, wide=wide):
            return state, _wide_flag(wide)
        case ReadPartitions(state=state):
            return state, b""
        case ReadOutputs(wide=wide):
            return Cmd.OUTPUTS_STATE, _wide_flag(wide)
        case ReadStatus():
            return Cmd.STATUS, b""
        case ReadTroubles(part=part, memory=memory):
            return (Cmd.TROUBLES_MEMORY_1 if memory else Cmd.TROUBLES_1) + part - 1, b""
        case ReadModuleVersion():
            return Cmd.MODULE_VERSION, b""
        case ReadIntegraVersion():
            return Cmd.INTEGRA_VERSION, b""
        case ReadZoneTemperature(zone=zone):
            return Cmd.ZONE_TEMPERATURE, bytes((zone & 0xFF,))
        case ReadNewData(wide=wide):
            return Cmd.NEW_DATA, _wide_flag(wide)
        case StartPush(commands=commands):
            return Cmd.NEW_DATA, encode_bitmap((c + 1 for c in commands), PUSH_MASK_BYTES, what="command")
        case Arm(code=code, partitions=partitions, mode=mode, force=force):
            base = Cmd.FORCE_ARM_MODE_0 if force else Cmd.ARM_MODE_0
            return base + mode, code.raw + encode_bitmap(partitions, PARTITION_BYTES, what="partition")
        case Disarm(code=code, partitions=partitions):
            return Cmd.DISARM, code.raw + encode_bitmap(partitions, PARTITION_BYTES, what="partition")
        case ClearAlarm(code=code, partitions=partitions):
            return Cmd.CLEAR_ALARM, code.raw + encode_bitmap(partitions, PARTITION_BYTES, what="partition")
        case BypassZones(code=code, zones=zones, wide=wide):
            return Cmd.ZONES_BYPASS, code.raw + encode_bitmap(zones, zone_bytes(wide), what="zone")
        case UnbypassZones(code=code, zones=zones, wide=wide):
            return Cmd.ZONES_UNBYPASS, code.raw + encode_bitmap(zones, zone_bytes(wide), what="zone")
        case SwitchOutputs(code=code, outputs=outputs, action=action, wide=wide):
            return action, code.raw + encode_bitmap(outputs, zone_bytes(wide), what="output")
        case ReadEvent(index=index):
            return Cmd.READ_EVENT, index.to_bytes(3, "big")
        case ReadEventText(code=code, restore=restore, long=long):
            word = code | (_RESTORE_FLAG if restore else 0) | (_LONG_TEXT_FLAG if long else 0)
            return Cmd.EVENT_TEXT, word.to_bytes(2, "big")
        case ReadDeviceName(device_type=device_type, number=number):
            return Cmd.DEVICE_NAME, bytes((device_type, number & 0xFF))
    raise TypeError(f"not a Satel request: {req!r}")


def encode_request(req: Request) -> bytes:
    """Encode a request into its complete wire frame (stuffed, with checksum)."""
    cmd, data = _encode_request_payload(req)
    return encode_frame(cmd, data)


def _wide_from_flag(frame: Frame) -> bool:
    if frame.data not in (b"", _WIDE_FLAG):
        raise SatelDecodeError(frame, "expected no data or one 00 byte")
    return frame.data == _WIDE_FLAG


def _expect_size(frame: Frame, *sizes: int) -> None:
    if len(frame.data) not in sizes:
        wanted = " or ".join(str(size) for size in sizes)
        raise SatelDecodeError(frame, f"expected {wanted} data bytes")


def _code_and_bitmap(frame: Frame, bitmap_sizes: tuple[int, ...]) -> tuple[UserCode, bytes]:
    _expect_size(frame, *(CODE_BYTES + size for size in bitmap_sizes))
    return UserCode(frame.data[:CODE_BYTES]), frame.data[CODE_BYTES:]


def _decode_request_payload(frame: Frame) -> Request:
    cmd = frame.cmd
    data = frame.data
    if cmd in ZONE_STATE_CODES:
        return ReadZones(ZoneState(cmd), _wide_from_flag(frame))
    if cmd in PARTITION_STATE_CODES:
        _expect_size(frame, 0)
        return ReadPartitions(PartitionState(cmd))
    if cmd in _ARM or cmd in _FORCE_ARM or cmd in (Cmd.DISARM, Cmd.CLEAR_ALARM):
        code, bitmap = _code_and_bitmap(frame, (PARTITION_BYTES,))
        partitions = decode_bitmap(bitmap)
        if cmd == Cmd.DISARM:
            return Disarm(code, partitions)
        if cmd == Cmd.CLEAR_ALARM:
            return ClearAlarm(code, partitions)
        force = cmd in _FORCE_ARM
        return Arm(code, partitions, cmd - (Cmd.FORCE_ARM_MODE_0 if force else Cmd.ARM_MODE_0), force)
    if cmd in (Cmd.ZONES_BYPASS, Cmd.ZONES_UNBYPASS) or cmd in _OUTPUT_ACTIONS:
        code, bitmap = _code_and_bitmap(frame, (NARROW_BYTES, WIDE_BYTES))
        items = decode_bitmap(bitmap)
        wide = len(bitmap) == WIDE_BYTES
        if cmd == Cmd.ZONES_BYPASS:
            return BypassZones(code, items, wide)
        if cmd == Cmd.ZONES_UNBYPASS:
            return UnbypassZones(code, items, wide)
        return SwitchOutputs(code, items, OutputAction(cmd), wide)
    if cmd in _TROUBLES or cmd in _TROUBLES_MEMORY:
        _expect_size(frame, 0)
        memory = cmd in _TROUBLES_MEMORY
        return ReadTroubles(cmd - (Cmd.TROUBLES_MEMORY_1 if memory else Cmd.TROUBLES_1) + 1, memory)
    match cmd:
        case Cmd.OUTPUTS_STATE:
            return ReadOutputs(_wide_from_flag(frame))
        case Cmd.STATUS:
            _expect_size(frame, 0)
            return ReadStatus()
        case Cmd.MODULE_VERSION:
            _expect_size(frame, 0)
            return ReadModuleVersion()
        case Cmd.INTEGRA_VERSION:
            _expect_size(frame, 0)
            return ReadIntegraVersion()
        case Cmd.ZONE_TEMPERATURE:
            _expect_size(frame, 1)
            return ReadZoneTemperature(data[0] or 256)
        case Cmd.NEW_DATA:
            if len(data) == PUSH_MASK_BYTES:
                return StartPush(decode_bitmap(data, first=0))
            return ReadNewData(_wide_from_flag(frame))
        case Cmd.READ_EVENT:
            _expect_size(frame, 3)
            return ReadEvent(int.from_bytes(data, "big"))
        case Cmd.EVENT_TEXT:
            _expect_size(frame, 2)
            word = int.from_bytes(data, "big")
            return ReadEventText(word & 0x3FF, bool(word & _RESTORE_FLAG), bool(word & _LONG_TEXT_FLAG))
        case Cmd.DEVICE_NAME:
            _expect_size(frame, 2)
            number = data[1] or (256 if data[0] in DEVICES_UP_TO_256 else 0)
            return ReadDeviceName(data[0], number)
    raise SatelDecodeError(frame, "not a request this codec knows")


def _checked(frame: Frame, decode: Callable[[Frame], T]) -> T:
    try:
        return decode(frame)
    except SatelDecodeError:
        raise
    except ValueError as exc:
        raise SatelDecodeError(frame, str(exc)) from exc


def decode_request(frame: Frame) -> Request:
    """Decode a frame received by the module into a typed request.

    Raises SatelDecodeError for an unknown command byte or data that does not fit the command.
    """
    return _checked(frame, _decode_request_payload)


# --- answers --------------------------------------------------------------------------------


def _bcd(value: int, digits: int) -> bytes:
    return bytes.fromhex(f"{value:0{digits}d}")


def _encode_clock(clock: datetime.datetime | None) -> bytes:
    if clock is None:
        return bytes(7)
    return (
        _bcd(clock.year, 4)
        + _bcd(clock.month, 2)
        + _bcd(clock.day, 2)
        + _bcd(clock.hour, 2)
        + _bcd(clock.minute, 2)
        + _bcd(clock.second, 2)
    )


def _decode_clock(data: bytes) -> datetime.datetime | None:
    text = data.hex()
    if not text.isdigit():
        return None
    try:
        return datetime.datetime(
            int(text[0:4]), int(text[4:6]), int(text[6:8]), int(text[8:10]), int(text[10:12]), int(text[12:14])
        )
    except ValueError:
        return None


def _encode_text(value: str, size: int) -> bytes:
    return value.encode(TEXT_ENCODING).ljust(size, b" ")


def _decode_text(data: bytes) -> str:
    """A name or event text as the panel sends it, cleaned: no control characters, no padding."""
    # CP1250 leaves five byte values undefined; a panel should never send them, but a stray one
    # must not make the whole answer undecodable.
    text = data.decode(TEXT_ENCODING, errors="replace")
    # Panels pad with spaces, and some names hold NUL or other control bytes (a name typed on a
    # keypad, or a buffer not cleared): none of them belongs in a name anyone reads.
    return "".join(char for char in text if unicodedata.category(char) != "Cc").rstrip(" ")


def _encode_answer_payload(answer: Answer) -> tuple[int, bytes]:
    match answer:
        case ZonesAnswer(state=state, zones=zones, wide=wide):
            return state, encode_bitmap(zones, zone_bytes(wide), what="zone")
        case PartitionsAnswer(state=state, partitions=partitions):
            return state, encode_bitmap(partitions, PARTITION_BYTES, what="partition")
        case OutputsAnswer(outputs=outputs, wide=wide):
            return Cmd.OUTPUTS_STATE, encode_bitmap(outputs, zone_bytes(wide), what="output")
        case StatusAnswer(clock=clock, status1=status1, status2=status2):
            return Cmd.STATUS, _encode_clock(clock) + bytes((status1, status2))
        case TroublesAnswer(part=part, memory=memory, data=data):
            return (Cmd.TROUBLES_MEMORY_1 if memory else Cmd.TROUBLES_1) + part - 1, data
        case ModuleVersionAnswer(version=version, capabilities=capabilities):
            return Cmd.MODULE_VERSION, version.encode("ascii") + bytes((capabilities,))
        case ZoneTemperatureAnswer(zone=zone, raw=raw):
            return Cmd.ZONE_TEMPERATURE, bytes((zone & 0xFF,)) + raw.to_bytes(2, "big")
        case IntegraVersionAnswer(panel_type=panel_type, version=version, language=language, settings_in_flash=flash):
            tail = bytes((language, 0xFF if flash else 0x00))
            return Cmd.INTEGRA_VERSION, bytes((panel_type,)) + version.encode("ascii") + tail
        case NewDataAnswer(commands=commands, size=size):
            return Cmd.NEW_DATA, encode_bitmap((c + 1 for c in commands), size, what="command")
        case ResultAnswer(code=code):
            return Cmd.RESULT, bytes((code,))
        case EventAnswer(record=record, previous_index=previous_index, requested_index=requested_index):
            indices = previous_index.to_bytes(3, "big") + requested_index.to_bytes(3, "big")
            return Cmd.READ_EVENT, encode_event_record(record) + indices
        case EventTextAnswer(code=code, restore=restore, long=long, long_kind=lk, short_kind=sk, text=text):
            word = code | (_RESTORE_FLAG if restore else 0) | (_LONG_TEXT_FLAG if long else 0)
            size = LONG_TEXT_BYTES if long else SHORT_TEXT_BYTES
            head = word.to_bytes(2, "big") + bytes((lk,)) + sk.to_bytes(2, "big")
            return Cmd.EVENT_TEXT, head + _encode_text(text, size)
        case DeviceNameAnswer(device_type=device_type, number=number, function=function, name=name, extra=extra):
            head = bytes((device_type, number & 0xFF, function))
            tail = b"" if extra is None else bytes((extra,))
            return Cmd.DEVICE_NAME, head + _encode_text(name, NAME_BYTES) + tail
        case UnknownAnswer(cmd=cmd, data=data):
            return cmd, data
    raise TypeError(f"not a Satel answer: {answer!r}")


def encode_answer(answer: Answer) -> bytes:
    """Encode an answer into its complete wire frame (stuffed, with checksum)."""
    cmd, data = _encode_answer_payload(answer)
    return encode_frame(cmd, data)


def _decode_answer_payload(frame: Frame) -> Answer:
    cmd = frame.cmd
    data = frame.data
    if cmd in ZONE_STATE_CODES:
        _expect_size(frame, NARROW_BYTES, WIDE_BYTES)
        return ZonesAnswer(ZoneState(cmd), decode_bitmap(data), len(data) == WIDE_BYTES)
    if cmd in PARTITION_STATE_CODES:
        _expect_size(frame, PARTITION_BYTES)
        return PartitionsAnswer(PartitionState(cmd), decode_bitmap(data))
    if cmd in _TROUBLES or cmd in _TROUBLES_MEMORY:
        memory = cmd in _TROUBLES_MEMORY
        part = cmd - (Cmd.TROUBLES_MEMORY_1 if memory else Cmd.TROUBLES_1) + 1
        _expect_size(frame, (TROUBLE_MEMORY_BYTES if memory else TROUBLE_BYTES)[part - 1])
        return TroublesAnswer(part, memory, data)
    match cmd:
        case Cmd.OUTPUTS_STATE:
            _expect_size(frame, NARROW_BYTES, WIDE_BYTES)
            return OutputsAnswer(decode_bitmap(data), len(data) == WIDE_BYTES)
        case Cmd.STATUS:
            _expect_size(frame, 9)
            return StatusAnswer(_decode_clock(data[:7]), data[7], data[8])
        case Cmd.MODULE_VERSION:
            _expect_size(frame, 12)
            return ModuleVersionAnswer(data[:11].decode("ascii"), data[11])
        case Cmd.ZONE_TEMPERATURE:
            _expect_size(frame, 3)
            return ZoneTemperatureAnswer(data[0] or 256, int.from_bytes(data[1:3], "big"))
        case Cmd.INTEGRA_VERSION:
            _expect_size(frame, 14)
            return IntegraVersionAnswer(data[0], data[1:12].decode("ascii"), data[12], data[13] == 0xFF)
        case Cmd.NEW_DATA:
            _expect_size(frame, 5, 6, 7)
            return NewDataAnswer(decode_bitmap(data, first=0), len(data))
        case Cmd.RESULT:
            _expect_size(frame, 1)
            return ResultAnswer(data[0])
        case Cmd.READ_EVENT:
            _expect_size(frame, RECORD_BYTES + 6)
            record = decode_event_record(data[:RECORD_BYTES])
            previous_index = int.from_bytes(data[8:11], "big")
            return EventAnswer(record, previous_index, int.from_bytes(data[11:14], "big"))
        case Cmd.EVENT_TEXT:
            _expect_size(frame, 5 + SHORT_TEXT_BYTES, 5 + LONG_TEXT_BYTES)
            word = int.from_bytes(data[0:2], "big")
            long = bool(word & _LONG_TEXT_FLAG)
            if long != (len(data) == 5 + LONG_TEXT_BYTES):
                raise SatelDecodeError(frame, "text length does not match the long/short flag")
            short_kind = int.from_bytes(data[3:5], "big")
            restore = bool(word & _RESTORE_FLAG)
            return EventTextAnswer(word & 0x3FF, restore, long, data[2], short_kind, _decode_text(data[5:]))
        case Cmd.DEVICE_NAME:
            _expect_size(frame, 3 + NAME_BYTES, 4 + NAME_BYTES)
            number = data[1] or (256 if data[0] in DEVICES_UP_TO_256 else 0)
            extra = data[19] if len(data) == 4 + NAME_BYTES else None
            return DeviceNameAnswer(data[0], number, data[2], _decode_text(data[3:19]), extra)
    return UnknownAnswer(cmd, data)


def decode_answer(frame: Frame) -> Answer:
    """Decode a frame received from the module into a typed answer.

    Unknown command bytes give UnknownAnswer (push mode may send frames nobody asked for); a known
    command whose data does not fit raises SatelDecodeError.
    """
    return _checked(frame, _decode_answer_payload)


def answer_payload(answer: Answer) -> tuple[int, bytes]:
    """The command byte and unstuffed data bytes an answer is sent as."""
    return _encode_answer_payload(answer)
