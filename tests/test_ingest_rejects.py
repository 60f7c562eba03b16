"""Forged, tampered and misaddressed segments are refused, counted and recorded, and nothing of
theirs reaches `events` (issue 2, test 6)."""
from __future__ import annotations

from typing import AsyncIterator

import nats
import pytest
from prometheus_client import REGISTRY

from edge.forwarder import build_segment
from edge.journal import JournalRow
from shared import subjects
from shared.bodies import DemoTick
from shared.envelope import JournalEpoch, Priority, encode_envelope, new_envelope
from shared.signing import Signer
from support.topology import Topology
from support.waiting import wait_until

# One journal epoch for the whole run, as one edge box keeps.
EPOCH = JournalEpoch("b" * 32, 1)


def _rows(start: int, n: int, priority: Priority = Priority.LOW) -> list[JournalRow]:
    import msgspec

    return [
        JournalRow(seq, encode_envelope(msgspec.structs.replace(new_envelope("demo.tick", "x", priority, DemoTick(seq)), seq=seq)))
        for seq in range(start, start + n)
    ]


def _rejects(reason: str) -> float:
    return REGISTRY.get_sample_value("vigil_ingest_rejects_total", {"reason": reason}) or 0.0


@pytest.fixture
async def hub_js(topology: Topology) -> AsyncIterator[nats.NATS]:
    """A raw client on the edge's leaf server, for publishing whatever a hostile edge could."""
    assert topology.edge_nats is not None
    nc = await nats.connect(topology.edge_nats.url)
    yield nc
    await nc.close()


async def _publish(nc: nats.NATS, edge: str, lane: str, payload: bytes, headers: dict[str, str]) -> None:
    await nc.jetstream().publish(subjects.edge_lane_subject(edge, lane), payload, headers=headers)


async def test_forged_segments_are_rejected_recorded_and_counted(topology: Topology, hub_js: nats.NATS) -> None:
    site1 = topology.edge_config("site-1")
    site2 = topology.edge_config("site-2")
    signer1 = await topology.enrol(site1)
    await topology.enrol(site2)
    await topology.run_hub(topology.hub_config())
    before = {r: _rejects(r) for r in ("bad_signature", "unknown_key", "unknown_edge", "edge_mismatch")}

    # 1. A tampered body: signed, then one byte of the payload changed.
    good = build_segment("site-1", EPOCH, "evt", _rows(1, 3), signer1)
    tampered = good.payload.replace(b'"n":2', b'"n":9')
    assert tampered != good.payload
    await _publish(hub_js, "site-1", "evt", tampered, good.headers)

    # 2. Signed with a key that is not site-1's, claiming site-1's key id ...
    intruder = Signer.generate()
    forged = build_segment("site-1", EPOCH, "evt", _rows(1, 3), intruder)
    await _publish(hub_js, "site-1", "evt", forged.payload, {**forged.headers, subjects.H_KEY: signer1.key_id})
    # ... and with its own key id.
    forged2 = build_segment("site-1", EPOCH, "evt", _rows(1, 3), intruder)
    await _publish(hub_js, "site-1", "evt", forged2.payload, forged2.headers)

    # 3. An edge nobody enrolled.
    ghost = build_segment("ghost", EPOCH, "evt", _rows(1, 2), intruder)
    await _publish(hub_js, "ghost", "evt", ghost.payload, ghost.headers)

    # 4. site-1, genuinely signed, publishing on site-2's subject.
    misaddressed = build_segment("site-1", EPOCH, "evt", _rows(1, 3), signer1)
    await _publish(hub_js, "site-2", "evt", misaddressed.payload, misaddressed.headers)

    async def recorded() -> bool:
        return await topology.pool.fetchval("SELECT count(*) FROM ingest_rejects") >= 5

    await wait_until(recorded, timeout=30, what="five recorded rejects")
    rows = await topology.pool.fetch("SELECT reason, edge_header, subject FROM ingest_rejects ORDER BY id")
    reasons = sorted(r["reason"] for r in rows)
    assert reasons == ["bad_signature", "bad_signature", "edge_mismatch", "unknown_edge", "unknown_key"]
    audited = await topology.pool.fetch("SELECT action, target_id FROM audit_log WHERE actor = 'system:ingest'")
    assert len(audited) == 5 and {a["action"] for a in audited} == {"envelope.rejected"}
    assert await topology.event_count() == 0
    assert _rejects("bad_signature") - before["bad_signature"] == 2
    assert _rejects("unknown_key") - before["unknown_key"] == 1
    assert _rejects("unknown_edge") - before["unknown_edge"] == 1
    assert _rejects("edge_mismatch") - before["edge_mismatch"] == 1

    # The hub keeps going: a genuine segment on the right subject is accepted. (The tampered copy
    # above carried `good`'s de-duplication id, so `good` itself would be dropped by JetStream as
    # a duplicate: only an edge's own credentials can publish on its subject, see DESIGN §3.)
    genuine = build_segment("site-1", EPOCH, "evt", _rows(1, 3), signer1)
    await _publish(hub_js, "site-1", "evt", genuine.payload, genuine.headers)
    await topology.wait_events(3, timeout=30)
    assert await topology.event_count("site-2") == 0


