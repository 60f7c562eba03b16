"""What the console's report charts read (issue 12): the alarm report's `per_day` counts (calendar
days in the reader's time zone, empty days included, the report's filters and object scope kept)
and the response-time report's p50 beside its p90, per operator. Times are set exactly: bundles
and their claim/ack audit entries are written with known instants."""
from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta, timezone
from urllib.parse import quote

import asyncpg
from aiohttp.test_utils import TestClient

from support.api import as_role
from support.operator_work import ANN, ANN_ID, BOB_ID, add_person, assert_error, get

SQL_BUNDLE = """
INSERT INTO bundle_alarms (object_id, group_key, alarm_type, status, priority, first_event_at, last_event_at,
                           edge_id, source)
VALUES ($1::int8, 'object:' || $1::int8, 'BURGLARY', 'ACK', 'HIGH', $2, $2, 'site-1', 'panel-1') RETURNING id
"""
SQL_MOVE = """
INSERT INTO audit_log (at, actor, action, target_type, target_id) VALUES ($1, $2, $3, 'bundle_alarm', $4::int8::text)
"""
# First events: the second is still 1 March in UTC but 2 March in Warsaw (UTC+1 in March).
BANK_TIMES = [datetime(2026, 3, 1, 22, 30, tzinfo=timezone.utc), datetime(2026, 3, 1, 23, 30, tzinfo=timezone.utc),
              datetime(2026, 3, 4, 10, 0, tzinfo=timezone.utc)]
SHOP_TIME = datetime(2026, 3, 2, 12, 0, tzinfo=timezone.utc)
CLAIM_AFTER_S, ACK_AFTER_S = (10, 20, 60), (30, 40, 100)


async def _alarms(db: asyncpg.Pool) -> tuple[int, int]:
    """Bank's three alarms claimed and acknowledged by Ann, Shop's one claimed by Bob; the objects' ids."""
    await add_person(db, ANN_ID, "ann@x.test", "OPERATOR", "Ann Operator")
    await add_person(db, BOB_ID, "bob@x.test", "OPERATOR")
    bank = await db.fetchval("INSERT INTO objects (name) VALUES ('Bank') RETURNING id")
    shop = await db.fetchval("INSERT INTO objects (name) VALUES ('Shop') RETURNING id")
    for at, claim, ack in zip(BANK_TIMES, CLAIM_AFTER_S, ACK_AFTER_S):
        bundle = await db.fetchval(SQL_BUNDLE, bank, at)
        await db.execute(SQL_MOVE, at + timedelta(seconds=claim), f"user:{ANN_ID}", "alarm.claim", bundle)
        await db.execute(SQL_MOVE, at + timedelta(seconds=ack), f"user:{ANN_ID}", "alarm.ack", bundle)
    bundle = await db.fetchval(SQL_BUNDLE, shop, SHOP_TIME)
    await db.execute(SQL_MOVE, SHOP_TIME + timedelta(seconds=5), f"user:{BOB_ID}", "alarm.claim", bundle)
    return bank, shop


async def _per_day(client: TestClient, query: str = "", headers: dict[str, str] = ANN) -> list[tuple[str, int]]:
    report = await get(client, f"/api/v1/reports/alarms?{query}", headers)
    return [(d["day"], d["alarms"]) for d in report["per_day"]]


async def test_alarms_per_day_count_calendar_days_of_the_readers_zone(api_client: TestClient,
                                                                      db: asyncpg.Pool) -> None:
    bank, shop = await _alarms(db)
    assert await _per_day(api_client) == [("2026-03-01", 2), ("2026-03-02", 1), ("2026-03-03", 0), ("2026-03-04", 1)]
    assert await _per_day(api_client, "time_zone=Europe/Warsaw") == [
        ("2026-03-01", 1), ("2026-03-02", 2), ("2026-03-03", 0), ("2026-03-04", 1)]
    # The report's filters and the caller's objects hold for the counts as for the rows.
    assert await _per_day(api_client, f"object_id={shop}") == [("2026-03-02", 1)]
    since = quote("2026-03-02T00:00:00+00:00")
    assert await _per_day(api_client, f"since={since}") == [("2026-03-02", 1), ("2026-03-03", 0), ("2026-03-04", 1)]
    technician = as_role("TECHNICIAN", 5, [bank])
    assert await _per_day(api_client, "", technician) == [
        ("2026-03-01", 2), ("2026-03-02", 0), ("2026-03-03", 0), ("2026-03-04", 1)]
    assert await _per_day(api_client, f"object_id={shop}", technician) == []
    empty = await get(api_client, f"/api/v1/reports/alarms?since={quote('2027-01-01T00:00:00Z')}", ANN)
    assert (empty["items"], empty["per_day"], empty["truncated"]) == ([], [], False)


async def test_response_times_give_the_median_beside_the_90th_percentile(api_client: TestClient,
                                                                        db: asyncpg.Pool) -> None:
    await _alarms(db)
    report = await get(api_client, "/api/v1/reports/response-times", ANN)
    ann, bob = report["items"]
    assert (ann["operator"], ann["operator_email"], ann["alarms"]) == (f"user:{ANN_ID}", "ann@x.test", 3)
    # percentile_cont: the median of 10, 20, 60 is 20; the 90th lies 0.8 of the way from 20 to 60.
    assert (ann["p50_seconds_to_claim"], ann["p90_seconds_to_claim"], ann["avg_seconds_to_claim"]) == (20, 52, 30)
    assert (ann["p50_seconds_to_ack"], ann["p90_seconds_to_ack"]) == (40, 88)
    assert (bob["p50_seconds_to_claim"], bob["p90_seconds_to_claim"], bob["p50_seconds_to_ack"]) == (5, 5, None)
    resp = await api_client.get("/api/v1/reports/response-times?format=csv", headers=ANN)
    header, *rows = list(csv.reader(io.StringIO(await resp.text())))
    assert header == ["operator", "operator_email", "alarms", "avg_seconds_to_claim", "p50_seconds_to_claim",
                      "p90_seconds_to_claim", "avg_seconds_to_ack", "p50_seconds_to_ack", "p90_seconds_to_ack"]
    assert [r[header.index("p50_seconds_to_ack")] for r in rows] == ["40.0", ""]


async def test_a_bad_time_zone_is_refused_by_name(api_client: TestClient, db: asyncpg.Pool) -> None:
    await _alarms(db)
    before = await db.fetchval("SELECT count(*) FROM audit_log")
    for zone in ("Mars/Olympus", "../../etc/passwd", "europe/warsaw", "X" * 65, ""):
        answer = await get(api_client, f"/api/v1/reports/alarms?time_zone={quote(zone)}", ANN, status=422)
        assert_error(answer, "invalid", "time_zone")
    # A CSV export is refused before it starts, and so audits nothing.
    answer = await get(api_client, "/api/v1/reports/alarms?format=csv&time_zone=Nowhere", ANN, status=422)
    assert_error(answer, "invalid", "time_zone")
    assert await db.fetchval("SELECT count(*) FROM audit_log") == before
    # Only the alarm report counts days; the others take no zone.
    answer = await get(api_client, "/api/v1/reports/response-times?time_zone=UTC", ANN, status=422)
    assert_error(answer, "invalid")
    assert_error(await get(api_client, "/api/v1/reports/alarms", as_role("FIELD_WORKER", 9, []), status=403),
                 "forbidden")
