"""Robots end to end with real processes (issue 15): mock robots (`python -m firmware_bridges.robot`)
with their own logins on the box's nats-server → a real `python -m edge run` → its leaf → the hub
(`python -m hub serve`) and PostgreSQL, and back: operators take a robot's lease and command it
through the hub's API, and see what the robot reports, as they would.

Covered here: first sight → identity → capability → status at the hub, and a metadata edit that
never touches what the robot owns; desired settings that converge, and a robot that applies
another value (the pending diff stays); commands FINISHED, FAILED, TIMEOUT (a silent robot) and
cancelled; an emergency stop that overtakes queued commands; operator A's queued command refused
at the robot (REJECTED_STALE_TOKEN) after B force-took the lease; a WAN cut the robots never
notice, with alarms and sampled telemetry forwarded in order afterwards; and a burst of 10,000
telemetry samples that does not hold a CRITICAL panel alarm back."""
from __future__ import annotations

import asyncio
import dataclasses
import json
import sqlite3
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, AsyncIterator

import msgspec
import nats
import pytest

from firmware_bridges.satel.emulator import SatelEmulator
from firmware_bridges.satel.emulator.site import SAMPLE_USER_CODE
from firmware_bridges.satel.protocol.user_code import UserCode
from hub.config import HubConfig
from shared import robots as wire
from shared.process import ManagedProcess, free_port, tcp_port_open
from shared.private_file import write_private_file
from support.topology import Topology
from support.waiting import wait_until
from test_commands_e2e import _http
from test_console_browser import PASSWORD, add_user

pytestmark = pytest.mark.slow

MASTER = ("master@example.com", "robots e2e master password")
OPERATOR = "op-a@example.com"
ROBOTS = ("RB-001", "RB-002")
FINAL = {"FINISHED", "FAILED", "TIMEOUT", "CANCELLED"}
COMMAND_TTL_S = 6


@dataclass
class Fleet:
    """A hub, an edge with robots and a Satel panel, and tokens for a MASTER and an OPERATOR."""

    topology: Topology
    emulator: SatelEmulator
    hub: HubConfig
    edge: ManagedProcess
    robots: dict[str, int]  # robot id → its control port
    creds: dict[str, Path]
    master: str
    operator: str
    bridges: dict[str, ManagedProcess] = field(default_factory=dict)

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.hub.http_port}/api/v1"

    async def call(self, method: str, path: str, body: dict[str, Any] | None = None, *, token: str | None = None,
                   ) -> tuple[int, Any]:
        return await asyncio.to_thread(_http, method, self.api + path, body, token or self.master)

    async def ok(self, method: str, path: str, body: dict[str, Any] | None = None, *, token: str | None = None,
                 expect: int = 200) -> Any:
        status, answer = await self.call(method, path, body, token=token)
        assert status == expect, (method, path, status, answer)
        return answer

    async def control(self, robot: str, path: str, body: dict[str, Any] | None = None) -> Any:
        url = f"http://127.0.0.1:{self.robots[robot]}{path}"
        status, answer = await asyncio.to_thread(_http, "POST" if body is not None else "GET", url, body)
        assert status == 200, (path, status, answer)
        return answer

    async def lease(self, robot: str, token: str, **body: Any) -> dict[str, Any]:
        answer = await self.ok("POST", f"/robots/{robot}/lease", body, token=token, expect=201)
        return answer

    async def command(self, robot: str, token: str, command_type: str, lease: dict[str, Any] | None,
                      **payload: Any) -> str:
        body = {"commandType": command_type, "payload": payload, "reason": "e2e"} | (
            {"leaseId": lease["leaseId"]} if lease else {})
        answer = await self.ok("POST", f"/robots/{robot}/commands", body, token=token, expect=202)
        return str(answer["commandId"])

    async def wait_command(self, robot: str, command_id: str, statuses: set[str], timeout: float = 60) -> dict[str, Any]:
        seen: dict[str, Any] = {}

        async def reached() -> bool:
            seen.update(await self.ok("GET", f"/robots/{robot}/commands/{command_id}"))
            return seen["status"] in statuses

        await wait_until(reached, timeout=timeout, what=f"command {command_id} in {statuses} (last: {seen})")
        return seen

    async def robot(self, robot: str) -> dict[str, Any]:
        return await self.ok("GET", f"/robots/{robot}")  # type: ignore[no-any-return]


