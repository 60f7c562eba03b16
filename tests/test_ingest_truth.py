"""What the operator sees is what happened (issue 9 §1, §2, §5, §6): events through the hub's
commit on a real PostgreSQL; no clock minute decides what is a duplicate, a re-installed box is
not ignored, an edge's clock cannot hold a bundle, a planned stop waits out its grace."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

import asyncpg
import msgspec
import pytest

from hub.alarms.apply import raise_overdue_link_alarms
from hub.db.outbox import write_outbox
from shared.envelope import Priority
from support.site import T0, Site


@pytest.fixture
async def site(db: asyncpg.Pool) -> Site:
    return await Site(db).setup({"panel-1": "Bank"})


async def _zone(site: Site, number: int) -> dict[str, Any]:
    raw = await site.pool.fetchval("SELECT state FROM panel_state WHERE element = 'zone' AND number = $1", number)
    return msgspec.json.decode(raw)


def _ms(n: int) -> timedelta:
    return timedelta(milliseconds=n)


async def test_a_flapping_detector_ends_restored_with_every_change_stored(site: Site) -> None:
    """violated → restored → violated → restored inside one second: four events, restored."""
    kinds = ["satel.zone.violation", "satel.zone.restore"] * 2
    envs = [site.env(k, {"zone": 3}, T0 + _ms(200 * i), Priority.LOW) for i, k in enumerate(kinds)]
    for env in envs:  # one batch each, as a live link delivers them
        assert await site.ingest(env) == 1
    assert (await _zone(site, 3))["violated"] is False
    assert await site.pool.fetchval("SELECT count(*) FROM events WHERE kind LIKE 'satel.zone.%'") == 4
    # The same in one batch.
    site2 = await Site(site.pool, "site-2").setup({"panel-9": "Shop"})
    envs = [site2.env(k, {"zone": 3}, T0 + _ms(200 * i), Priority.LOW, source="panel-9") for i, k in enumerate(kinds)]
    assert await site2.ingest(*envs) == 4
    state = await site.pool.fetchval(
        "SELECT state FROM panel_state WHERE panel_id = $1 AND element = 'zone' AND number = 3", site2.panels["panel-9"])
    assert msgspec.json.decode(state)["violated"] is False


async def test_alarm_cleared_then_alarm_again_within_a_minute_is_not_restored(site: Site) -> None:
    await site.ingest(site.env("satel.zone.alarm", {"zone": 1}, T0))
    await site.ingest(site.env("satel.zone.alarm_cleared", {"zone": 1}, T0 + timedelta(seconds=10), Priority.LOW))
    await site.ingest(site.env("satel.zone.alarm", {"zone": 1}, T0 + timedelta(seconds=20)))
    [b] = await site.pool.fetch("SELECT * FROM bundle_alarms")
    assert b["restored_ord"] < b["last_alarm_ord"], "the second alarm came after the clear"
    opening = await site.pool.fetchval("SELECT count(*) FROM bundle_events WHERE bundle_id = $1 AND NOT restore", b["id"])
    assert opening == 2
    assert (await _zone(site, 1))["alarm"] is True


async def test_a_link_flapping_within_a_minute_ends_disconnected(site: Site) -> None:
    kinds = ["edge.link.down", "edge.link.up"] * 2 + ["edge.link.down"]
    for i, kind in enumerate(kinds):
        await site.ingest(site.env(kind, {"link": "satel", "reason": "test"}, T0 + timedelta(seconds=5 * i), Priority.LOW))
    panel = await site.pool.fetchrow("SELECT link_status, link_planned FROM panels")
    assert (panel["link_status"], panel["link_planned"]) == ("DISCONNECTED", False)
    [link] = await site.pool.fetch("SELECT * FROM bundle_alarms WHERE alarm_type = 'LINK'")
    assert link["restored_ord"] < link["last_alarm_ord"], "the last drop is not restored"


async def test_the_same_envelope_twice_is_stored_once_and_leaves_no_gap(site: Site) -> None:
    a = site.env("satel.zone.alarm", {"zone": 1}, T0)
    b = site.env("satel.zone.alarm", {"zone": 1}, T0 + timedelta(seconds=30))
    result = await site.commit(a, a, b)
    assert (result.stored, result.duplicates) == (2, 1)
    assert await site.ingest(a) == 0  # a retry in a later batch
    # A retry filed differently (its ts drifted past the tolerance, so another partition minute)
    # is still known by its (epoch, seq).
    assert await site.ingest(a, now=T0 + timedelta(hours=3)) == 0
    status = await site.pool.fetchrow("SELECT * FROM edge_seq_status WHERE edge_id = 'site-1'")
    assert (status["contiguous_seq"], status["missing"]) == (2, 0)
    assert await site.pool.fetchval("SELECT count(*) FROM events") == 2


async def test_one_occurrence_from_bitmap_and_event_log_is_one_event(site: Site) -> None:
    live = site.env("satel.zone.alarm", {"zone": 4}, T0)
    record = site.env("satel.log.record", {"category": "ALARM", "zone": 4, "restore": False, "offline": False,
                                           "history_only": False, "recorded_at": T0.isoformat()}, T0 + _ms(800))
    live = msgspec.structs.replace(live, occurrence="live:panel-1:1")
    record = msgspec.structs.replace(record, occurrence="live:panel-1:1")
    assert await site.ingest(live) == 1
    result = await site.commit(record)
    assert (result.stored, result.merged) == (0, 1)
    assert await site.pool.fetchval("SELECT merged FROM event_occurrences") == 1
    [b] = await site.pool.fetch("SELECT * FROM bundle_alarms")
    assert b["event_count"] == 1
    # Both in one batch: the first is stored, the second merged; neither seq is a gap.
    again = [msgspec.structs.replace(site.env("satel.zone.alarm", {"zone": 5}, T0 + timedelta(seconds=2)),
                                     occurrence="log:panel-1:77") for _ in range(2)]
    result = await site.commit(*again)
    assert (result.stored, result.merged) == (1, 1)
    assert (await site.pool.fetchrow("SELECT * FROM edge_seq_status"))["missing"] == 0


async def test_an_alarm_read_back_from_the_event_log_says_when_it_happened(site: Site) -> None:
    happened = T0 - timedelta(minutes=7)
    record = site.env("satel.log.record", {"category": "ALARM", "zone": 2, "restore": False, "offline": True,
                                           "history_only": False, "recorded_at": happened.isoformat()}, T0)
    history = site.env("satel.log.record", {"category": "ALARM", "zone": 2, "restore": False, "offline": True,
                                            "history_only": True, "recorded_at": (T0 - timedelta(days=3)).isoformat()},
                       T0, Priority.LOW)
    await site.ingest(msgspec.structs.replace(record, occurrence="log:panel-1:12"), history)
    [b] = await site.pool.fetch("SELECT * FROM bundle_alarms")
    assert (b["alarm_type"], b["offline_happened_at"], b["offline_reported_at"]) == ("BURGLARY", happened, T0)
    assert await site.pool.fetchval("SELECT count(*) FROM events WHERE kind = 'satel.log.record'") == 2


async def test_a_zone_history_records_zone_transitions(site: Site) -> None:
    await site.ingest(site.env("satel.zone.violation", {"zone": 3}, T0, Priority.LOW),
                      site.env("satel.zone.restore", {"zone": 3}, T0 + _ms(500), Priority.LOW))
    rows = await site.pool.fetch("SELECT kind, state FROM panel_state_history WHERE element = 'zone' ORDER BY id")
    assert [(r["kind"], msgspec.json.decode(r["state"])) for r in rows] == [
        ("satel.zone.violation", {"violated": True}), ("satel.zone.restore", {"violated": False})]


async def test_a_new_journal_epoch_is_applied_and_the_old_one_kept(site: Site) -> None:
    """The box's journal is lost: seq 1 again, under a new epoch. Its state applies at once."""
    for i in range(5):
        await site.ingest(site.env("satel.zone.violation" if i % 2 == 0 else "satel.zone.restore", {"zone": 3},
                                   T0 + timedelta(seconds=i), Priority.LOW))
    assert (await _zone(site, 3))["violated"] is True  # seq 5 left it violated
    site.new_journal("b" * 32)
    assert await site.ingest(site.env("satel.zone.restore", {"zone": 3}, T0 + timedelta(minutes=1), Priority.LOW)) == 1
    assert (await _zone(site, 3))["violated"] is False, "seq 1 of the new epoch must win over seq 5 of the old"
    epochs = await site.pool.fetch("SELECT epoch, ordinal, contiguous_seq, missing FROM edge_epoch_status ORDER BY ordinal")
    assert [(r["epoch"], r["ordinal"], r["contiguous_seq"], r["missing"]) for r in epochs] == [
        ("a" * 32, 1, 5, 0), ("b" * 32, 2, 1, 0)]
    assert await site.pool.fetchval("SELECT count(*) FROM events") == 6
    audit = await site.pool.fetch("SELECT details FROM audit_log WHERE action = 'edge.epoch.started' ORDER BY id")
    assert [msgspec.json.decode(a["details"])["epoch"] for a in audit] == ["a" * 32, "b" * 32]
    # A late retry of the old epoch's seq 5 is still a duplicate, not the new epoch's seq 5.
    site.new_journal("a" * 32)
    site.seq = 4
    assert await site.ingest(site.env("satel.zone.violation", {"zone": 3}, T0, Priority.LOW)) == 0


