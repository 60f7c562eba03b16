"""Background work that cannot die silently: the supervisor restarts a loop after any error
(logged, counted, backed off) until the hub stops, the reaper survives an unforeseen exception,
and /readyz names a task that keeps failing."""
from __future__ import annotations

import asyncio
import random
from datetime import timedelta
from typing import Any

import aiohttp
import asyncpg
import pytest
from prometheus_client import REGISTRY

from hub import housekeeping
from hub.alarms import repository as alarms
from hub.api.server import build_http
from hub.config import load_hub_config
from hub.housekeeping import run_housekeeping
from hub.secret_box import SecretBox
from shared.backoff import Backoff
from shared.clock import FakeClock
from shared.config import ConfigError
from shared.supervise import Supervisor
from support.api import HeaderAuthenticator, json_of, start_client
from support.site import T0, Site
from support.topology import Topology
from support.waiting import wait_until


def _restarts(task: str) -> float:
    return REGISTRY.get_sample_value("vigil_task_restarts_total", {"task": task}) or 0.0


class RecordingSleep:
    """Stands in for sleep_or_stop: records each backoff delay and returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float, stop: asyncio.Event) -> bool:
        self.delays.append(delay)
        await asyncio.sleep(0)
        return stop.is_set()


async def test_a_task_failing_twice_is_restarted_twice_counted_backed_off_and_stops_with_the_hub() -> None:
    stop = asyncio.Event()
    sleep = RecordingSleep()
    supervisor = Supervisor(stop, sleep=sleep, backoff=lambda: Backoff(base=1.0, cap=8.0, rng=random.Random(7)))
    calls = 0

    async def loop() -> None:
        nonlocal calls
        calls += 1
        if calls <= 2:
            raise RuntimeError(f"unforeseen #{calls}")
        await stop.wait()  # the third run is healthy: it runs until the hub stops

    before = _restarts("unit-flaky")
    task = supervisor.spawn("unit-flaky", loop)
    await wait_until(lambda: calls == 3, timeout=5, what="the third run")
    assert not task.done()
    expected = Backoff(base=1.0, cap=8.0, rng=random.Random(7))
    assert sleep.delays == [expected.next_delay(), expected.next_delay()]
    assert _restarts("unit-flaky") - before == 2
    health = supervisor.health()["unit-flaky"]
    assert (health["restarts"], health["last_error"]) == (2, "RuntimeError: unforeseen #2")
    stop.set()
    await asyncio.wait_for(task, timeout=5)
    assert calls == 3


async def test_a_task_that_always_fails_is_not_restarted_once_the_stop_event_is_set() -> None:
    stop = asyncio.Event()
    calls = 0

    async def sleep(_delay: float, stop_: asyncio.Event) -> bool:
        stop_.set()  # the hub is asked to stop during the backoff
        return True

    async def loop() -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("always")

    await asyncio.wait_for(Supervisor(stop, sleep=sleep).spawn("unit-always", loop), timeout=5)
    assert calls == 1


def _sweep_failing_once(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Make housekeeping's next sweep raise an error it does not catch; the list counts the
    failures so far."""
    real_sweep = alarms.sweep
    failures = [0]

    async def sweep_failing_once(conn: asyncpg.Connection, now: object) -> alarms.Swept:
        if failures[0] == 0:
            failures[0] += 1
            raise RuntimeError("not a database error")  # housekeeping's own except does not catch this
        return await real_sweep(conn, now)  # type: ignore[arg-type]

    monkeypatch.setattr(housekeeping, "sweep", sweep_failing_once)
    return failures


async def test_the_reaper_still_reverts_lapsed_claims_after_an_unforeseen_error(
        db: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch) -> None:
    site = await Site(db).setup({"panel-1": "Bank"})
    await site.ingest(site.env("satel.zone.alarm", {"zone": 1}, T0))
    bundle = await db.fetchrow("SELECT id, version FROM bundle_alarms")
    async with db.acquire() as conn:
        await alarms.transition(conn, bundle["id"], "claim", "ann", bundle["version"], T0)

    failures = _sweep_failing_once(monkeypatch)
    stop = asyncio.Event()
    supervisor = Supervisor(stop, backoff=lambda: Backoff(base=0.01, cap=0.02))
    clock = FakeClock(T0 + timedelta(minutes=1))  # the claim lapsed 30 s after T0
    task = supervisor.spawn("housekeeping", lambda: run_housekeeping(db, stop, clock, sweep_interval_s=0.01))
    try:
        status = await wait_until(
            lambda: _status_if_reverted(db, bundle["id"]), timeout=10, what="the lapsed claim to revert")
        assert status == "NEW" and failures == [1]
        assert supervisor.health()["housekeeping"]["restarts"] == 1
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=5)


async def _status_if_reverted(pool: asyncpg.Pool, bundle_id: int) -> str | None:
    status = await pool.fetchval("SELECT status FROM bundle_alarms WHERE id = $1", bundle_id)
    return status if status != "CLAIMING" else None


