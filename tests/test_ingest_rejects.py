"""Forged, tampered and misaddressed segments are refused, counted and recorded, and nothing of
theirs reaches `events` (issue 2, test 6)."""
from __future__ import annotations

import os
from typing import AsyncIterator

import nats
import pytest
from nats.aio.msg import Msg
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
    """A raw client with the hub's own NATS user: it publishes whatever it likes into the stream,
    which no edge's leaf credentials allow (tests/test_nats_boundary.py), so the hub's checks are
    what stands here."""
    nc = await topology.connect_hub()
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
        return await topology.pool.fetchval("SELECT count(*) FROM ingest_quarantine") >= 5

    await wait_until(recorded, timeout=30, what="five recorded rejects")
    rows = await topology.pool.fetch("SELECT reason, edge_header, subject FROM ingest_quarantine ORDER BY id")
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
    # a duplicate: only an edge's own credentials can publish on its subject, see docs/architecture.md §3.)
    genuine = build_segment("site-1", EPOCH, "evt", _rows(1, 3), signer1)
    await _publish(hub_js, "site-1", "evt", genuine.payload, genuine.headers)
    await topology.wait_events(3, timeout=30)
    assert await topology.event_count("site-2") == 0


async def test_a_revoked_edge_is_refused(topology: Topology, hub_js: nats.NATS) -> None:
    from datetime import datetime, timezone

    from hub.edges.registry import revoke_edge

    site1 = topology.edge_config("site-1")
    signer = await topology.enrol(site1)
    # key_cache_s=0: every batch re-reads the keys, so the revocation below applies to the very
    # next segment (in production it applies within key_cache_s).
    await topology.run_hub(topology.hub_config(ingest={"key_cache_s": 0}))
    seg = build_segment("site-1", EPOCH, "evt", _rows(1, 1), signer)
    await _publish(hub_js, "site-1", "evt", seg.payload, seg.headers)
    await topology.wait_events(1, timeout=30)

    async with topology.pool.acquire() as conn:
        assert await revoke_edge(conn, "site-1", "user:1", datetime.now(timezone.utc), None)
    seg2 = build_segment("site-1", EPOCH, "evt", _rows(2, 1), signer)
    await _publish(hub_js, "site-1", "evt", seg2.payload, seg2.headers)

    async def refused() -> bool:
        return bool(await topology.pool.fetchval("SELECT count(*) FROM ingest_quarantine WHERE reason = 'revoked_edge'"))

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


async def test_one_unstorable_envelope_is_quarantined_alone_and_blocks_nothing(topology: Topology,
                                                                                hub_js: nats.NATS) -> None:
    """PostgreSQL's jsonb refuses a number past numeric's range; the edge signed it, so only
    storing fails. The other 255 envelopes of its segment are stored, the bad one is quarantined alone (its seq
    a gap until replayed), and what follows is not held up."""
    import msgspec

    site1 = topology.edge_config("site-1")
    signer = await topology.enrol(site1)
    await topology.run_hub(topology.hub_config())
    rows = _rows(1, 256)
    poison_env = msgspec.structs.replace(new_envelope("demo.tick", "x", Priority.LOW, DemoTick(1)), seq=100,
                                         body=msgspec.Raw(b'{"reading":1e1000000}'))
    rows[99] = JournalRow(100, encode_envelope(poison_env))
    poison = build_segment("site-1", EPOCH, "evt", rows, signer)
    await _publish(hub_js, "site-1", "evt", poison.payload, poison.headers)
    after = build_segment("site-1", EPOCH, "evt", _rows(257, 2), signer)
    await _publish(hub_js, "site-1", "evt", after.payload, after.headers)
    await topology.wait_events(257, timeout=60)
    held = await topology.pool.fetch("SELECT reason, envelope_seq, status, payload FROM ingest_quarantine")
    assert [(r["reason"], r["envelope_seq"], r["status"]) for r in held] == [("unstorable", 100, "HELD")]
    assert bytes(held[0]["payload"]) == poison.payload  # the whole signed segment, for a replay
    seqs = {r["seq"] for r in await topology.pool.fetch("SELECT seq FROM events")}
    assert seqs == set(range(1, 259)) - {100}
    status = await topology.pool.fetchrow("SELECT * FROM edge_seq_status WHERE edge_id = 'site-1'")
    assert (status["contiguous_seq"], status["missing"]) == (99, 1)


