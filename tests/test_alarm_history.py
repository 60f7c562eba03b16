"""Alarm history (issue 12): the list searches closed alarms by object, type, priority, time,
operator and resolution, paged and object-scoped; any alarm opens with its merged timeline; the
reports carry and count resolutions."""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import quote

import asyncpg
from aiohttp.test_utils import TestClient

from hub.alarms.outcomes import RESOLUTIONS
from shared.envelope import Priority
from support.api import as_role
from support.operator_work import (ANN, ANN_ID, BOB, BOB_ID, MASTER, MASTER_ID, TECH_ID, assert_error, get, post,
                                   scene, walk)
from support.site import T0

SQL_SHOP_FIRE = """
INSERT INTO bundle_alarms (object_id, group_key, alarm_type, status, priority, first_event_at, last_event_at,
                           edge_id, source, resolution, claimed_by)
VALUES ($1::int8, 'object:' || $1::int8, 'FIRE', 'CLOSED', 'CRITICAL', $2, $2, 'site-1', 'shop-panel', 'TEST', 'user:3')
RETURNING id
"""


@dataclass
class History:
    bank: int
    shop: int
    closed: int      # Ann worked it, FALSE_ALARM; the master closed it
    handed: int      # Bob claimed it, the master gave it to Ann, TECHNICAL_FAULT; RESOLVED
    waiting: int     # HIGH, still NEW
    shop_fire: int   # the other object's, CLOSED with TEST


async def _history(db: asyncpg.Pool, client: TestClient) -> History:
    s = await scene(db)
    closed = await s.alarm(T0)
    await walk(client, closed, ANN, "claim", "start", "ack", "resolve")
    await walk(client, closed, MASTER, "close")
    handed = await s.alarm(T0 + timedelta(hours=1))
    worked = await walk(client, handed, BOB, "claim", "start")
    await post(client, f"/api/v1/alarms/{handed}/take-over",
               {"version": worked["version"], "reason": "Bob went home", "to_user_id": ANN_ID}, MASTER)
    await post(client, f"/api/v1/alarms/{handed}/checklist/2", None, ANN)
    await post(client, f"/api/v1/alarms/{handed}/dispatch-log", {"contact_id": s.contacts[0], "outcome": "BUSY"},
               ANN, status=201)
    await walk(client, handed, ANN, "ack", "resolve", resolution="TECHNICAL_FAULT")
    waiting = await s.alarm(T0 + timedelta(hours=2), priority=Priority.HIGH)
    shop_fire = await db.fetchval(SQL_SHOP_FIRE, s.other_object_id, T0 + timedelta(hours=3))
    return History(s.object_id, s.other_object_id, closed, handed, waiting, shop_fire)


async def _ids(client: TestClient, query: str, headers: dict[str, str] = ANN) -> list[int]:
    return [a["id"] for a in (await get(client, f"/api/v1/alarms?{query}", headers))["items"]]


async def test_the_history_search_finds_closed_alarms_by_every_filter(api_client: TestClient,
                                                                     db: asyncpg.Pool) -> None:
    h = await _history(db, api_client)
    assert await _ids(api_client, "status=CLOSED") == [h.closed, h.shop_fire]
    assert await _ids(api_client, "status=CLOSED&order=newest") == [h.shop_fire, h.closed]
    assert await _ids(api_client, "order=newest") == [h.shop_fire, h.waiting, h.handed, h.closed]
    assert await _ids(api_client, "resolution=FALSE_ALARM") == [h.closed]
    assert await _ids(api_client, "resolution=TECHNICAL_FAULT&resolution=TEST&order=newest") == [h.shop_fire, h.handed]
    assert await _ids(api_client, "alarm_type=FIRE") == [h.shop_fire]
    assert await _ids(api_client, "alarm_type=BURGLARY&status=NEW") == [h.waiting]
    assert await _ids(api_client, "priority=HIGH") == [h.waiting]
    assert await _ids(api_client, f"object_id={h.shop}") == [h.shop_fire]
    since = quote((T0 + timedelta(minutes=30)).isoformat())
    until = quote((T0 + timedelta(hours=2, minutes=30)).isoformat())
    assert await _ids(api_client, f"since={since}&until={until}&order=newest") == [h.waiting, h.handed]
    # An operator is whoever claimed, started, acknowledged or resolved it, or holds it now.
    assert await _ids(api_client, f"operator={ANN_ID}&order=newest") == [h.shop_fire, h.handed, h.closed]
    assert await _ids(api_client, f"operator={BOB_ID}") == [h.handed]  # claimed it, before the take-over
    assert await _ids(api_client, f"operator={MASTER_ID}") == []  # closed one and reassigned one: not worked
    page = await get(api_client, "/api/v1/alarms?order=newest&limit=2&offset=1", ANN)
    assert ([a["id"] for a in page["items"]], page["total"]) == ([h.waiting, h.handed], 4)
    closed = (await get(api_client, "/api/v1/alarms?status=CLOSED", ANN))["items"][0]
    assert (closed["resolution"], closed["resolution_label"]) == ("FALSE_ALARM", RESOLUTIONS["FALSE_ALARM"])


