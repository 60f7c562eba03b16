"""Helpers of the chaos suite (tests/chaos, issue 17): the scale (`VIGIL_CHAOS=reduced|full`), the
figures each scenario prints and asserts, and what every scenario checks afterwards — nothing lost,
nothing doubled — plus the hub's signals (/readyz, the system mode, /metrics) read over HTTP as an
operator's tooling would."""
from __future__ import annotations

import asyncio
import os
from contextlib import asynccontextmanager
from pathlib import Path
import re
import sqlite3
import time
from dataclasses import dataclass
from typing import Any, AsyncIterator, Awaitable, Callable

import aiohttp
import asyncpg

from edge.config import EdgeConfig
from hub.config import HubConfig
from hub.db.migrate import migrate
from shared.process import ManagedProcess
from support.topology import Topology

HOST = "127.0.0.1"
MASTER = ("master@example.com", "chaos suite master password 1")


def scale() -> str:
    """`reduced` (the default, what `make test` runs) or `full` (`make chaos`)."""
    value = os.environ.get("VIGIL_CHAOS", "reduced")
    if value not in ("reduced", "full"):
        raise ValueError(f"VIGIL_CHAOS must be reduced or full, got {value!r}")
    return value


def full() -> bool:
    """True when the scenarios run at the seed's sizes and durations."""
    return scale() == "full"


def figure(scenario: str, name: str, value: float, unit: str, target: float, *, at_least: bool = False) -> None:
    """Print `CHAOS <id> <name>=<value> <unit> target=<T>` and assert the value is within the
    target (at most `target`, or at least it with `at_least`)."""
    op = ">=" if at_least else "<="
    print(f"CHAOS {scenario} {name}={value:.3f} {unit} target={op}{target:g} scale={scale()}", flush=True)
    ok = value >= target if at_least else value <= target
    assert ok, f"{scenario} {name}={value:.3f} {unit} is outside its target {op} {target:g}"


class Stopwatch:
    """Seconds since it was made or last reset (monotonic)."""

    def __init__(self) -> None:
        self.start = time.monotonic()

    def reset(self) -> None:
        self.start = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.start


async def hold(seconds: float, still: Callable[[], Awaitable[bool]], what: str) -> None:
    """Keep a fault in place for `seconds` — the scenario's own outage, the one timed wait the
    suite allows — checking about once a second that `still()` holds (the signal stays raised)."""
    clock = Stopwatch()
    while clock.elapsed() < seconds:
        assert await still(), f"{what} stopped holding {clock.elapsed():.1f} s into a {seconds:g} s outage"
        await asyncio.sleep(min(1.0, max(0.0, seconds - clock.elapsed())))


def rss_kib(pid: int) -> int:
    """A process's resident set size in KiB, from /proc/<pid>/status (psutil is no dependency)."""
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}: is it a zombie?")


def journal_seqs(journal_path: str, lane: str | None = None) -> list[int]:
    """Every seq the edge's journal holds (it keeps forwarded rows for its retention window, so in
    a test this is everything ever journaled)."""
    with sqlite3.connect(journal_path) as conn:
        if lane is None:
            return [r[0] for r in conn.execute("SELECT seq FROM journal ORDER BY seq")]
        return [r[0] for r in conn.execute("SELECT seq FROM journal WHERE lane = ? ORDER BY seq", (lane,))]


async def assert_all_once(pool: asyncpg.Pool, edge_id: str, expected: list[int]) -> None:
    """Nothing lost (each expected seq is in `events`) and nothing doubled (no (edge, seq) twice;
    the table's UNIQUE makes that a belt and braces check, but a bug dropping it would show)."""
    rows = await pool.fetch("SELECT seq, count(*) AS n FROM events WHERE edge_id = $1 GROUP BY seq", edge_id)
    doubled = [r["seq"] for r in rows if r["n"] > 1]
    assert not doubled, f"{edge_id}: seqs committed more than once: {doubled[:20]}"
    at_hub = {r["seq"] for r in rows}
    lost = sorted(set(expected) - at_hub)
    assert not lost, f"{edge_id}: {len(lost)} journaled seqs never reached the hub: {lost[:20]}"


