"""CH-08: 10 operators racing for the same alarms through the REST API of two hub processes — each
GETs the alarm and claims it with the version it saw, all at once, half of them through each
hub; then the winner starts it and all 10 race to acknowledge it. Each alarm is claimed by
exactly one operator and acknowledged once, by the claimant; the losers get a 409 and leave no
transition behind (audit log and timeline).

Both hubs are real processes (`python -m hub serve`) on the test's PostgreSQL, signed in to as
an operator's console would; the alarms are committed as ingest commits them (support.site), so
the race starts from the same state every run."""
from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from typing import Any

import aiohttp
import pytest

from shared.envelope import Priority
from support.chaos import HOST, ChaosHub, Stopwatch, figure, full, spawn_chaos_hub
from support.site import T0, Site
from support.topology import Topology
from test_auth_helpers import PASSWORD, SQL_ADD_USER, cheap_passwords

pytestmark = pytest.mark.chaos
ID = "CH-08"
OPERATORS = 10


class Operator:
    """One operator's console: a signed-in session on one hub process."""

    def __init__(self, http: aiohttp.ClientSession, hub: ChaosHub, email: str) -> None:
        self.http, self.base, self.email = http, f"http://{HOST}:{hub.config.http_port}/api/v1", email
        self.headers: dict[str, str] = {}

    async def sign_in(self) -> "Operator":
        async with self.http.post(f"{self.base}/auth/login", json={"email": self.email, "password": PASSWORD}) as resp:
            body = await resp.json()
            assert resp.status == 200, body
        self.headers = {"Authorization": f"Bearer {body['access_token']}"}
        return self

    async def version(self, bundle_id: int) -> int:
        async with self.http.get(f"{self.base}/alarms/{bundle_id}", headers=self.headers) as resp:
            body = await resp.json()
            assert resp.status == 200, body
        return body["version"]

    async def post(self, bundle_id: int, action: str, version: int) -> tuple[int, Any]:
        async with self.http.post(f"{self.base}/alarms/{bundle_id}/{action}", json={"version": version},
                                  headers=self.headers) as resp:
            return resp.status, await resp.json()


async def _race(bundle_id: int, action: str, operators: list[Operator]) -> list[int]:
    """Every operator reads the alarm, then all post `action` at once; each one's status."""
    versions = await asyncio.gather(*(op.version(bundle_id) for op in operators))
    answers = await asyncio.gather(*(op.post(bundle_id, action, v) for op, v in zip(operators, versions)))
    for status, body in answers:
        assert status in (200, 409), (status, body)  # a loser is told, never a 500
    return [status for status, _ in answers]


async def test_ch08_ten_operators_race_for_the_same_alarms_on_two_hubs(topology: Topology) -> None:
    db = topology.pool
    alarms = 50 if full() else 6
    site = await Site(db).setup({f"panel-{k}": f"Object {k}" for k in range(alarms)})
    for k in range(alarms):
        await site.ingest(site.env("satel.zone.alarm", {"zone": 3}, T0, Priority.CRITICAL, source=f"panel-{k}"))
    bundles = [r["id"] for r in await db.fetch("SELECT id FROM bundle_alarms WHERE status = 'NEW' ORDER BY id")]
    assert len(bundles) == alarms
    password_hash = await cheap_passwords().hash(PASSWORD)
    emails = [f"op{i}@x.test" for i in range(OPERATORS)]
    for email in emails:
        await db.execute(SQL_ADD_USER, email, "OPERATOR", password_hash, False, True, datetime.now(timezone.utc))

    hubs = [await spawn_chaos_hub(topology, name="hub-a"), await spawn_chaos_hub(topology, name="hub-b")]
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
        operators = [await Operator(http, hubs[i % 2], email).sign_in() for i, email in enumerate(emails)]
        clock = Stopwatch()
        doubled = lost = 0
        for bundle_id in bundles:
            claims = await _race(bundle_id, "claim", operators)
            winners = [i for i, status in enumerate(claims) if status == 200]
            doubled += max(0, len(winners) - 1)
            lost += len(winners) == 0
            if len(winners) != 1:
                continue
            winner = operators[winners[0]]
            status, body = await winner.post(bundle_id, "start", await winner.version(bundle_id))
            assert status == 200, body
            acks = await _race(bundle_id, "ack", operators)
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