async def test_an_event_dated_a_year_ahead_neither_holds_a_bundle_nor_lands_far(site: Site) -> None:
    future = site.env("satel.zone.alarm", {"zone": 1}, T0 + timedelta(days=365))
    await site.ingest(future, now=T0)
    event = await site.pool.fetchrow("SELECT ts_suspect, minute, tableoid::regclass::text AS part FROM events")
    assert event["ts_suspect"] and event["minute"] == T0
    assert event["part"] != "events_default" and "2027" not in event["part"]
    [b] = await site.pool.fetch("SELECT * FROM bundle_alarms")
    assert b["last_event_at"] == T0
    # Twenty minutes later (hub time) a new break-in opens its own bundle: the year-ahead ts did
    # not stretch the first one's window.
    later = T0 + timedelta(minutes=20)
    await site.ingest(site.env("satel.zone.alarm", {"zone": 2}, later), now=later)
    assert await site.pool.fetchval("SELECT count(*) FROM bundle_alarms") == 2
    skew = await site.pool.fetchval("SELECT clock_skew_s FROM edges WHERE edge_id = 'site-1'")
    assert skew == 0.0  # the newest batch's freshest event was on time
    await site.ingest(site.env("demo.tick", {"n": 1}, later + timedelta(days=365), Priority.LOW), now=later)
    skew = await site.pool.fetchval("SELECT clock_skew_s FROM edges WHERE edge_id = 'site-1'")
    assert skew == pytest.approx(365 * 86400)