async def _login(hub: HubConfig, email: str, password: str) -> str:
    status, body = await asyncio.to_thread(_http, "POST", f"http://127.0.0.1:{hub.http_port}/api/v1/auth/login",
                                           {"email": email, "password": password})
    assert status == 200, body
    return str(body["access_token"])


@pytest.fixture
async def fleet(topology: Topology) -> AsyncIterator[Fleet]:
    """The robots get their logins as `python -m edge robot add` gives them, the box's server takes
    them, then the hub, the agent (watching the robots and an emulated panel) and the two mock
    robots start."""
    async with SatelEmulator(port=0) as emulator:
        async for fleet in _fleet(topology, emulator):
            yield fleet


async def _fleet(topology: Topology, emulator: SatelEmulator) -> AsyncIterator[Fleet]:
    site = topology.site("site-1")
    creds: dict[str, Path] = {}
    for robot in ROBOTS:
        creds[robot] = topology.root / "robots" / f"{robot}.json"
        creds[robot].parent.mkdir(parents=True, exist_ok=True)
        write_private_file(creds[robot], msgspec.json.encode(site.auth.add_robot(robot)).decode())
    logins = tuple((robot, login.password_hash) for robot, login in sorted(site.auth.robot_logins().items()))
    site.server.stop()
    site.server.config = dataclasses.replace(site.server.config, robots=logins)
    await site.server.start()
    await site.server.wait_leaf()

    config = topology.edge_config()
    await topology.enrol(config)
    object_id = await topology.pool.fetchval("INSERT INTO objects (name) VALUES ('Warehouse Nord') RETURNING id")
    await topology.pool.execute("UPDATE edges SET object_id = $1 WHERE edge_id = 'site-1'", object_id)
    await add_user(topology.pool, OPERATOR, "OPERATOR")
    hub = topology.hub_config(auth={"secret_file": str(topology.root / "hub-secret.key"), "master_email": MASTER[0],
                                    "master_password": MASTER[1]})
    await topology.spawn_hub(hub, VIGIL_HUB_ROBOTS_COMMAND_TTL_S=str(COMMAND_TTL_S),
                             VIGIL_HUB_ROBOTS_SETTLE_GRACE_S="5")
    robots_config = json.dumps([{"id": robot, "telemetry_hz": 1.0} for robot in ROBOTS])
    panels = json.dumps([{"id": "panel-1", "host": "127.0.0.1", "port": emulator.port, "reconnect_min_s": 0.05,
                          "reconnect_max_s": 0.5, "request_timeout_s": 1.0, "poll_interval_s": 0.1}])
    edge = await topology.spawn_edge(config, VIGIL_EDGE_ROBOTS=robots_config, VIGIL_EDGE_SATEL_PANELS=panels,
                                     VIGIL_EDGE_ROBOTS_COMMAND_RETRY_S="1", VIGIL_EDGE_ROBOTS_POLL_INTERVAL_S="0.2")
    fleet = Fleet(topology, emulator, hub, edge, {robot: free_port() for robot in ROBOTS}, creds,
                  await _login(hub, *MASTER), await _login(hub, OPERATOR, PASSWORD))
    for robot in ROBOTS:
        fleet.bridges[robot] = await _start_robot(fleet, robot)
    try:
        yield fleet
    finally:
        for bridge in fleet.bridges.values():
            await asyncio.to_thread(bridge.stop, 10)


