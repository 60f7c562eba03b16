"""Frame layer: checksum, byte stuffing and the streaming frame decoder.

Wire form (both directions): ``FE FE | cmd | data… | crc.hi | crc.lo | FE 0D`` where any ``FE``
among cmd, data and the two checksum bytes is sent as ``FE F0``.
"""

from __future__ import annotations

from array import array
from enum import StrEnum

import msgspec

SYNC = b"\xfe\xfe"
END = b"\xfe\x0d"
BUSY_BANNER = b"\x10Busy!\r\n"

#: Largest unstuffed frame body (cmd + data + checksum) the decoder accepts. The longest answer in
#: the protocol is well under 100 bytes; the encrypted wire form caps a frame at 249 bytes anyway.
MAX_BODY = 256
#: How many bytes of offending input a ProtocolError keeps, so errors stay small.
MAX_RAW = 64

_CRC_START = 0x147A
_ESCAPED_FE = b"\xfe\xf0"
_FE = 0xFE


def _build_crc_table() -> array[int]:
    """Per-state part of one checksum step: everything except adding the data byte.

    The table has 255 extra entries so the running value need not be masked after adding a
    byte: index ``i`` above 0xFFFF holds the entry for ``i & 0xFFFF``.
    """
    table = array("H")
    for index in range(0x10000 + 0xFF):
        crc = index & 0xFFFF
        rotated = ((crc << 1) & 0xFFFF) | (crc >> 15)
        rotated ^= 0xFFFF
        table.append((rotated + (rotated >> 8)) & 0xFFFF)
    return table


# A lookup table turns the rotate/xor/add-high-byte step into one index, which is what lets the
# decoder reach its throughput target in pure Python. Unsigned shorts keep it at 128 KiB instead of
# 2.5 MiB of int objects in a list, with no loss of speed: every edge agent carries this table.
_CRC_STEP = _build_crc_table()


def checksum(data: bytes | bytearray | memoryview) -> int:
    """Return the Satel checksum of ``cmd + data`` (before stuffing)."""
    crc = _CRC_START
    step = _CRC_STEP
    for byte in data:
        crc = step[crc] + byte
    return crc & 0xFFFF


def stuff(raw: bytes) -> bytes:
    """Escape every ``FE`` as ``FE F0``."""
    return raw.replace(b"\xfe", _ESCAPED_FE)


def encode_frame(cmd: int, data: bytes = b"") -> bytes:
    """Build the complete wire frame for one command byte and its data bytes."""
    if not 0 <= cmd <= 0xFF:
        raise ValueError(f"command byte {cmd!r} is outside 0..255")
    body = bytes((cmd,)) + bytes(data)
    if len(body) + 2 > MAX_BODY:
        raise ValueError(f"frame body of {len(body) + 2} bytes exceeds {MAX_BODY}")
    return SYNC + stuff(body + checksum(body).to_bytes(2, "big")) + END


class Frame(msgspec.Struct, frozen=True, gc=False):
    """One well-formed frame with a correct checksum."""

    cmd: int
    data: bytes


class Busy(msgspec.Struct, frozen=True, gc=False):
    """The module's ``\\x10Busy!\\r\\n`` banner: another client holds the connection."""


class ErrorReason(StrEnum):
    """Why a stretch of input was not a frame."""

    GARBAGE = "garbage"  # bytes outside any frame
    BAD_CHECKSUM = "bad_checksum"  # raw = the whole unstuffed body: cmd, data, received checksum
    BAD_ESCAPE = "bad_escape"  # FE followed by something other than F0, 0D or FE
    TRUNCATED = "truncated"  # a new FE FE arrived before the frame ended
    TOO_SHORT = "too_short"  # fewer than cmd + 2 checksum bytes
    TOO_LONG = "too_long"  # no FE 0D within MAX_BODY bytes
    BAD_PDU = "bad_pdu"  # encrypted mode: a PDU too short to hold its header
    ID_MISMATCH = "id_mismatch"  # encrypted mode: id_r is not our last id_s


class ProtocolError(msgspec.Struct, frozen=True, gc=False):
    """Input the decoder skipped; decoding continues with the next frame.

    ``raw`` holds at most ``MAX_RAW`` bytes of the offending input, ``size`` its full length.
    """

    reason: ErrorReason
    raw: bytes
    size: int


FrameEvent = Frame | ProtocolError | Busy


def protocol_error(reason: ErrorReason, raw: bytes | bytearray) -> ProtocolError:
    """Build a ProtocolError keeping at most MAX_RAW bytes of ``raw``."""
    return ProtocolError(reason, bytes(raw[:MAX_RAW]), len(raw))


def _banner_prefix_length(buf: bytearray, start: int) -> int:
    """Length of the longest tail of ``buf[start:]`` that could still grow into the banner."""
    longest = min(len(BUSY_BANNER) - 1, len(buf) - start)
    for size in range(longest, 0, -1):
        if buf.endswith(BUSY_BANNER[:size]):
            return size
    return 0