async def test_history_stays_within_a_technicians_objects(api_client: TestClient, db: asyncpg.Pool) -> None:
    h = await _history(db, api_client)
    tech = as_role("TECHNICIAN", TECH_ID, [h.bank])
    assert await _ids(api_client, "status=CLOSED", tech) == [h.closed]
    assert await _ids(api_client, f"object_id={h.shop}", tech) == []
    assert await _ids(api_client, f"operator={ANN_ID}&order=newest", tech) == [h.handed, h.closed]
    for path in (f"/api/v1/alarms/{h.shop_fire}", f"/api/v1/alarms/{h.shop_fire}/timeline"):
        assert_error(await get(api_client, path, tech, status=404), "not_found")


async def test_bad_search_values_are_refused_by_name(api_client: TestClient, db: asyncpg.Pool) -> None:
    # A list parameter's refusal names the bad item, as every query of the API does.
    for query, field in (("resolution=ESCAPED", "resolution[0]"), ("operator=0", "operator"),
                         ("operator=ann", "operator"), ("alarm_type=BURGLARY&alarm_type=" + "X" * 51, "alarm_type[1]"),
                         ("status=GONE", "status[0]"), ("order=oldest", "order"), ("since=yesterday", "since")):
        assert_error(await get(api_client, f"/api/v1/alarms?{query}", ANN, status=422), "invalid", field)


async def test_a_past_alarm_opens_with_its_whole_timeline(api_client: TestClient, db: asyncpg.Pool) -> None:
    h = await _history(db, api_client)
    timeline = await get(api_client, f"/api/v1/alarms/{h.handed}/timeline", as_role("TECHNICIAN", TECH_ID, [h.bank]))
    assert timeline["bundle_id"] == h.handed and timeline["events_truncated"] is False
    items = timeline["items"]
    assert [i["at"] for i in items] == sorted(i["at"] for i in items)
    assert [(i["kind"], i["text"]) for i in items] == [
        ("event", "Zone 3 Biuro: alarm"),
        ("event", "Partition 1 Parter: alarm"),
        ("transition", "Claimed by bob@x.test"),
        ("transition", "Started by bob@x.test"),
        ("transition", "Reassigned from bob@x.test to Ann Operator by Maria Master: Bob went home"),
        ("checklist", "Step 2 done: Call the keyholder"),
        ("dispatch", "Call to Jan Kowalski (+48 600 100 200): busy"),
        ("transition", "Acknowledged by Ann Operator"),
        ("transition", f"Resolved by Ann Operator: {RESOLUTIONS['TECHNICAL_FAULT']}"),
    ]
    who = [(i["who"] or {}).get("id") for i in items]
    assert who == [None, None, BOB_ID, BOB_ID, MASTER_ID, ANN_ID, ANN_ID, ANN_ID, ANN_ID]
    assert items[4]["details"]["reason"] == "Bob went home" and items[6]["details"]["outcome"] == "BUSY"
    assert items[0]["details"]["kind"] == "satel.zone.alarm"
    assert_error(await get(api_client, "/api/v1/alarms/424242/timeline", ANN, status=404), "not_found")


async def test_reports_carry_and_count_resolutions(api_client: TestClient, db: asyncpg.Pool) -> None:
    h = await _history(db, api_client)
    report = await get(api_client, "/api/v1/reports/alarms?resolution=FALSE_ALARM", ANN)
    assert [(r["id"], r["resolution"]) for r in report["items"]] == [(h.closed, "FALSE_ALARM")]
    everyone = await get(api_client, "/api/v1/reports/resolutions", ANN)
    counts = {r["resolution"]: r["alarms"] for r in everyone["items"]}
    assert [r["resolution"] for r in everyone["items"]] == [*RESOLUTIONS, None]
    assert counts == {**{code: 0 for code in RESOLUTIONS}, "FALSE_ALARM": 1, "TECHNICAL_FAULT": 1, "TEST": 1, None: 1}
    assert everyone["items"][-1]["label"] == "Not resolved yet"
    mine = await get(api_client, "/api/v1/reports/resolutions", as_role("TECHNICIAN", TECH_ID, [h.bank]))
    assert {r["resolution"]: r["alarms"] for r in mine["items"] if r["alarms"]} == {
        "FALSE_ALARM": 1, "TECHNICAL_FAULT": 1, None: 1}
    since = quote((T0 + timedelta(minutes=30)).isoformat())
    later = await get(api_client, f"/api/v1/reports/resolutions?since={since}&resolution=TEST", ANN)
    assert {r["resolution"]: r["alarms"] for r in later["items"] if r["alarms"]} == {"TEST": 1}

    resp = await api_client.get("/api/v1/reports/resolutions?format=csv", headers=ANN)
    rows = list(csv.reader(io.StringIO(await resp.text())))
    assert rows[0] == ["resolution", "label", "alarms"] and rows[1] == ["FALSE_ALARM", RESOLUTIONS["FALSE_ALARM"], "1"]
    assert rows[-1] == ["", "Not resolved yet", "1"]
    resp = await api_client.get("/api/v1/reports/alarms?format=csv&resolution=TECHNICAL_FAULT", headers=ANN)
    [header, row] = list(csv.reader(io.StringIO(await resp.text())))
    assert row[header.index("resolution")] == "TECHNICAL_FAULT" and row[header.index("id")] == str(h.handed)
    assert_error(await get(api_client, "/api/v1/reports/resolutions?resolution=NOPE", ANN, status=422), "invalid",
                 "resolution[0]")
    assert_error(await get(api_client, "/api/v1/reports/resolutions", as_role("FIELD_WORKER", 9, [h.bank]),
                           status=403), "forbidden")