async def test_a_segment_under_an_unknown_key_is_quarantined_told_alarmed_and_replayed(
        topology: Topology, hub_js: nats.NATS) -> None:
    """A box re-keyed without telling the hub: its segment is kept whole, the edge hears of it, the
    operators get a HIGH SYSTEM alarm, and `python -m hub quarantine replay` stores it once the
    hub knows the new key (issue 9 §4)."""
    import asyncio
    import json
    import subprocess
    import sys

    from shared.notices import decode_notice
    from shared.signing import b64url

    site1 = topology.edge_config("site-1")
    await topology.enrol(site1)
    await topology.run_hub(topology.hub_config(ingest={"key_cache_s": 0}))
    notices: asyncio.Queue[bytes] = asyncio.Queue()
    async def collect(msg: Msg) -> None:
        notices.put_nowait(msg.data)

    sub = await hub_js.subscribe(subjects.edge_notices("site-1"), cb=collect)
    await hub_js.flush()
    new_key = Signer.generate()
    seg = build_segment("site-1", EPOCH, "alarm", _rows(1, 3, Priority.HIGH), new_key)
    await _publish(hub_js, "site-1", "alarm", seg.payload, seg.headers)

    notice = decode_notice(await asyncio.wait_for(notices.get(), 30))
    assert (notice.edge, notice.reason, notice.key_id, notice.seq_range) == ("site-1", "unknown_key", new_key.key_id, "1-3")
    await sub.unsubscribe()
    [held] = await topology.pool.fetch("SELECT * FROM ingest_quarantine")
    assert (held["id"], held["status"], held["reason"]) == (notice.quarantine_id, "HELD", "unknown_key")
    [alarm] = await topology.pool.fetch("SELECT * FROM bundle_alarms")
    assert (alarm["alarm_type"], alarm["priority"], alarm["summary"]) == (
        "SYSTEM", "HIGH", "edge site-1: segments refused (unknown_key)")
    assert await topology.event_count() == 0

    env = {**os.environ, "VIGIL_HUB_DATABASE_URL": topology.dsn}

    def hub_cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "hub", *args], env=env, capture_output=True, text=True, timeout=60)

    still = hub_cli("quarantine", "replay", "--edge", "site-1")  # the hub does not know the key yet
    assert still.returncode == 1 and json.loads(still.stdout)["reason"] == "unknown_key"
    listed = hub_cli("quarantine", "list")
    assert listed.returncode == 0 and json.loads(listed.stdout)["id"] == held["id"]
    assert hub_cli("edge", "add", "site-1", b64url(new_key.public_raw)).returncode == 0
    replayed = hub_cli("quarantine", "replay", str(held["id"]))
    assert replayed.returncode == 0, replayed.stderr
    assert json.loads(replayed.stdout) == {"id": held["id"], "replayed": True, "stored": 3, "reason": None}
    assert await topology.event_count() == 3
    assert await topology.pool.fetchval("SELECT status FROM ingest_quarantine") == "REPLAYED"
    again = hub_cli("quarantine", "replay", str(held["id"]))  # nothing held any more: nothing twice
    assert again.returncode == 0 and again.stdout == "" and await topology.event_count() == 3
    # A forgery is given up with a reason (the README's commands, as an admin types them).
    forger = Signer.generate()
    forged = build_segment("site-1", EPOCH, "evt", _rows(4, 1), forger)
    await _publish(hub_js, "site-1", "evt", forged.payload, forged.headers)

    async def held_again() -> int | None:
        return await topology.pool.fetchval("SELECT id FROM ingest_quarantine WHERE status = 'HELD'")

    await wait_until(held_again, timeout=30, what="the forgery quarantined")
    forged_id = await held_again()
    assert hub_cli("quarantine", "drop", str(forged_id), "--note", "").returncode == 2  # a reason is required
    dropped = hub_cli("quarantine", "drop", str(forged_id), "--note", "forged, not the box")
    assert dropped.returncode == 0 and json.loads(dropped.stdout) == {"id": forged_id, "dropped": True}
    assert hub_cli("quarantine", "replay", "--all").stdout == ""  # dropped is never replayed
    assert hub_cli("quarantine", "drop", str(forged_id), "--note", "again").returncode == 1
    assert await topology.event_count() == 3
    audit = {r["action"] for r in await topology.pool.fetch("SELECT action FROM audit_log")}
    assert {"envelope.rejected", "quarantine.replayed", "quarantine.dropped"} <= audit
