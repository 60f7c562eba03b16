"""Debugging CLI: ``python -m firmware_bridges.satel.protocol decode [--key KEY] HEX…``.

Prints one JSON object per frame, error or busy banner found in the bytes, decrypting first when
an integration key is given. ``data`` is the frame's data as given; decoded user codes in
``fields`` are shown as ``<redacted>``.
"""

from __future__ import annotations

import argparse
import datetime
import enum
import json
import re
import sys
from collections.abc import Sequence

import msgspec

from .channel import FrameChannel
from .answers import UnknownAnswer
from .codec import SatelDecodeError, decode_answer, decode_request
from .commands import command_name
from .frame import Busy, ErrorReason, Frame, FrameEvent
from .user_code import UserCode

# Read-only properties worth showing next to the raw fields.
_DERIVED = ("result", "ok", "celsius", "service_mode", "troubles", "troubles_memory", "supports_wide", "is_end")
_SEPARATORS = re.compile(r"[\s:\-]+")


def _jsonable(value: object) -> object:
    if isinstance(value, UserCode):
        return "<redacted>"
    if isinstance(value, msgspec.Struct):
        return _fields(value)
    if isinstance(value, frozenset):
        return sorted(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, enum.StrEnum):
        return value.value
    if isinstance(value, enum.IntEnum):
        return value.name.lower()
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    return value


def _fields(struct: msgspec.Struct) -> dict[str, object]:
    out = {name: _jsonable(getattr(struct, name)) for name in struct.__struct_fields__}
    for name in _DERIVED:
        if hasattr(type(struct), name):
            out[name] = _jsonable(getattr(struct, name))
    return out


def _describe_frame(cmd: int, data: bytes, crc_ok: bool) -> dict[str, object]:
    out: dict[str, object] = {"cmd": cmd, "name": command_name(cmd), "data": data.hex(), "crc_ok": crc_ok}
    if not crc_ok:
        return out
    frame = Frame(cmd, data)
    errors = []
    for direction, decode in (("answer", decode_answer), ("request", decode_request)):
        try:
            message = decode(frame)
        except SatelDecodeError as exc:
            errors.append(f"as {direction}: {exc.reason}")
            continue
        if isinstance(message, UnknownAnswer):
            continue
        out.update(direction=direction, type=type(message).__name__, fields=_fields(message))
        return out
    out["error"] = "; ".join(errors) or "unknown command"
    return out


def describe(event: FrameEvent) -> dict[str, object]:
    """A JSON-ready description of one decoder event."""
    if isinstance(event, Busy):
        return {"name": "busy"}
    if isinstance(event, Frame):
        return _describe_frame(event.cmd, event.data, True)
    if event.reason is ErrorReason.BAD_CHECKSUM:
        return _describe_frame(event.raw[0], event.raw[1:-2], False)
    return {"name": "protocol_error", "reason": event.reason.value, "raw": event.raw.hex(), "size": event.size}


def parse_hex(parts: Sequence[str]) -> bytes:
    """Join HEX arguments, ignoring spaces, colons and dashes; raises ValueError on bad hex."""
    text = _SEPARATORS.sub("", "".join(parts))
    try:
        return bytes.fromhex(text)
    except ValueError as exc:
        raise ValueError(f"not hexadecimal bytes: {text!r}") from exc


def _decode(args: argparse.Namespace) -> int:
    try:
        data = parse_hex(args.hex)
        channel = FrameChannel.for_key(args.key)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for event in channel.feed(data):
        print(json.dumps(describe(event), ensure_ascii=False))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m firmware_bridges.satel.protocol``."""
    parser = argparse.ArgumentParser(prog="python -m firmware_bridges.satel.protocol", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    decode = commands.add_parser("decode", help="decode captured bytes into JSON, one object per line")
    decode.add_argument("--key", help="integration key, when the bytes are the encrypted wire form")
    decode.add_argument("hex", nargs="+", help="bytes as hex; spaces and colons are ignored")
    args = parser.parse_args(argv)
    return _decode(args)


if __name__ == "__main__":
    sys.exit(main())
