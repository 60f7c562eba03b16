"""An edge's status report: the latest value of what the hub cannot see from its events — journal
backlog per lane, device links, the edge's clock and journal epoch (docs/architecture.md §4).

The agent sends one every `status_report.interval_s` (30 s) on `shared.subjects.edge_status` as a
core NATS request: not stored in JetStream, never an event, and the hub keeps only the newest per
edge. It is signed with the edge's key like a segment (headers `Vigil-Key`, `Vigil-Sig`), over the
payload behind a context prefix, so a report's signature can never pass for a segment's or the
other way round.

Order is `(epoch, run, n)`, never the edge's clock (§8 rule 7): `run` counts the agent's starts in
its journal, `n` the reports within one run.
"""
from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

from shared import subjects
from shared.signing import Signer, b64url, b64url_decode, verify

# What the signature covers before the payload: a report's signature is not a segment's.
SIGNATURE_CONTEXT = b"vigil edge status v1\n"

Count = Annotated[int, msgspec.Meta(ge=0)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
UtcTime = Annotated[datetime, msgspec.Meta(tz=True)]


class LaneBacklog(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One forwarding lane's journal rows not yet acknowledged by the hub."""

    rows: Count
    oldest_age_s: Annotated[float, msgspec.Meta(ge=0)] | None = None  # edge clock now − the oldest row's ts
    # Rows the hub acknowledged per second since the previous report (None: no previous report
    # in this run): with `rows`, how long the catch-up has left.
    forwarded_per_s: Annotated[float, msgspec.Meta(ge=0)] | None = None


class LinkReport(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One device link, e.g. a Satel panel: its state word (`up`, `down`, `connecting`, …) since when."""

    kind: Name
    id: Name
    state: Name
    since: UtcTime | None = None


class EdgeStatusReport(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What an edge says of itself, as of `sent_at` (its own clock)."""

    edge: str
    epoch: Annotated[str, msgspec.Meta(max_length=64)]  # the journal epoch id
    run: Annotated[int, msgspec.Meta(ge=1)]  # the agent start this report comes from (counted in the journal)
    n: Annotated[int, msgspec.Meta(ge=1)]  # the report's number within that run
    sent_at: UtcTime
    interval_s: Annotated[float, msgspec.Meta(gt=0, le=3600)]  # the next report is due this long after
    lanes: Annotated[dict[str, LaneBacklog], msgspec.Meta(max_length=8)]
    links: Annotated[list[LinkReport], msgspec.Meta(max_length=256)]
    journal_bytes: Count
    version: Annotated[str, msgspec.Meta(max_length=64)]  # the agent's software version


def encode_report(report: EdgeStatusReport) -> bytes:
    """The report's wire bytes."""
    return msgspec.json.encode(report)


def decode_report(data: bytes) -> EdgeStatusReport:
    """Decode a report; raises msgspec.ValidationError or DecodeError on bad input."""
    return msgspec.json.decode(data, type=EdgeStatusReport)


def report_headers(signer: Signer, payload: bytes) -> dict[str, str]:
    """The headers that sign `payload` with the edge's key."""
    return {subjects.H_KEY: signer.key_id, subjects.H_SIG: b64url(signer.sign(SIGNATURE_CONTEXT + payload))}


def signature_valid(public_key: bytes, signature_b64: str, payload: bytes) -> bool:
    """True when `signature_b64` (a Vigil-Sig header) signs `payload` as a status report under
    `public_key`."""
    try:
        signature = b64url_decode(signature_b64)
    except ValueError:
        return False
    return verify(public_key, signature, SIGNATURE_CONTEXT + payload)


class StatusAnswer(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The hub's answer to a report: its own clock, so the edge can judge a command's expiry (set
    by the hub's clock) even when the box's clock is off (`edge.hub_clock`)."""

    hub_time: UtcTime


def encode_answer(answer: StatusAnswer) -> bytes:
    """The bytes of the hub's answer."""
    return msgspec.json.encode(answer)


def decode_answer(data: bytes) -> StatusAnswer:
    """The hub's answer; msgspec errors when it is not one (an older hub answers empty)."""
    return msgspec.json.decode(data, type=StatusAnswer)