async def test_a_planned_stop_waits_out_its_grace_before_a_link_alarm(site: Site) -> None:
    down = site.env("edge.link.down", {"link": "satel", "reason": "edge stopping", "planned": True}, T0, Priority.LOW)
    await site.ingest(down)
    panel = await site.pool.fetchrow("SELECT link_status, link_planned FROM panels")
    assert (panel["link_status"], panel["link_planned"]) == ("DISCONNECTED", True)
    assert await site.pool.fetchval("SELECT count(*) FROM bundle_alarms") == 0

    async def sweep(now: Any) -> int:
        async with site.pool.acquire() as conn, conn.transaction():
            items = await raise_overdue_link_alarms(conn, now, timedelta(minutes=10))
            await write_outbox(conn, items)
            return len(items)

    assert await sweep(T0 + timedelta(minutes=9)) == 0
    assert await sweep(T0 + timedelta(minutes=11)) == 1
    assert await sweep(T0 + timedelta(minutes=12)) == 0, "raised once"
    [b] = await site.pool.fetch("SELECT * FROM bundle_alarms")
    assert b["alarm_type"] == "LINK" and "planned stop" in b["summary"] and b["restored_ord"] < b["last_alarm_ord"]
    await site.ingest(site.env("edge.link.up", {"link": "satel"}, T0 + timedelta(minutes=13), Priority.LOW))
    [b] = await site.pool.fetch("SELECT * FROM bundle_alarms")
    assert b["restored_ord"] > b["last_alarm_ord"]
    # A planned stop that ends within the grace raises nothing.
    await site.ingest(site.env("edge.link.down", {"link": "satel", "planned": True}, T0 + timedelta(minutes=20),
                               Priority.LOW))
    await site.ingest(site.env("edge.link.up", {"link": "satel"}, T0 + timedelta(minutes=22), Priority.LOW))
    assert await sweep(T0 + timedelta(minutes=40)) == 0