async def _start_robot(fleet: Fleet, robot: str) -> ManagedProcess:
    site = fleet.topology.site("site-1")
    bridge = ManagedProcess(
        f"robot-{robot}",
        [sys.executable, "-m", "firmware_bridges.robot", "--nats", site.server.url, "--creds", str(fleet.creds[robot]),
         "--robot-id", robot, "--mode", "MOCK", "--control-port", str(fleet.robots[robot]), "--heartbeat-s", "0.5",
         "--telemetry-hz", "10", "--time-scale", "4", "--settings-delay-s", "0.2",
         "--state-dir", str(fleet.topology.root / "robots" / robot)],
        log_path=fleet.topology.root / "run" / f"robot-{robot}.log")
    bridge.start()
    port = fleet.robots[robot]
    await bridge.wait_ready(lambda: tcp_port_open("127.0.0.1", port), 30)
    return bridge


async def _known(fleet: Fleet, robot: str) -> dict[str, Any]:
    """The robot once the hub has its identity, capability and an ONLINE status."""
    seen: dict[str, Any] = {}

    async def complete() -> bool:
        status, body = await fleet.call("GET", f"/robots/{robot}")
        if status != 200:
            return False
        seen.update(body)
        return bool(body["identity"] and body["capability"] and body["status"]) and \
            body["connection"]["state"] == "ONLINE"

    await wait_until(complete, timeout=60, what=f"{robot} known at the hub ({seen})")
    return seen


async def test_robots_are_known_at_the_hub_and_settings_converge_or_show_what_differs(fleet: Fleet) -> None:
    first = await _known(fleet, "RB-001")
    assert first["identity"]["identity"]["serialNumber"] == "MOCK-RB-001"
    assert "goto" in first["capability"]["capability"]["commands"]
    assert first["edgeId"] == "site-1" and first["objectName"] == "Warehouse Nord"
    await _known(fleet, "RB-002")

    # Metadata is the hub's; what the robot reports is the robot's, and an edit never touches it.
    edited = await fleet.ok("PUT", "/robots/RB-001", {"displayName": "North patrol", "tags": ["night"],
                                                      "notes": "Charger by gate 2"}, token=fleet.operator)
    assert edited["displayName"] == "North patrol"
    status, refused = await fleet.call("PUT", "/robots/RB-001", {"status": {"state": "IDLE"}}, token=fleet.operator)
    assert status == 400 and refused["error"]["code"] == "robot_owned", refused
    after = await fleet.robot("RB-001")
    assert after["identity"] == first["identity"] and after["capability"] == first["capability"]

    # Desired settings under the lease reach the robot, and what it reports converges.
    lease = await fleet.lease("RB-001", fleet.operator)
    desired = {"maxSpeedMps": 0.8, "cameraOn": False}
    await fleet.ok("PUT", "/robots/RB-001/settings/desired", {"settings": desired, "leaseId": lease["leaseId"]},
                   token=fleet.operator, expect=202)

    async def reported(expect: dict[str, Any], pending: set[str]) -> dict[str, Any]:
        seen: dict[str, Any] = {}

        async def there() -> bool:
            seen.update(await fleet.ok("GET", "/robots/RB-001/settings/reported"))
            settings = (seen.get("reported") or {}).get("settings") or {}
            return all(settings.get(k) == v for k, v in expect.items()) and set(seen["pending"]) == pending

        await wait_until(there, timeout=30, what=f"reported settings {expect} with pending {pending} ({seen})")
        return seen

    await reported(desired, set())
    # This robot clamps its speed to 1.0 whatever it is asked: the difference stays visible.
    await fleet.control("RB-001", "/apply-override", {"setting": "maxSpeedMps", "value": 1.0})
    await fleet.ok("PUT", "/robots/RB-001/settings/desired", {"settings": {"maxSpeedMps": 1.5},
                                                             "leaseId": lease["leaseId"]},
                   token=fleet.operator, expect=202)
    shown = await reported({"maxSpeedMps": 1.0}, {"maxSpeedMps"})
    assert shown["desired"]["settings"]["maxSpeedMps"] == 1.5, shown


