"""Operator API latency: claim → start → ack → resolve cycles from 20 concurrent operators, at a
steady 300 calls/s in total, against a hub process. Each call's latency is measured at the
client, from sending the request to having read the whole answer. Each operator first works
WARMUP_CYCLES bundles unmeasured, so the figure is the steady state, not the hub's first
connections, prepared statements and token checks.

run_all divides this figure by `fsync_p99_ms` of the same run (`api_ratio`, target 5, the two
targets' ratio): the p99 in this disk's fdatasyncs, one of which every transition's commit waits for.

    BENCH api_p99_ms=<p99 per call> ms target=25 better=lower
"""
from __future__ import annotations

import asyncio
import statistics
import sys
import time
from datetime import datetime, timezone

import aiohttp

from _rig import Rig, emit, run_main
from hub.auth.passwords import Passwords

TARGET_MS = 25.0
RATE = 300.0  # calls per second, all operators together
PASSWORD = "bench operator password 1"
SQL_USER = """
INSERT INTO users (email, role, password_hash, must_change_password, active, created_at, updated_at)
VALUES ($1, 'OPERATOR', $2, false, true, now(), now())
"""
SQL_BUNDLES = """
INSERT INTO bundle_alarms (object_id, group_key, alarm_type, priority, first_event_at, last_event_at, event_count,
                           edge_id, source)
SELECT o.id, 'object:' || o.id, 'BURGLARY', 'CRITICAL', $1, $1, 1, 'bench', 'panel'
FROM objects o
"""
STEPS = ("claim", "start", "ack", "resolve")
WARMUP_CYCLES = 2


async def operator(session: aiohttp.ClientSession, base: str, token: str, bundles: list[int], interval: float,
                   start_at: float, latencies: list[float]) -> None:
    """Work through `bundles`, one call every `interval` seconds on an absolute schedule."""
    headers = {"Authorization": f"Bearer {token}"}
    due = start_at
    for bundle_id in bundles:
        version = 1
        for step in STEPS:
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            due += interval
            sent = time.perf_counter()
            payload = {"version": version, "note": "bench", **({"resolution": "TEST"} if step == "resolve" else {})}
            async with session.post(f"{base}/api/v1/alarms/{bundle_id}/{step}", headers=headers, json=payload) as resp:
                body = await resp.json()
            latencies.append((time.perf_counter() - sent) * 1000)
            if resp.status != 200:
                raise RuntimeError(f"{step} of bundle {bundle_id}: {resp.status} {body}")
            version = body["version"]


async def main(quick: bool) -> None:
    operators = 4 if quick else 20
    seconds = 3.0 if quick else 30.0
    calls_each = int(RATE * seconds / operators)
    cycles_each = max(1, calls_each // len(STEPS))
    async with Rig("api") as rig:
        await rig.start_hub_nats()
        await rig.create_database()
        pool = await rig.pool()
        await pool.execute("INSERT INTO objects (name) SELECT 'object ' || i FROM generate_series(1, $1) i",
                           operators * (cycles_each + WARMUP_CYCLES))
        await pool.execute(SQL_BUNDLES, datetime.now(timezone.utc))
        bundle_ids = [r["id"] for r in await pool.fetch("SELECT id FROM bundle_alarms ORDER BY id")]
        password_hash = await Passwords().hash(PASSWORD)
        emails = [f"operator{i}@bench.local" for i in range(operators)]
        for email in emails:
            await pool.execute(SQL_USER, email, password_hash)
        hub = await rig.spawn_hub()
        latencies: list[float] = []
        async with aiohttp.ClientSession() as session:
            tokens = []
            for email in emails:
                async with session.post(f"{hub.http_url}/api/v1/auth/login",
                                        json={"email": email, "password": PASSWORD}) as resp:
                    tokens.append((await resp.json())["access_token"])
            interval = operators / RATE
            warmup, bundle_ids = bundle_ids[:operators * WARMUP_CYCLES], bundle_ids[operators * WARMUP_CYCLES:]
            start_at = time.perf_counter() + 0.5
            await asyncio.gather(*(
                operator(session, hub.http_url, tokens[i], warmup[i * WARMUP_CYCLES:(i + 1) * WARMUP_CYCLES],
                         interval, start_at + i * interval / operators, [])
                for i in range(operators)
            ))
            hub_before = await hub.metrics()
            start_at = time.perf_counter() + 0.5
            await asyncio.gather(*(
                operator(session, hub.http_url, tokens[i], bundle_ids[i * cycles_each:(i + 1) * cycles_each],
                         interval, start_at + i * interval / operators, latencies)
                for i in range(operators)
            ))
            elapsed = time.perf_counter() - start_at
            hub_after = await hub.metrics()
        resolved = await pool.fetchval("SELECT count(*) FROM bundle_alarms WHERE status = 'RESOLVED'")
    if resolved != operators * (cycles_each + WARMUP_CYCLES):
        raise RuntimeError(f"{resolved} bundles resolved, expected {operators * (cycles_each + WARMUP_CYCLES)}")
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    emit("api_p99_ms", p99, "ms", TARGET_MS, "lower", decimals=2)
    print(f"api: {len(latencies)} calls from {operators} operators in {elapsed:.1f} s "
          f"({len(latencies) / elapsed:.0f}/s); p50 {statistics.median(latencies):.2f} ms, max {latencies[-1]:.2f} ms")
    print(f"api: inside the hub (vigil_http_request_seconds), p99 <= {hub_p99_ms(hub_before, hub_after):g} ms "
          "(the bucket bound); the rest of the client's figure is the client, the sockets and the machine")


def hub_p99_ms(before: dict[str, float], after: dict[str, float]) -> float:
    """The hub's own p99 for the measured calls, as the upper bound of the histogram bucket it
    falls in: the bucket counts of the transition routes, after minus before."""
    buckets: dict[float, float] = {}
    for sample, value in after.items():
        if not sample.startswith("vigil_http_request_seconds_bucket{") or 'method="POST"' not in sample:
            continue
        if not any(f'/{step}"' in sample for step in STEPS):
            continue
        bound = sample.split('le="', 1)[1].split('"', 1)[0]
        le = float("inf") if bound == "+Inf" else float(bound)
        buckets[le] = buckets.get(le, 0.0) + value - before.get(sample, 0.0)
    total = buckets.get(float("inf"), 0.0)
    for le in sorted(buckets):
        if total and buckets[le] >= 0.99 * total:
            return le * 1000
    return float("nan")


if __name__ == "__main__":
    sys.exit(run_main(__doc__ or "", main))
