"""CH-08: 10 operators racing for the same alarms through the REST API — each GETs the alarm and
claims it with the version it saw, all at once; then the winner starts it and all 10 race to
acknowledge it. Each alarm is claimed by exactly one operator and acknowledged once, by the
claimant; the losers get a 409 and leave no transition behind (audit log and timeline).

The HTTP app is the hub's own (real sign-in, real PostgreSQL, over TCP, as the stream tests run it:
tests/test_stream_helpers.running_hub); the race is in the database's transactions, which is what
a second API process would share."""
from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from shared.envelope import Priority
from support.chaos import Stopwatch, figure, full
from support.site import T0, Site
from test_stream_helpers import running_hub

pytestmark = pytest.mark.chaos
ID = "CH-08"
OPERATORS = 10


async def _try(client: TestClient, path: str, body: dict[str, Any], headers: dict[str, str]) -> tuple[int, Any]:
    resp = await client.post(path, json=body, headers=headers)
    return resp.status, await resp.json()


async def _version(client: TestClient, bundle_id: int, headers: dict[str, str]) -> int:
    resp = await client.get(f"/api/v1/alarms/{bundle_id}", headers=headers)
    body = await resp.json()
    assert resp.status == 200, body
    return body["version"]


async def _race(client: TestClient, bundle_id: int, action: str, operators: list[dict[str, str]]) -> list[int]:
    """Every operator reads the alarm, then all post `action` at once; each one's status."""
    versions = await asyncio.gather(*(_version(client, bundle_id, h) for h in operators))
    answers = await asyncio.gather(*(_try(client, f"/api/v1/alarms/{bundle_id}/{action}", {"version": v}, h)
                                     for v, h in zip(versions, operators)))
    for status, body in answers:
        assert status in (200, 409), (status, body)  # a loser is told, never a 500
    return [status for status, _ in answers]


async def test_ch08_ten_operators_race_for_the_same_alarms(db: asyncpg.Pool, db_dsn: str, tmp_path: Path) -> None:
    alarms = 50 if full() else 6
    site = await Site(db).setup({f"panel-{k}": f"Object {k}" for k in range(alarms)})
    for k in range(alarms):
        await site.ingest(site.env("satel.zone.alarm", {"zone": 3}, T0, Priority.CRITICAL, source=f"panel-{k}"))
    bundles = [r["id"] for r in await db.fetch("SELECT id FROM bundle_alarms WHERE status = 'NEW' ORDER BY id")]
    assert len(bundles) == alarms

    async with running_hub(db, db_dsn, tmp_path) as hub:
        operators = [await hub.user(f"op{i}@x.test") for i in range(OPERATORS)]
        clock = Stopwatch()
        doubled = lost = 0
        for bundle_id in bundles:
            claims = await _race(hub.client, bundle_id, "claim", operators)
            winners = [i for i, status in enumerate(claims) if status == 200]
            doubled += max(0, len(winners) - 1)
            lost += len(winners) == 0
            if len(winners) != 1:
                continue
            winner = operators[winners[0]]
            status, body = await _try(hub.client, f"/api/v1/alarms/{bundle_id}/start",
                                      {"version": await _version(hub.client, bundle_id, winner)}, winner)
            assert status == 200, body
            acks = await _race(hub.client, bundle_id, "ack", operators)
            assert [i for i, s in enumerate(acks) if s == 200] == winners, f"bundle {bundle_id}: acks {acks}"
        figure(ID, "alarms_claimed_twice", doubled, "alarms", 0)
        figure(ID, "alarms_claimed_by_none", lost, "alarms", 0)
        figure(ID, "race_s_per_alarm", clock.elapsed() / alarms, "s", 5.0)

    # The audit log and the timeline: one claim, one start and one ack per alarm, by its claimant.
    rows = await db.fetch("SELECT target_id, action, actor FROM audit_log WHERE action IN "
                          "('alarm.claim', 'alarm.start', 'alarm.ack') ORDER BY id")
    by_bundle: dict[str, list[tuple[str, str]]] = {}
    for r in rows:
        by_bundle.setdefault(str(r["target_id"]), []).append((r["action"], r["actor"]))
    assert sorted(by_bundle) == sorted(str(b) for b in bundles)
    for bundle_id, moves in by_bundle.items():
        assert [a for a, _ in moves] == ["alarm.claim", "alarm.start", "alarm.ack"], (bundle_id, moves)
        assert len({actor for _, actor in moves}) == 1, (bundle_id, moves)
    claimed = await db.fetch("SELECT id, status, claimed_by FROM bundle_alarms ORDER BY id")
    assert all(r["status"] == "ACK" for r in claimed), [tuple(r) for r in claimed]
    assert [by_bundle[str(r["id"])][0][1] for r in claimed] == [r["claimed_by"] for r in claimed]