async def test_commands_under_leases_fencing_estop_and_a_silent_robot(fleet: Fleet) -> None:
    await _known(fleet, "RB-001")
    a = await fleet.lease("RB-001", fleet.operator)

    finished = await fleet.wait_command("RB-001", await fleet.command("RB-001", fleet.operator, "goto", a, x=2.0, y=1.0),
                                        FINAL)
    assert (finished["status"], finished["ackStatus"], finished["fencingToken"]) == ("FINISHED", "FINISHED", a["fencingToken"])
    await fleet.control("RB-001", "/fail-next", {"reason": "wheel slip"})
    failed = await fleet.wait_command("RB-001", await fleet.command("RB-001", fleet.operator, "goto", a, x=0.0, y=0.0),
                                      FINAL)
    assert failed["status"] == "FAILED" and "wheel slip" in failed["detail"], failed

    # A patrols without end; A's next goto waits behind it at the robot.
    patrol = await fleet.command("RB-001", fleet.operator, "patrol", a, loops=0)
    await fleet.wait_command("RB-001", patrol, {"RUNNING"})
    queued_a = await fleet.command("RB-001", fleet.operator, "goto", a, x=1.0, y=1.0)
    await fleet.wait_command("RB-001", queued_a, {"ACKED"})
    # B (a MASTER) is told who holds the lease, then takes it over with a reason: a higher token.
    status, held = await fleet.call("POST", "/robots/RB-001/lease", {})
    assert status == 409 and held["error"]["code"] == "lease_held", held
    b = await fleet.lease("RB-001", fleet.master, force=True, reason="robot needed at gate 2")
    assert b["fencingToken"] > a["fencingToken"]
    status, lost = await fleet.call("POST", "/robots/RB-001/commands",
                                    {"commandType": "dock", "payload": {}, "leaseId": a["leaseId"]}, token=fleet.operator)
    assert status == 409 and lost["error"]["code"] == "lease_lost", lost
    goto_b = await fleet.command("RB-001", fleet.master, "goto", b, x=3.0, y=0.0)
    await fleet.wait_command("RB-001", goto_b, {"ACKED"})
    # B stops A's patrol (cancel needs no lease); A's queued goto comes up with a stale token.
    await fleet.ok("POST", f"/robots/RB-001/commands/{patrol}/cancel", {}, expect=202)
    assert (await fleet.wait_command("RB-001", patrol, FINAL))["status"] == "CANCELLED"
    stale = await fleet.wait_command("RB-001", queued_a, FINAL)
    assert (stale["status"], stale["ackStatus"]) == ("FAILED", "REJECTED_STALE_TOKEN"), stale
    assert (await fleet.wait_command("RB-001", goto_b, FINAL))["status"] == "FINISHED"

    # An emergency stop, with no lease, overtakes what waits and stops what runs.
    patrol_b = await fleet.command("RB-001", fleet.master, "patrol", b, loops=0)
    await fleet.wait_command("RB-001", patrol_b, {"RUNNING"})
    waiting = await fleet.command("RB-001", fleet.master, "goto", b, x=5.0, y=5.0)
    await fleet.wait_command("RB-001", waiting, {"ACKED"})
    estop = await fleet.command("RB-001", fleet.operator, "estop", None)
    assert (await fleet.wait_command("RB-001", estop, FINAL))["status"] == "FINISHED"
    assert (await fleet.wait_command("RB-001", patrol_b, FINAL))["status"] == "FAILED"
    assert (await fleet.wait_command("RB-001", waiting, FINAL))["status"] == "CANCELLED"

    async def stopped() -> bool:
        return (await fleet.robot("RB-001"))["state"] == "EMERGENCY_STOP"

    await wait_until(stopped, timeout=30, what="RB-001 in EMERGENCY_STOP at the hub")

    async def alarmed() -> list[tuple[str, str]]:
        # The alarm travels its own lane: it may arrive before or after the status.
        rows = await fleet.topology.pool.fetch("SELECT alarm_type, priority FROM bundle_alarms WHERE alarm_type = 'ROBOT'")
        return [(r["alarm_type"], r["priority"]) for r in rows]

    try:
        await wait_until(alarmed, timeout=30, what="the emergency stop's ROBOT alarm")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; {await _trace(fleet, 'robot.alarm.estop')}") from None
    assert await alarmed() == [("ROBOT", "CRITICAL")]
    assert (await fleet.wait_command("RB-001", await fleet.command("RB-001", fleet.master, "reset", b), FINAL)
            )["status"] == "FINISHED"

    # A robot that hears nothing (but still beats): the edge gives up at the command's expiry.
    await fleet.control("RB-001", "/silence", {"on": True})
    silent = await fleet.wait_command("RB-001", await fleet.command("RB-001", fleet.master, "dock", b), FINAL,
                                      timeout=COMMAND_TTL_S + 40)
    assert silent["status"] == "TIMEOUT", silent
    assert (await fleet.robot("RB-001"))["connection"]["state"] == "ONLINE"


