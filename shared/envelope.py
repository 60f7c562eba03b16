"""The envelope every edge→hub fact travels in, and the signed segment that carries a run of them.

Envelopes are encoded once at the edge (when the journal assigns their seq) and those bytes are
what the journal stores, what the segment concatenates and what the signature covers. The body
travels as raw JSON so the hub can store it without re-encoding; `decode_body` gives the typed
Struct for a kind (registered in `shared.bodies`) when code needs it.
"""
from __future__ import annotations

import enum
import uuid
from datetime import datetime

import msgspec

from shared.clock import SYSTEM_CLOCK, Clock
from shared.ids import uuid7

ENVELOPE_VERSION = 1


class Priority(str, enum.Enum):
    """The edge's default priority; the hub may override it per zone."""

    CRITICAL = "CRITICAL"
    HIGH = "HIGH"
    NORMAL = "NORMAL"
    LOW = "LOW"

    @property
    def is_alarm_lane(self) -> bool:
        """CRITICAL and HIGH travel on their own lane so a live alarm overtakes a backlog."""
        return self in (Priority.CRITICAL, Priority.HIGH)


class Envelope(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One observation, as docs/architecture.md §3 describes it."""

    id: uuid.UUID
    seq: int
    ts: datetime
    kind: str
    source: str
    priority: Priority
    body: msgspec.Raw
    corr: str | None = None
    # One physical occurrence that can reach the hub by two paths (a zone alarm seen in the state
    # bitmap and read again from the panel's event log) carries the same key on both envelopes;
    # the hub stores one event per (edge, occurrence). None for everything else.
    occurrence: str | None = None
    v: int = ENVELOPE_VERSION


class JournalEpoch(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Which incarnation of an edge's journal numbered the seqs.

    A journal gets a random epoch id when it is created; a box whose journal is lost (disk swap,
    reinstall) starts a new epoch at seq 1, and the hub orders and de-duplicates by
    (epoch, seq), so the new journal's events are neither ignored nor mistaken for old ones.
    `start` is the epoch's first seq (1, or the first unforwarded seq of a journal that predates
    epochs), so the hub can report a gap at the start of an epoch too.
    """

    id: str
    start: int


class Segment(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A run of one edge's envelopes from one journal epoch, signed once over its encoded bytes.

    The edge id and the epoch are inside the signed bytes so a segment cannot be replayed as
    another edge's, or as another epoch's.
    """

    edge: str
    epoch: JournalEpoch
    events: list[Envelope]


_json_encoder = msgspec.json.Encoder()
_segment_decoder = msgspec.json.Decoder(Segment)
_envelope_decoder = msgspec.json.Decoder(Envelope)


def new_envelope(
    kind: str,
    source: str,
    priority: Priority,
    body: msgspec.Struct,
    *,
    corr: str | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> Envelope:
    """A fresh envelope for an observation made now; the journal assigns its seq on append."""
    return Envelope(
        id=uuid7(), seq=0, ts=clock.now(), kind=kind, source=source, priority=priority,
        body=encode_body(body), corr=corr,
    )


def encode_body(body: msgspec.Struct) -> msgspec.Raw:
    """Encode a body Struct once, so it can ride inside an envelope unchanged."""
    return msgspec.Raw(_json_encoder.encode(body))


def decode_body(env: Envelope) -> msgspec.Struct:
    """The typed body of an envelope; raises KeyError for a kind with no registered body."""
    from shared.bodies import BODY_TYPES

    return msgspec.json.decode(env.body, type=BODY_TYPES[env.kind])


def encode_envelope(env: Envelope) -> bytes:
    """The canonical bytes of one envelope (what the journal stores)."""
    return _json_encoder.encode(env)


def decode_envelope(data: bytes) -> Envelope:
    """Decode one envelope; raises msgspec.ValidationError or DecodeError on bad input."""
    return _envelope_decoder.decode(data)


def join_segment(edge: str, epoch: JournalEpoch, encoded_envelopes: list[bytes]) -> bytes:
    """Build segment bytes from already-encoded envelopes without re-encoding them.

    The result is exactly what `encode(Segment(edge, epoch, events))` would produce.
    """
    head = _json_encoder.encode({"edge": edge, "epoch": epoch, "events": []})[:-2]  # drop the closing `]}`
    return head + b",".join(encoded_envelopes) + b"]}"


def decode_segment(data: bytes) -> Segment:
    """Decode a segment; raises msgspec.ValidationError or DecodeError on bad input."""
    return _segment_decoder.decode(data)