async def test_nul_bytes_from_a_device_are_stored(site: Site) -> None:
    env = site.env("satel.zone.violation", {"zone": 1, "name": "Biuro\u0000\u0000"}, T0, Priority.LOW)
    env = msgspec.structs.replace(env, source="panel-1", corr="c\x00")
    assert await site.ingest(env) == 1
    body = await site.pool.fetchval("SELECT body->>'name' FROM events")
    assert body == "Biuro\ufffd\ufffd"


async def test_the_api_shows_zone_history_and_unknown_states_while_the_link_is_down(site: Site) -> None:
    from hub.api.server import build_http
    from hub.secret_box import SecretBox
    from support.api import HeaderAuthenticator, as_role, json_of, start_client

    await site.ingest(site.env("edge.link.up", {"link": "satel"}, T0, Priority.LOW),
                      site.env("satel.zone.violation", {"zone": 3}, T0 + _ms(100), Priority.LOW),
                      site.env("satel.zone.restore", {"zone": 3}, T0 + _ms(300), Priority.LOW),
                      site.env("satel.zone.violation", {"zone": 3}, T0 + _ms(500), Priority.LOW))
    for i, kind in enumerate(["edge.link.down", "edge.link.up", "edge.link.down"]):
        await site.ingest(site.env(kind, {"link": "satel"}, T0 + timedelta(seconds=10 + i), Priority.LOW))
    client = await start_client(build_http(site.pool, HeaderAuthenticator(), [], SecretBox.generate()))
    try:
        panel = site.panels["panel-1"]
        history = await json_of(await client.get(f"/api/v1/panels/{panel}/history?element=zone",
                                                 headers=as_role("OPERATOR")))
        assert [(h["number"], h["state"]) for h in history["items"]] == [
            (3, {"violated": True}), (3, {"violated": False}), (3, {"violated": True})]  # newest first
        state = await json_of(await client.get(f"/api/v1/panels/{panel}/state", headers=as_role("OPERATOR")))
        assert (state["link_status"], state["stale"]) == ("DISCONNECTED", True)
    finally:
        await client.close()


async def test_a_refusal_whose_headers_hold_nuls_is_still_quarantined(site: Site) -> None:
    """Headers come from whoever could publish: a NUL in them must not turn a refusal into a
    batch PostgreSQL refuses (and a partition stuck behind it)."""
    from hub.ingest.commit import RejectRecord, commit_batch
    from hub.ingest.verify import Rejected

    record = RejectRecord("vigil.edge.ghost.evt.3", Rejected("unknown_edge", "edge 'gh\x00st' is not enrolled",
                                                             "gh\x00st", "k\x00", "1-1"),
                          b"\x00payload", {"Vigil-Edge": "gh\x00st"}, 7)
    async with site.pool.acquire() as conn:
        result = await commit_batch(conn, [], [record], T0)
    [held] = await site.pool.fetch("SELECT * FROM ingest_quarantine")
    assert held["id"] == result.quarantine_ids[0] and bytes(held["payload"]) == b"\x00payload"
    assert held["edge_header"] == "gh\ufffdst" and msgspec.json.decode(held["headers"]) == {"Vigil-Edge": "gh\ufffdst"}
    assert await site.pool.fetchval("SELECT summary FROM bundle_alarms") == "edge gh\ufffdst: segments refused (unknown_edge)"


async def test_a_command_given_at_the_edge_is_audited_at_the_hub(site: Site) -> None:
    body = {"command": "disarm", "items": [1], "result": "ACK", "code": 0, "reason": "done",
            "who": "local API from 10.0.0.7"}
    await site.ingest(site.env("satel.command", body, T0, Priority.NORMAL),
                      site.env("edge.link.released", {"link": "satel", "who": "Jan", "why": "DLOADX", "minutes": 10,
                                                      "until": (T0 + timedelta(minutes=10)).isoformat()}, T0,
                               Priority.LOW))
    rows = await site.pool.fetch("SELECT actor, action, target_id, details FROM audit_log "
                                 "WHERE target_type = 'panel' ORDER BY id")
    assert [(r["actor"], r["action"], r["target_id"]) for r in rows] == [
        ("edge:site-1:local API from 10.0.0.7", "panel.command", "site-1/panel-1"),
        ("edge:site-1:Jan", "panel.released", "site-1/panel-1")]
    assert msgspec.json.decode(rows[0]["details"])["body"]["result"] == "ACK"