async def test_readyz_is_503_for_a_task_that_keeps_failing_and_200_once_it_recovers(db: asyncpg.Pool) -> None:
    stop = asyncio.Event()
    now = [100.0]
    supervisor = Supervisor(stop, monotonic=lambda: now[0], sleep=RecordingSleep(), failure_threshold=3,
                            window_s=60.0)
    calls = 0

    async def loop() -> None:
        nonlocal calls
        calls += 1
        if calls <= 3:
            raise RuntimeError("feed exploded")
        await stop.wait()

    client = await start_client(build_http(db, HeaderAuthenticator(), [], SecretBox.generate(), supervisor=supervisor))
    task = supervisor.spawn("stream-pull", loop)
    try:
        await wait_until(lambda: calls == 4, timeout=5, what="the fourth run")
        resp = await client.get("/readyz")
        body = await json_of(resp)
        assert resp.status == 503, body
        assert body["failing"] == {"stream-pull": "RuntimeError: feed exploded"}
        assert body["tasks"]["stream-pull"]["state"] == "failing"
        now[0] += 61  # a window without failures: the task has recovered
        resp = await client.get("/readyz")
        body = await json_of(resp)
        assert resp.status == 200, body
        assert body["status"] == "ready" and body["tasks"]["stream-pull"]["state"] == "ok"
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=5)
        await client.close()


async def test_the_hub_runs_every_background_loop_supervised_and_reports_them_on_readyz(topology: Topology) -> None:
    config = topology.hub_config()
    await topology.run_hub(config)
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{config.http_port}/readyz") as resp:
            body = await resp.json()
            assert resp.status == 200, body
    assert body["status"] == "ready"
    assert body["checks"] == {"database": "ok", "migrations": "ok", "nats": "ok", "jetstream": "ok"}
    assert {"partition-owner", "gap-watch", "housekeeping", "stream-listen", "stream-pull",
            "stream-access-review"} <= set(body["tasks"])
    assert all(t["state"] == "ok" for t in body["tasks"].values())

    # The hub's NATS server goes: not ready, saying so; back: ready again, by itself.
    topology.hub_nats.stop()

    async def readyz() -> tuple[int, dict[str, Any]]:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{config.http_port}/readyz") as resp:
                return resp.status, await resp.json()

    async def not_ready() -> tuple[int, dict[str, Any]] | None:
        status, body = await readyz()
        return (status, body) if status == 503 else None

    status, body = await wait_until(not_ready, timeout=30, what="readyz 503 without NATS")
    assert body["failing"]["nats"] == "not connected (reconnecting)", body
    assert body["checks"]["database"] == "ok"
    await topology.hub_nats.start()

    async def ready_again() -> bool:
        return (await readyz())[0] == 200

    await wait_until(ready_again, timeout=60, what="readyz 200 once NATS is back")


async def test_readyz_is_503_while_the_schema_lacks_a_migration_this_hub_has(db: asyncpg.Pool) -> None:
    client = await start_client(build_http(db, HeaderAuthenticator(), [], SecretBox.generate()))
    last = await db.fetchrow("SELECT version, name, checksum FROM schema_migrations ORDER BY version DESC LIMIT 1")
    try:
        body = await json_of(await client.get("/readyz"))
        assert body["checks"] == {"database": "ok", "migrations": "ok"}  # no NATS in this app
        # A hub newer than its database: the last migration was never applied.
        await db.execute("DELETE FROM schema_migrations WHERE version = $1", last["version"])
        resp = await client.get("/readyz")
        body = await json_of(resp)
        assert resp.status == 503, body
        assert body["failing"] == {"migrations": f"1 not applied: {last['name']}"}
    finally:
        await db.execute("INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3) "
                         "ON CONFLICT DO NOTHING", last["version"], last["name"], last["checksum"])
        await client.close()


@pytest.mark.parametrize(("setting", "value", "message"), [
    ("failure_threshold", 0, "supervisor.failure_threshold must be 1..1000, got 0"),
    ("window_s", 0.5, "supervisor.window_s must be 1..86400, got 0.5"),
])
def test_a_bad_supervisor_setting_is_refused_naming_it(setting: str, value: float, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_hub_config(env={}, overrides={"supervisor": {setting: value}})


async def test_readyz_counts_failures_against_the_configured_threshold(
        topology: Topology, monkeypatch: pytest.MonkeyPatch) -> None:
    _sweep_failing_once(monkeypatch)
    # One failure is "failing" only because the configuration says so: the default needs three.
    config = topology.hub_config(supervisor={"failure_threshold": 1, "window_s": 600})
    await topology.run_hub(config)
    async with aiohttp.ClientSession() as http:
        async def readyz_after_the_restart() -> tuple[int, dict[str, Any]] | None:
            async with http.get(f"http://127.0.0.1:{config.http_port}/readyz") as resp:
                body = await resp.json()
            return (resp.status, body) if body["tasks"]["housekeeping"]["restarts"] >= 1 else None

        status, body = await wait_until(readyz_after_the_restart, timeout=30, what="housekeeping restarted")
    assert status == 503, body
    assert body["failing"] == {"housekeeping": "RuntimeError: not a database error"}
