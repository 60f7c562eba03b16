"""Hub→edge notices: what the hub tells one edge about its own data (subject
`shared.subjects.edge_notices`). Core NATS, not stored: a notice lost while the edge is offline
is sent again with the next refused segment."""
from __future__ import annotations

from datetime import datetime

import msgspec


class SegmentsRefused(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The hub refused (and quarantined) a segment this edge published."""

    edge: str
    reason: str          # a hub.ingest.verify reason code: unknown_key, bad_signature, …
    detail: str
    key_id: str | None   # the key the segment was signed with
    seq_range: str | None
    quarantine_id: int
    at: datetime


def encode_notice(notice: SegmentsRefused) -> bytes:
    """The notice's wire bytes."""
    return msgspec.json.encode(notice)


def decode_notice(data: bytes) -> SegmentsRefused:
    """Decode a notice; raises msgspec.ValidationError or DecodeError on bad input."""
    return msgspec.json.decode(data, type=SegmentsRefused)