async def _trace(fleet: Fleet, kind: str) -> str:
    """Where the rows of `kind` got to, for a failure's message: the box's journal (forwarded or
    not), the hub's events, the quarantine."""
    path = Path(fleet.topology.edge_config().journal_path)
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        journaled = conn.execute("SELECT seq, lane, forwarded_at FROM journal WHERE kind = ?", (kind,)).fetchall()
        unforwarded = conn.execute("SELECT lane, count(*), min(seq) FROM journal WHERE forwarded_at IS NULL "
                                   "GROUP BY lane").fetchall()
    finally:
        conn.close()
    pool = fleet.topology.pool
    events = await pool.fetch("SELECT seq, received_at FROM events WHERE kind = $1", kind)
    quarantined = await pool.fetchval("SELECT count(*) FROM ingest_quarantine")
    troubles = []
    for log in sorted((fleet.topology.root / "run").glob("*.log")):
        lines = [line for line in log.read_text(errors="replace").splitlines() if '"level": "WARNING"' in line
                 or '"level": "ERROR"' in line]
        troubles += [f"{log.name}: {line}" for line in lines[-10:]]
    return (f"journal {kind}: {journaled}, unforwarded by lane: {unforwarded}; hub events: "
            f"{[tuple(r) for r in events]}; quarantined segments: {quarantined}; warnings:\n" + "\n".join(troubles))


async def _journal_kinds(fleet: Fleet, since_seq: int) -> list[tuple[int, str, str]]:
    """(seq, kind, source) of the box's journal rows after `since_seq`, read as the agent wrote them."""
    path = Path(fleet.topology.edge_config().journal_path)
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return [(seq, kind, json.loads(env)["source"]) for seq, kind, env in conn.execute(
            "SELECT seq, kind, envelope FROM journal WHERE seq > ? ORDER BY seq", (since_seq,))]
    finally:
        conn.close()