class FrameDecoder:
    """Streaming decoder: feed it bytes in any chunking, get frames, errors and banners back.

    It never raises on input and keeps at most about ``2 * MAX_BODY`` bytes between calls.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._in_frame = False
        self._start = 0  # first stuffed body byte of the current frame, as an index into _buf
        self._scan = 0  # where to continue looking for the next FE inside the current frame

    @property
    def buffered(self) -> int:
        """Bytes held back between calls (a partial frame, or a tail that may start one)."""
        return len(self._buf)

    def feed(self, data: bytes | bytearray | memoryview) -> list[FrameEvent]:
        """Consume ``data`` and return the events completed by it, in stream order."""
        buf = self._buf
        buf += data
        events: list[FrameEvent] = []
        # Both steps return where to go on from, or -(keep + 1) when they need more input and the
        # buffer must be kept from index ``keep`` on.
        position = 0 if self._in_frame else self._hunt(buf, 0, events)
        while position >= 0:
            position = self._read_frame(buf, events)
            if position >= 0:
                position = self._hunt(buf, position, events)
        self._compact(buf, -position - 1)
        return events

    def _compact(self, buf: bytearray, keep_from: int) -> None:
        if keep_from:
            del buf[:keep_from]
            self._start -= keep_from
            self._scan -= keep_from

    def _hunt(self, buf: bytearray, pos: int, events: list[FrameEvent]) -> int:
        """Skip to the next frame start.

        Returns ``-(keep + 1)`` when more input is needed (``keep`` = first byte to retain), or a
        non-negative value when a frame body starts at ``self._start``.
        """
        while True:
            sync = buf.find(SYNC, pos)
            limit = sync if sync >= 0 else len(buf)
            if limit > pos:
                banner = buf.find(BUSY_BANNER, pos, limit)
                if banner >= 0:
                    if banner > pos:
                        events.append(protocol_error(ErrorReason.GARBAGE, buf[pos:banner]))
                    events.append(Busy())
                    pos = banner + len(BUSY_BANNER)
                    continue
                if sync < 0:
                    keep = 1 if buf[-1] == _FE else _banner_prefix_length(buf, pos)
                    if limit - keep > pos:
                        events.append(protocol_error(ErrorReason.GARBAGE, buf[pos : limit - keep]))
                    return -(limit - keep) - 1
                events.append(protocol_error(ErrorReason.GARBAGE, buf[pos:sync]))
            elif sync < 0:
                return -pos - 1
            return self._enter_frame(buf, sync)

    def _enter_frame(self, buf: bytearray, sync: int) -> int:
        """Consume a run of FE bytes starting at ``sync`` and start a frame after it."""
        end = len(buf)
        run_end = sync + 2
        while run_end < end and buf[run_end] == _FE:
            run_end += 1
        if run_end == end:
            # The run may continue or turn out to be FE FE + escaped FE; three FEs say as much as
            # a thousand, so keep at most three.
            return -max(sync, end - 3) - 1
        if buf[run_end] == 0xF0 and run_end - sync >= 3:
            run_end -= 1  # FE FE then FE F0: the last FE escapes a literal FE command byte
        self._in_frame = True
        self._start = self._scan = run_end
        return run_end

    def _read_frame(self, buf: bytearray, events: list[FrameEvent]) -> int:
        """Advance inside the current frame.

        Returns the position to resume hunting from, or ``-(keep + 1)`` when more input is needed.
        """
        start = self._start
        scan = self._scan
        end = len(buf)
        while True:
            fe = buf.find(b"\xfe", scan)
            if fe < 0 or fe + 1 == end:
                waiting_at = fe if fe >= 0 else end
                if waiting_at - start > 2 * MAX_BODY:
                    events.append(protocol_error(ErrorReason.TOO_LONG, buf[start:waiting_at]))
                    self._in_frame = False
                    return waiting_at
                self._scan = waiting_at
                return -start - 1
            marker = buf[fe + 1]
            if marker == 0xF0:
                scan = fe + 2
                continue
            self._in_frame = False
            if marker == 0x0D:
                events.append(self._finish(bytes(buf[start:fe])))
                return fe + 2
            if marker == _FE:
                events.append(protocol_error(ErrorReason.TRUNCATED, buf[start:fe]))
                return fe
            events.append(protocol_error(ErrorReason.BAD_ESCAPE, buf[start : fe + 2]))
            return fe + 1

    @staticmethod
    def _finish(stuffed: bytes) -> Frame | ProtocolError:
        body = stuffed.replace(_ESCAPED_FE, b"\xfe")
        size = len(body)
        if size < 3:
            return protocol_error(ErrorReason.TOO_SHORT, body)
        if size > MAX_BODY:
            return protocol_error(ErrorReason.TOO_LONG, body)
        if checksum(body[:-2]) != (body[-2] << 8 | body[-1]):
            # Keep the whole body (at most MAX_BODY bytes) so a debugging tool can still show it.
            return ProtocolError(ErrorReason.BAD_CHECKSUM, body, size)
        return Frame(body[0], body[1:-2])
