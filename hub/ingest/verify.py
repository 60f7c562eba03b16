"""Checks a received segment before anything of it is stored: who sent it, with which key, over
exactly which bytes. Pure code: no I/O, so every rejection reason is tested with plain values."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import msgspec

from shared import subjects
from shared.envelope import Envelope, JournalEpoch, decode_segment
from shared.signing import b64url_decode, verify


@dataclass(frozen=True)
class EdgeKey:
    """What the hub knows about an enrolled edge's key."""

    edge_id: str
    key_id: str
    public_key: bytes
    revoked: bool


@dataclass(frozen=True)
class Accepted:
    """A verified segment."""

    edge_id: str
    lane: str
    epoch: JournalEpoch
    envelopes: list[Envelope]


@dataclass(frozen=True)
class Rejected:
    """Why a segment was refused; `reason` is a short stable code for metrics and the reject table."""

    reason: str
    detail: str
    edge_header: str | None = None
    key_id: str | None = None
    seq_range: str | None = None


REASONS = (
    "bad_subject",
    "missing_header",
    "edge_mismatch",
    "unknown_edge",
    "revoked_edge",
    "unknown_key",
    "bad_signature",
    "malformed",
    "seq_mismatch",
    "epoch_mismatch",
    "lane_mismatch",
    "unstorable",
)


def verify_segment(
    subject: str, headers: Mapping[str, str] | None, payload: bytes, keys: Mapping[str, EdgeKey]
) -> Accepted | Rejected:
    """Verify one stored segment message against the enrolled keys."""
    headers = headers or {}
    edge_h = headers.get(subjects.H_EDGE)
    key_h = headers.get(subjects.H_KEY)
    seq_h = headers.get(subjects.H_SEQ)

    def reject(reason: str, detail: str) -> Rejected:
        return Rejected(reason, detail, edge_h, key_h, seq_h)

    parsed = subjects.parse_stored_subject(subject)
    if parsed is None:
        return reject("bad_subject", f"not an edge events subject: {subject}")
    subject_edge, lane = parsed
    sig_h = headers.get(subjects.H_SIG)
    epoch_h = headers.get(subjects.H_EPOCH)
    if not (edge_h and key_h and sig_h and seq_h and epoch_h):
        return reject("missing_header", "a segment needs Vigil-Edge, Vigil-Key, Vigil-Sig, Vigil-Seq and Vigil-Epoch")
    if edge_h != subject_edge:
        return reject("edge_mismatch", f"Vigil-Edge {edge_h!r} published on {subject_edge!r}'s subject")
    key = keys.get(edge_h)
    if key is None:
        return reject("unknown_edge", f"edge {edge_h!r} is not enrolled")
    if key.revoked:
        return reject("revoked_edge", f"edge {edge_h!r} is revoked")
    if key.key_id != key_h:
        return reject("unknown_key", f"key {key_h!r} is not edge {edge_h!r}'s enrolled key {key.key_id!r}")
    try:
        signature = b64url_decode(sig_h)
    except ValueError:
        return reject("bad_signature", "Vigil-Sig is not base64url")
    if not verify(key.public_key, signature, payload):
        return reject("bad_signature", "signature does not match the segment bytes")
    # Signed by the edge from here on: a failure below is a bug at the edge, still refused.
    try:
        segment = decode_segment(payload)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        return reject("malformed", str(exc))
    if segment.edge != edge_h:
        return reject("edge_mismatch", f"segment names edge {segment.edge!r}, header {edge_h!r}")
    if segment.epoch.id != epoch_h:
        return reject("epoch_mismatch", f"segment is of journal epoch {segment.epoch.id!r}, header {epoch_h!r}")
    if not segment.events:
        return reject("malformed", "empty segment")
    seqs = [e.seq for e in segment.events]
    if seqs[0] < segment.epoch.start:
        return reject("seq_mismatch", f"seq {seqs[0]} is before its epoch's first seq {segment.epoch.start}")
    if any(b <= a for a, b in zip(seqs, seqs[1:])) or f"{seqs[0]}-{seqs[-1]}" != seq_h:
        return reject("seq_mismatch", f"Vigil-Seq {seq_h} but envelopes carry {seqs[0]}..{seqs[-1]} (must increase)")
    for env in segment.events:
        if env.priority.is_alarm_lane != (lane == subjects.LANE_ALARM):
            return reject("lane_mismatch", f"{env.priority.value} event {env.id} on the {lane} lane")
    return Accepted(edge_h, lane, segment.epoch, segment.events)