async def all_arrive_once(topology: Topology, config: EdgeConfig, scenario: str, clock: Stopwatch,
                          target_s: float) -> list[int]:
    """With the edge's journal final, wait until every row of it is at the hub (the figure
    `drained_s`, since `clock`), and assert each arrived once; the journal's seqs."""
    expected = journal_seqs(str(config.journal_path))
    await topology.wait_events(len(expected), timeout=max(120.0, target_s), edge_id=config.edge_id)
    figure(scenario, "drained_s", clock.elapsed(), "s", target_s)
    await assert_all_once(topology.pool, config.edge_id, expected)
    return expected


async def readyz(port: int) -> tuple[int, dict[str, Any]]:
    """The hub's (or an edge's) /readyz: status code and JSON detail; (0, {}) when it does not answer."""
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
            async with http.get(f"http://{HOST}:{port}/readyz") as resp:
                return resp.status, await resp.json()
    except (aiohttp.ClientError, OSError, TimeoutError):
        return 0, {}


async def metrics_text(port: int) -> str:
    """The process's /metrics exposition ('' when it does not answer)."""
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
            async with http.get(f"http://{HOST}:{port}/metrics") as resp:
                return await resp.text()
    except (aiohttp.ClientError, OSError, TimeoutError):
        return ""


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of the first sample of `name` whose labels include `labels`."""
    for match in re.finditer(rf"^{re.escape(name)}(?:\{{([^}}]*)\}})? (\S+)$", text, re.M):
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(match.group(2))
    return None


@dataclass
class HubApi:
    """A signed-in session on a hub process's REST API (the master account from its config)."""

    port: int
    token: str = ""

    async def login(self, email: str, password: str) -> "HubApi":
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
            async with http.post(f"http://{HOST}:{self.port}/api/v1/auth/login",
                                 json={"email": email, "password": password}) as resp:
                body = await resp.json()
                assert resp.status == 200, body
        self.token = body["access_token"]
        return self

    async def get(self, path: str) -> tuple[int, Any]:
        """GET `path`: status and JSON ((0, None) when the hub does not answer)."""
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
                async with http.get(f"http://{HOST}:{self.port}{path}",
                                    headers={"Authorization": f"Bearer {self.token}"}) as resp:
                    return resp.status, await resp.json()
        except (aiohttp.ClientError, OSError, TimeoutError):
            return 0, None

    async def mode(self) -> str:
        """The system mode (NORMAL, DEGRADED or MAINTENANCE), '' when unanswered."""
        status, body = await self.get("/api/v1/system/mode")
        return body["mode"] if status == 200 else ""


@dataclass
class ChaosHub:
    """A hub process of a scenario, with its config and a signed-in API session."""

    config: HubConfig
    proc: ManagedProcess
    api: HubApi


async def spawn_chaos_hub(topology: Topology, name: str = "hub", env: dict[str, str] | None = None,
                          **overrides: object) -> ChaosHub:
    """A real hub process (SIGKILL-able) whose master account the scenario signs in with; `env`
    sets what spawn_hub does not pass on from the config (VIGIL_HUB_* variables)."""
    config = topology.hub_config(auth={"secret_file": str(topology.root / "hub-secret.key"),
                                       "master_email": MASTER[0], "master_password": MASTER[1]}, **overrides)
    proc = await topology.spawn_hub(config, name=name, **(env or {}))
    api = await HubApi(config.http_port).login(*MASTER)
    return ChaosHub(config, proc, api)


async def migrate_database(dsn: str) -> None:
    """Bring the scenario's own database (`dsn`, its owner) to the current schema."""
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn)
    finally:
        await conn.close()


@asynccontextmanager
async def topology_on(root: Path, dsn: str) -> AsyncIterator[Topology]:
    """The usual topology on a PostgreSQL of the scenario's own (`dsn`: its owner role); the
    test's pool and the hub both reach it through `dsn`."""
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=4)
    try:
        async with Topology(root, dsn, pool) as topo:
            yield topo
    finally:
        await pool.close()


def database_down(port: int) -> Callable[[], Awaitable[bool]]:
    """A condition: the hub's /readyz says 503 naming the database."""
    async def down() -> bool:
        status, body = await readyz(port)
        return status == 503 and body.get("failing", {}).get("database", "").startswith("PostgreSQL is unreachable")

    return down


async def ready_and_normal(hub: ChaosHub) -> bool:
    """The hub's /readyz 200 and its system mode NORMAL."""
    return (await readyz(hub.config.http_port))[0] == 200 and await hub.api.mode() == "NORMAL"