async def test_a_revoked_edge_is_refused(topology: Topology, hub_js: nats.NATS) -> None:
    from hub.ingest.edge_keys import revoke_edge

    site1 = topology.edge_config("site-1")
    signer = await topology.enrol(site1)
    # key_cache_s=0: every batch re-reads the keys, so the revocation below applies to the very
    # next segment (in production it applies within key_cache_s).
    await topology.run_hub(topology.hub_config(ingest={"key_cache_s": 0}))
    seg = build_segment("site-1", EPOCH, "evt", _rows(1, 1), signer)
    await _publish(hub_js, "site-1", "evt", seg.payload, seg.headers)
    await topology.wait_events(1, timeout=30)

    async with topology.pool.acquire() as conn:
        assert await revoke_edge(conn, "site-1")
    seg2 = build_segment("site-1", EPOCH, "evt", _rows(2, 1), signer)
    await _publish(hub_js, "site-1", "evt", seg2.payload, seg2.headers)

    async def refused() -> bool:
        return bool(await topology.pool.fetchval("SELECT count(*) FROM ingest_rejects WHERE reason = 'revoked_edge'"))

    await wait_until(refused, timeout=30, what="the revoked edge's segment to be refused")
    assert await topology.event_count() == 1


async def test_a_retry_cut_differently_duplicates_nothing(topology: Topology, hub_js: nats.NATS) -> None:
    """After a crash the edge may re-send seqs 1-5 as 1-3 and 4-5: JetStream's msg-id dedup
    cannot catch that, the hub's seq check must."""
    site1 = topology.edge_config("site-1")
    signer = await topology.enrol(site1)
    await topology.run_hub(topology.hub_config())
    rows = _rows(1, 5)
    whole = build_segment("site-1", EPOCH, "evt", rows, signer)
    await _publish(hub_js, "site-1", "evt", whole.payload, whole.headers)
    for part in (rows[:3], rows[3:]):
        seg = build_segment("site-1", EPOCH, "evt", part, signer)
        await _publish(hub_js, "site-1", "evt", seg.payload, seg.headers)
    # An identical retry is dropped by JetStream itself.
    ack = await hub_js.jetstream().publish(subjects.edge_events("site-1"), whole.payload, headers=whole.headers)
    assert ack.duplicate
    extra = build_segment("site-1", EPOCH, "evt", _rows(6, 1), signer)
    await _publish(hub_js, "site-1", "evt", extra.payload, extra.headers)
    await topology.wait_events(6, timeout=30)
    seqs = [r["seq"] for r in await topology.pool.fetch("SELECT seq FROM events ORDER BY seq")]
    assert seqs == [1, 2, 3, 4, 5, 6]
    status = await topology.pool.fetchrow("SELECT * FROM edge_seq_status WHERE edge_id = 'site-1'")
    assert (status["contiguous_seq"], status["missing"]) == (6, 0)


async def test_a_signed_but_unstorable_segment_is_refused_and_does_not_block(topology: Topology, hub_js: nats.NATS) -> None:
    """PostgreSQL's jsonb refuses \\u0000; the edge signed it, so only storing can fail. The hub
    must record it and move on, not retry it forever in front of everything behind it."""
    import msgspec

    site1 = topology.edge_config("site-1")
    signer = await topology.enrol(site1)
    await topology.run_hub(topology.hub_config())
    poison_env = msgspec.structs.replace(new_envelope("demo.tick", "x", Priority.LOW, DemoTick(1)), seq=1,
                                         body=msgspec.Raw(b'{"text":"nul \\u0000 here"}'))
    poison = build_segment("site-1", EPOCH, "evt", [JournalRow(1, encode_envelope(poison_env))], signer)
    await _publish(hub_js, "site-1", "evt", poison.payload, poison.headers)
    after = build_segment("site-1", EPOCH, "evt", _rows(2, 2), signer)
    await _publish(hub_js, "site-1", "evt", after.payload, after.headers)
    await topology.wait_events(2, timeout=30)
    reasons = [r["reason"] for r in await topology.pool.fetch("SELECT reason FROM ingest_rejects")]
    assert reasons == ["unstorable"]
    assert sorted(r["seq"] for r in await topology.pool.fetch("SELECT seq FROM events")) == [2, 3]
