"""hub.ingest.verify: every reason a segment is refused, with plain values and no I/O."""
from __future__ import annotations

import msgspec
import pytest

from edge.forwarder import build_segment
from edge.journal import JournalRow
from hub.ingest.verify import Accepted, EdgeKey, Rejected, verify_segment
from shared import subjects
from shared.bodies import DemoTick
from shared.envelope import JournalEpoch, Priority, encode_envelope, new_envelope
from shared.signing import Signer

SIGNER = Signer.generate()
EPOCH = JournalEpoch("e1", 1)
KEYS = {"site-1": EdgeKey("site-1", SIGNER.key_id, SIGNER.public_raw, revoked=False)}


def _rows(seqs: list[int], priority: Priority = Priority.LOW) -> list[JournalRow]:
    return [
        JournalRow(s, encode_envelope(msgspec.structs.replace(new_envelope("demo.tick", "x", priority, DemoTick(s)), seq=s)))
        for s in seqs
    ]


def _stored(edge: str = "site-1", lane: str = "evt") -> str:
    return f"vigil.edge.{edge}.{lane}.0"


def test_a_genuine_segment_is_accepted() -> None:
    seg = build_segment("site-1", EPOCH, "evt", _rows([3, 4, 7]), SIGNER)
    verdict = verify_segment(_stored(), seg.headers, seg.payload, KEYS)
    assert isinstance(verdict, Accepted)
    assert [e.seq for e in verdict.envelopes] == [3, 4, 7] and verdict.lane == "evt"


def _reason(subject: str, headers: dict[str, str], payload: bytes, keys: dict[str, EdgeKey] = KEYS) -> str:
    verdict = verify_segment(subject, headers, payload, keys)
    assert isinstance(verdict, Rejected), verdict
    return verdict.reason


def test_rejection_reasons() -> None:
    seg = build_segment("site-1", EPOCH, "evt", _rows([1, 2]), SIGNER)
    h = seg.headers
    assert _reason("vigil.edge.site-1.cmd.0", h, seg.payload) == "bad_subject"
    assert _reason(_stored(), {k: v for k, v in h.items() if k != subjects.H_SIG}, seg.payload) == "missing_header"
    assert _reason(_stored(), None, seg.payload) == "missing_header"  # type: ignore[arg-type]
    assert _reason(_stored("site-2"), h, seg.payload) == "edge_mismatch"
    assert _reason(_stored(), h, seg.payload, {}) == "unknown_edge"
    revoked = {"site-1": EdgeKey("site-1", SIGNER.key_id, SIGNER.public_raw, revoked=True)}
    assert _reason(_stored(), h, seg.payload, revoked) == "revoked_edge"
    assert _reason(_stored(), {**h, subjects.H_KEY: "other"}, seg.payload) == "unknown_key"
    assert _reason(_stored(), {**h, subjects.H_SIG: "!!!"}, seg.payload) == "bad_signature"
    assert _reason(_stored(), h, seg.payload[:-1] + b" ") == "bad_signature"
    assert _reason(_stored(), {**h, subjects.H_SEQ: "1-3"}, seg.payload) == "seq_mismatch"
    assert _reason(_stored(), {k: v for k, v in h.items() if k != subjects.H_EPOCH}, seg.payload) == "missing_header"
    assert _reason(_stored(), {**h, subjects.H_EPOCH: "e2"}, seg.payload) == "epoch_mismatch"


def test_a_seq_before_its_epochs_start_is_refused() -> None:
    seg = build_segment("site-1", JournalEpoch("e1", 5), "evt", _rows([4, 5]), SIGNER)
    assert _reason(_stored(), seg.headers, seg.payload) == "seq_mismatch"
    ok = build_segment("site-1", JournalEpoch("e1", 5), "evt", _rows([5, 6]), SIGNER)
    verdict = verify_segment(_stored(), ok.headers, ok.payload, KEYS)
    assert isinstance(verdict, Accepted) and verdict.epoch == JournalEpoch("e1", 5)


def test_signed_but_inconsistent_segments_are_refused() -> None:
    """A correctly signed segment can still be wrong (a bug at the edge): refuse, don't store."""

    def signed(payload: bytes, seq: str = "1-1") -> tuple[dict[str, str], bytes]:
        from shared.signing import b64url

        return {subjects.H_EDGE: "site-1", subjects.H_KEY: SIGNER.key_id, subjects.H_SIG: b64url(SIGNER.sign(payload)),
                subjects.H_SEQ: seq, subjects.H_EPOCH: "e1"}, payload

    assert _reason(_stored(), *signed(b"not json")) == "malformed"
    assert _reason(_stored(), *signed(b'{"edge":"site-1","epoch":{"id":"e1","start":1},"events":[]}')) == "malformed"
    assert _reason(_stored(), *signed(b'{"edge":"site-1","events":[]}')) == "malformed"  # no epoch
    other_edge = build_segment("site-9", EPOCH, "evt", _rows([1]), SIGNER)
    assert _reason(_stored(), *signed(other_edge.payload)) == "edge_mismatch"
    descending = build_segment("site-1", EPOCH, "evt", _rows([2, 1]), SIGNER)
    assert _reason(_stored(), *signed(descending.payload, "2-1")) == "seq_mismatch"
    critical_on_evt = build_segment("site-1", EPOCH, "evt", _rows([1], Priority.CRITICAL), SIGNER)
    assert _reason(_stored(), critical_on_evt.headers, critical_on_evt.payload) == "lane_mismatch"
    low_on_alarm = build_segment("site-1", EPOCH, "alarm", _rows([1]), SIGNER)
    assert _reason(_stored(lane="alarm"), low_on_alarm.headers, low_on_alarm.payload) == "lane_mismatch"


@pytest.mark.parametrize("junk", [b"", b"\x00" * 100, b"[" * 1000, b'{"edge":"site-1","events":[{}]}'])
def test_garbage_never_raises(junk: bytes) -> None:
    from shared.signing import b64url

    headers = {subjects.H_EDGE: "site-1", subjects.H_KEY: SIGNER.key_id, subjects.H_SIG: b64url(SIGNER.sign(junk)),
               subjects.H_SEQ: "1-1", subjects.H_EPOCH: "e1"}
    assert isinstance(verify_segment(_stored(), headers, junk, KEYS), Rejected)
