"""What the stream sends (msgspec), and an outbox row as the stream holds it.

Every message is JSON with a `type`; `change` and `heartbeat` carry the outbox `sequence_id` as
`cursor`, which the client presents to resume.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import datetime

import msgspec

_encoder = msgspec.json.Encoder()


class Change(msgspec.Struct, tag_field="type", tag="change"):
    """One outbox row."""

    cursor: int
    topic: str
    object_id: int | None
    payload: msgspec.Raw  # the row's JSON as PostgreSQL returned it: never decoded, never re-encoded


class Heartbeat(msgspec.Struct, tag_field="type", tag="heartbeat"):
    """Sent when the stream was otherwise quiet, and once when catch-up is complete."""

    cursor: int


class ReplayOverflow(msgspec.Struct, tag_field="type", tag="replay_overflow"):
    """The client fell too far behind: reload from REST after `retry_after_ms`, then reconnect."""

    retry_after_ms: int


def ws_text_frame(data: bytes) -> bytes:
    """`data` as one final, unmasked, uncompressed WebSocket text frame (RFC 6455 §5.2): what a
    server sends, identical for every client, so it is built once per row."""
    size = len(data)
    if size < 126:
        head = struct.pack("!BB", 0x81, size)
    elif size < 1 << 16:
        head = struct.pack("!BBH", 0x81, 126, size)
    else:
        head = struct.pack("!BBQ", 0x81, 127, size)
    return head + data


#: Rows of this topic are samples: each client gets at most one per robot per interval, the
#: latest (hub.stream.throttle), and none on catch-up.
THROTTLED_TOPIC = "robot.telemetry"


class _Sampled(msgspec.Struct):
    robot_id: str | None = msgspec.field(default=None, name="robotId")


def _throttle_key(topic: str, payload_json: str) -> str | None:
    """The robot a telemetry row is about (None for every other row, or one that names none)."""
    if topic != THROTTLED_TOPIC:
        return None
    try:
        return msgspec.json.decode(payload_json, type=_Sampled).robot_id
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


@dataclass(frozen=True, slots=True)
class Row:
    """An outbox row with its `change` message encoded once, and framed once for WebSocket,
    however many clients get it. `throttle_key` names the robot of a telemetry sample."""

    seq: int
    created_at: datetime
    topic: str
    object_id: int | None
    data: bytes
    ws_frame: bytes
    throttle_key: str | None = None

    @classmethod
    def from_record(cls, seq: int, created_at: datetime, topic: str, object_id: int | None, payload_json: str) -> Row:
        data = _encoder.encode(Change(seq, topic, object_id, msgspec.Raw(payload_json.encode())))
        return cls(seq, created_at, topic, object_id, data, ws_text_frame(data), _throttle_key(topic, payload_json))


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One encoded message and what its framing needs: the SSE event name, and the id a client
    resumes from (changes only)."""

    kind: str
    data: bytes
    event_id: int | None = None


def change(row: Row) -> Outgoing:
    return Outgoing("change", row.data, row.seq)


def change_at(row: Row, cursor: int) -> Outgoing:
    """A row sent after rows newer than it (a held telemetry sample): it carries the cursor the
    client has reached, so its resume point never moves back."""
    if cursor == row.seq:
        return change(row)
    held = msgspec.json.decode(row.data, type=Change)
    return Outgoing("change", _encoder.encode(Change(cursor, held.topic, held.object_id, held.payload)), cursor)


def heartbeat(cursor: int) -> Outgoing:
    return Outgoing("heartbeat", _encoder.encode(Heartbeat(cursor)))


def replay_overflow(retry_after_ms: int) -> Outgoing:
    return Outgoing("replay_overflow", _encoder.encode(ReplayOverflow(retry_after_ms)))