async def test_a_wan_cut_loses_nothing_and_a_telemetry_burst_never_holds_a_panel_alarm(fleet: Fleet) -> None:
    await _known(fleet, "RB-001")
    await _known(fleet, "RB-002")
    pool = fleet.topology.pool
    assert fleet.topology.proxy is not None
    before = await pool.fetchval("SELECT coalesce(max(seq), 0) FROM events WHERE edge_id = 'site-1'")
    fleet.topology.proxy.cut()
    cut_at = time.monotonic()
    # While the hub is away the site goes on: a collision, sampled telemetry, the collision cleared.
    await fleet.control("RB-002", "/faults/collision", {"on": True})
    await wait_until(lambda: _journaled(fleet, before, "robot.alarm.collision"), timeout=30,
                     what="the collision journaled during the cut")
    await fleet.control("RB-002", "/faults/collision", {"on": False})
    await wait_until(lambda: _journaled(fleet, before, "robot.restore.collision"), timeout=30,
                     what="the collision's end journaled during the cut")
    await wait_until(lambda: _sampled(fleet, before, 4), timeout=30, what="telemetry sampled during the cut")
    during = await _journal_kinds(fleet, before)
    assert await pool.fetchval("SELECT count(*) FROM events WHERE edge_id = 'site-1' AND seq > $1 "
                               "AND kind = 'robot.alarm.collision'", before) == 0
    fleet.topology.proxy.restore()
    last = during[-1][0]

    async def forwarded() -> bool:
        return await pool.fetchval("SELECT count(*) FROM events WHERE edge_id = 'site-1' AND seq > $1 AND seq <= $2",
                                   before, last) == len(during)

    await wait_until(forwarded, timeout=60, what="every row of the cut at the hub")
    at_hub = [(r["seq"], r["kind"], r["source"]) for r in await pool.fetch(
        "SELECT seq, kind, source FROM events WHERE edge_id = 'site-1' AND seq > $1 AND seq <= $2 ORDER BY seq",
        before, last)]
    assert at_hub == during  # nothing lost, nothing doubled, the journal's order
    samples = [row for row in during if row[1] == "robot.telemetry"]
    cut_s = time.monotonic() - cut_at
    for robot in ROBOTS:  # at most the edge's 1 Hz per robot, whatever the robot sends (10 Hz)
        assert len([s for s in samples if s[2] == robot]) <= cut_s + 2
    bundle = await pool.fetchrow("SELECT alarm_type, priority FROM bundle_alarms WHERE alarm_type = 'ROBOT'")
    assert (bundle["alarm_type"], bundle["priority"]) == ("ROBOT", "HIGH")

    # 10,000 samples from a robot at once, and meanwhile a burglary: the alarm is committed at
    # the hub within 1 s of its journal time.
    site = fleet.topology.site("site-1")
    credentials = msgspec.json.decode(fleet.creds["RB-002"].read_bytes(), type=wire.RobotCredentials)
    flood = await nats.connect(site.server.url, user=credentials.user, password=credentials.password)
    emulator = fleet.emulator
    assert emulator.panel.arm(UserCode.from_digits(SAMPLE_USER_CODE), [1], 0).name == "OK"

    async def burst() -> None:
        sample = wire.Telemetry(pose=wire.Pose(1.0, 2.0), battery_pct=50.0, speed_mps=0.5)
        for n in range(10_000):
            await flood.publish(wire.subject("telemetry", "RB-002"), wire.encode(
                "telemetry", "RB-002", f"flood-{n}", datetime.now(timezone.utc), sample))
        await flood.flush()

    flooding = asyncio.create_task(burst())
    await asyncio.sleep(0)  # the burst has begun
    emulator.violate_zone(1)
    await flooding
    await flood.close()

    async def alarm() -> Any:
        return await pool.fetchrow("SELECT ts, received_at FROM events WHERE kind = 'satel.zone.alarm'")

    await wait_until(alarm, timeout=30, what="the burglary at the hub")
    row = await alarm()
    delay = (row["received_at"] - row["ts"]).total_seconds()
    assert delay <= 1.0, f"the CRITICAL alarm took {delay:.3f} s from the journal to the hub"


async def _journaled(fleet: Fleet, since_seq: int, kind: str) -> bool:
    return any(row[1] == kind for row in await _journal_kinds(fleet, since_seq))


async def _sampled(fleet: Fleet, since_seq: int, n: int) -> bool:
    rows = await _journal_kinds(fleet, since_seq)
    return all(len([r for r in rows if r[1] == "robot.telemetry" and r[2] == robot]) >= n for robot in ROBOTS)
