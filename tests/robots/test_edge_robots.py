"""The edge's robot link against a real nats-server for the box (robots with their own logins), a
real journal, and robots played by scripted NATS clients (docs/architecture.md §4.4, §7 "Robots"):
connection from heartbeats, the identity and capability questions, status and alarms journaled
once, telemetry sampled, bad messages dropped and counted, nothing lost while the agent is away."""
from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, AsyncIterator

import pytest

from edge.agent import run_edge
from edge.config import load_edge_config
from edge.journal import REFUSED as JOURNAL_REFUSED
from edge.journal import JournalFull
from edge.links.robots import Policy, RobotTracker, diagnostics
from edge.links.robots.metrics import DROPPED
from edge.local_auth import TokenFileError, read_cli_token, token_path
from edge.status_report import link_reports
from shared import robots as wire
from shared.bodies.robots import (RobotAlarm, RobotCapability, RobotCommandAck, RobotConnection, RobotIdentity,
                                  RobotTelemetry)
from shared.bodies.satel import ZoneEvent
from shared.clock import FakeClock
from shared.envelope import Priority, new_envelope
from shared.process import free_port
from shared.signing import create_key_file
from shared.subjects import LANE_ALARM, LANE_EVT
from support.waiting import wait_until
from robots.edge_box import EDGE, R1, R2, STRANGER, Box, robot_settings
from robots.scripted_robot import IDENTITY


@pytest.fixture
async def box(tmp_path: Path) -> AsyncIterator[Box]:
    box = await Box(tmp_path).start()
    try:
        yield box
    finally:
        await box.close()


async def test_the_robot_streams_are_the_boxs_own(box: Box) -> None:
    """`nc.jetstream()` with no domain is the box's own JetStream, where the link made both
    streams with the settings they need; made again, nothing changes."""
    await box.run_agent()
    assert box.nc is not None
    js = box.nc.jetstream()
    assert (await js.account_info()).domain == f"edge-{EDGE}"
    events = await js.stream_info(wire.EVENTS_STREAM)
    telemetry = await js.stream_info(wire.TELEMETRY_STREAM)
    assert events.config.storage == "file" and events.config.max_bytes == 256 * 1024 * 1024
    assert telemetry.config.storage == "memory" and telemetry.config.max_msgs_per_subject == 1
    consumer = await js.consumer_info(wire.EVENTS_STREAM, wire.EVENTS_CONSUMER)
    assert consumer.config.ack_policy == "explicit" and consumer.config.durable_name == wire.EVENTS_CONSUMER
    await box.stop_agent()
    await box.run_agent()  # idempotent
    assert (await js.stream_info(wire.EVENTS_STREAM)).config.subjects == wire.EVENTS_STREAM_SUBJECTS


async def test_a_first_seen_robot_is_asked_who_it_is_then_what_it_can_do(box: Box) -> None:
    link = await box.run_agent()
    robot = await box.robot(R1)
    await robot.status()
    await box.wait_for("robot.connection")
    [online] = await box.bodies("robot.connection")
    assert isinstance(online, RobotConnection) and (online.robot, online.state) == (R1, "ONLINE")
    [identity] = await box.wait_for("robot.identity")
    await box.wait_for("robot.capability")
    # Asked in that order, token-less, each with its own correlation id.
    assert [c.command_type for c in robot.commands()] == ["report_identity", "report_capability"]
    assert all(c.fencing_token is None for c in robot.commands())
    [ask] = robot.envelopes("report_identity")
    assert ask.correlation_id and ask.robot_id == R1
    assert identity.source == R1 and identity.priority is Priority.LOW
    body = (await box.bodies("robot.identity"))[0]
    assert isinstance(body, RobotIdentity) and body.identity == IDENTITY
    cap = (await box.bodies("robot.capability"))[0]
    assert isinstance(cap, RobotCapability) and "estop" in cap.capability.commands
    # Heartbeats are no news: one status, one connection event.
    for _ in range(5):
        await robot.status()
    await robot.status("PATROLLING")
    await box.wait_for("robot.status", 2)
    statuses = await box.bodies("robot.status")
    assert [(s.status.state.value, s.previous_state) for s in statuses] == [  # type: ignore[attr-defined]
        ("IDLE", None), ("PATROLLING", "IDLE")]
    assert len(await box.events("robot.connection")) == 1
    view = next(r for r in link.status()["robots"] if r["id"] == R1)
    assert view["connection"] == "ONLINE" and view["state"] == "PATROLLING" and view["name"] == "north"
    assert view["identity"]["serialNumber"] == "SN-42" and view["last_heard_at"] is not None
    assert next(r for r in link.status()["robots"] if r["id"] == R2)["connection"] == "UNKNOWN"


async def test_missed_heartbeats_break_the_link_goodbye_ends_it_and_a_return_asks_again(box: Box) -> None:
    await box.run_agent()
    robot = await box.robot(R1, heartbeat_interval_s=0.1)
    await robot.status()
    await box.wait_for("robot.capability")
    # Silence: 3 × 0.1 s after the last heartbeat the link is broken (measured from that heartbeat,
    # as the edge heard it: the wait for the capability may end well after it).
    [_, broken] = await box.wait_for("robot.connection", 2)
    body = (await box.bodies("robot.connection"))[1]
    assert isinstance(body, RobotConnection) and body.state == "CONNECTION_BROKEN" and body.last_heard_at is not None
    assert (broken.ts - body.last_heard_at).total_seconds() >= 0.3
    assert broken.priority is Priority.NORMAL
    await robot.status()
    await box.wait_for("robot.connection", 3)
    await box.wait_for("robot.identity", 2)  # asked again after it came back
    await robot.status(goodbye=True)
    await box.wait_for("robot.connection", 4)
    await robot.status()
    await box.wait_for("robot.identity", 3)  # and again after a goodbye
    states = [(b.state, b.reason) for b in await box.bodies("robot.connection")]  # type: ignore[attr-defined]
    assert [s for s, _ in states][:5] == ["ONLINE", "CONNECTION_BROKEN", "ONLINE", "OFFLINE", "ONLINE"]
    assert states[3][1] == "the robot said goodbye" and states[4][1] == "heartbeat again after OFFLINE"
    assert len(robot.commands("report_identity")) == 3


async def test_alarms_start_and_end_once_on_the_right_lane(box: Box) -> None:
    await box.run_agent(robot_settings(battery_critical_pct=15))
    robot = await box.robot(R1)
    await robot.status()
    await robot.status("EMERGENCY_STOP", faults=("COLLISION",))
    await robot.status("EMERGENCY_STOP", faults=("COLLISION",))  # still: nothing new
    await robot.status("ERROR", battery_pct=14.0, faults=("COLLISION", "MOTOR", "STUCK"))
    await robot.status("IDLE", battery_pct=16.0)
    await robot.status("IDLE", battery_pct=60.0)
    await box.wait_for("robot.restore.", 5)
    await robot.status("DOCKING")  # a fence: everything before it is journaled once it is
    await box.wait_for("robot.status", 5)
    alarms = [(e.kind, e.priority) for e in await box.events("robot.alarm.")]
    assert alarms == [("robot.alarm.collision", Priority.HIGH), ("robot.alarm.estop", Priority.CRITICAL),
                      ("robot.alarm.battery_critical", Priority.HIGH), ("robot.alarm.fault", Priority.HIGH),
                      ("robot.alarm.stuck", Priority.HIGH)]
    restores = [(e.kind, e.priority) for e in await box.events("robot.restore.")]
    assert sorted(restores) == sorted([("robot.restore.estop", Priority.NORMAL), ("robot.restore.collision", Priority.NORMAL),
                                       ("robot.restore.fault", Priority.NORMAL), ("robot.restore.stuck", Priority.NORMAL),
                                       ("robot.restore.battery_critical", Priority.NORMAL)])
    # battery_critical ended above the hysteresis band (16 % is within 2 points of 15 %).
    battery_end = [e for e in await box.events("robot.restore.battery_critical")]
    assert len(battery_end) == 1
    assert box.journal is not None
    alarm_lane = [r.seq for r in await box.journal.read_unforwarded(LANE_ALARM, 0, 100, 1 << 20)]
    assert sorted(e.seq for e in await box.events("robot.alarm.")) == alarm_lane
    estop = next(b for b in await box.bodies("robot.alarm.estop"))
    assert isinstance(estop, RobotAlarm) and estop.robot == R1 and estop.state == "EMERGENCY_STOP"


async def test_telemetry_is_kept_at_its_rate_latest_wins(box: Box) -> None:
    await box.run_agent()  # R1 at 2 Hz
    robot = await box.robot(R1)
    started = time.monotonic()
    x = 0
    while time.monotonic() - started < 1.6:
        x += 1
        await robot.telemetry(x)
        await robot.nc.flush()  # type: ignore[union-attr]
        await asyncio.sleep(0.02)
    last = x

    async def latest_kept() -> bool:
        bodies = await box.bodies("robot.telemetry")
        return bool(bodies) and bodies[-1].telemetry.pose.x == last  # type: ignore[attr-defined]

    await wait_until(latest_kept, timeout=10, what="the last sample, kept")
    kept = await box.events("robot.telemetry")
    bodies = [b for b in await box.bodies("robot.telemetry") if isinstance(b, RobotTelemetry)]
    assert 2 <= len(kept) <= 6, f"{len(kept)} samples kept of {last} in 1.6 s at 2 Hz"
    gaps = [(b.ts - a.ts).total_seconds() for a, b in zip(kept, kept[1:])]
    assert min(gaps) >= 0.45, gaps
    assert all(e.priority is Priority.LOW for e in kept)
    assert sum(b.skipped for b in bodies) >= 1, "the edge saw samples it did not keep"
    xs = [b.telemetry.pose.x for b in bodies]
    assert xs == sorted(xs) and bodies[0].robot == R1


async def test_a_burst_of_samples_does_not_delay_a_critical_alarm(box: Box) -> None:
    """10,000 telemetry samples in a burst while a panel's CRITICAL alarm is journaled: the alarm's
    append is not held up, it waits alone on the alarm lane, and the burst costs the journal a
    handful of rows (the server keeps the latest sample, the sampler one per period)."""
    await box.run_agent(robot_settings(poll_interval_s=0.05))
    robot = await box.robot(R1)
    assert box.journal is not None

    async def burst() -> None:
        for i in range(10_000):
            await robot.telemetry(float(i))
        await robot.nc.flush(timeout=30)  # type: ignore[union-attr]

    sending = asyncio.create_task(burst())
    await wait_until(lambda: box.link is not None and box.link.samplers[R1].kept > 0, timeout=10,
                     what="the first samples of the burst")
    alarm = new_envelope("satel.zone.alarm", "panel-1", Priority.CRITICAL, ZoneEvent(zone=3, name="door"))
    started = time.monotonic()
    seq = await box.journal.append(alarm)
    took = time.monotonic() - started
    await sending
    assert took < 1.0, f"the CRITICAL append took {took:.2f} s during the burst"
    [first] = await box.journal.read_unforwarded(LANE_ALARM, 0, 1, 1 << 20)
    assert first.seq == seq, "the alarm is the first row the forwarder sends on the alarm lane"
    await box.wait_for("robot.telemetry", 1)
    evt = await box.journal.read_unforwarded(LANE_EVT, 0, 100_000, 1 << 30)
    assert len(evt) < 50, f"{len(evt)} telemetry rows for a 10,000-sample burst"
    assert all(e.priority is Priority.LOW for e in await box.events("robot.telemetry"))


async def test_unreadable_or_foreign_messages_are_counted_and_dropped(box: Box) -> None:
    link = await box.run_agent()
    robot = await box.robot(R1)
    stranger = await box.robot(STRANGER)
    before = {r: DROPPED.labels(r)._value.get() for r in ("malformed", "unknown_version", "wrong_robot",
                                                             "wrong_type", "bad_payload", "unknown_robot")}
    good = wire.Status(state=wire.RobotState.IDLE, battery_pct=50, charging=False, heartbeat_interval_s=5)
    await robot.raw(wire.subject("status", R1), b"{not json")
    await robot.raw(wire.subject("status", R1), wire.encode("status", R1, "x1", _now(), good).replace(
        b'"payloadVersion":1', b'"payloadVersion":99'))
    await robot.send("status", good, robot_id=R2)  # its own subject, another robot's id
    await robot.raw(wire.subject("status", R1), wire.encode("identity", R1, "x2", _now(), IDENTITY))
    await robot.raw(wire.subject("status", R1), wire.encode("status", R1, "x3", _now(), good).replace(
        b'"batteryPct":50', b'"batteryPct":150'))
    await robot.send("cmd.ack", wire.CmdAck(status=wire.AckStatus.FINISHED))  # no correlation id
    await stranger.status()  # a login, but not this edge's robot
    await robot.status()  # still read after all that
    await box.wait_for("robot.status")
    assert link.dropped == {"malformed": 1, "unknown_version": 1, "wrong_robot": 1, "wrong_type": 1,
                            "bad_payload": 2, "unknown_robot": 1}
    for reason, count in link.dropped.items():
        assert DROPPED.labels(reason)._value.get() - before[reason] == count
    assert [e.source for e in await box.events("robot.")] == [R1] * len(await box.events("robot."))
    assert box.nc is not None
    info = await box.nc.jetstream().consumer_info(wire.EVENTS_STREAM, wire.EVENTS_CONSUMER)
    assert info.num_ack_pending == 0 and info.num_pending == 0, "every message acknowledged, none to come again"


async def test_what_robots_said_while_the_agent_was_away_is_journaled_when_it_starts(box: Box) -> None:
    await box.run_agent()
    robot = await box.robot(R1)
    await robot.status("PATROLLING", faults=("STUCK",))
    await box.wait_for("robot.capability")
    await box.stop_agent()
    # The agent is away; the box's server keeps what the robot says.
    await robot.status("PATROLLING", faults=("STUCK",))
    await robot.status("IDLE")
    ack_id = await robot.ack("cmd-1", "FINISHED")
    await robot.send("settings.reported", wire.SettingsReported(settings=wire.Settings(max_speed_mps=1.5)))
    await box.run_agent()
    await box.wait_for("robot.settings.reported")
    assert [b.status.state.value for b in await box.bodies("robot.status")] == [  # type: ignore[attr-defined]
        "PATROLLING", "IDLE"]
    assert [e.kind for e in await box.events("robot.alarm.")] == ["robot.alarm.stuck"]
    assert [e.kind for e in await box.events("robot.restore.")] == ["robot.restore.stuck"]
    assert len(await box.events("robot.connection")) == 1, "still ONLINE across the restart: no new connection event"
    [ack] = await box.events(wire.ACK_KIND)
    body = (await box.bodies(wire.ACK_KIND))[0]
    assert isinstance(body, RobotCommandAck) and (body.command_id, body.status, body.by) == (
        "cmd-1", wire.AckStatus.FINISHED, "robot")
    assert ack.corr == "cmd-1" and ack_id
    # A new agent asks again who the robot is.
    await box.wait_for("robot.identity", 2)


async def test_the_streams_are_made_again_after_the_boxs_server_restarts(box: Box) -> None:
    """The memory stream (telemetry) and its consumer go with a restart of the box's server; the
    link makes them again and reads on, and what ROBOT_EVENTS held is still there."""
    link = await box.run_agent()
    robot = await box.robot(R1)
    await robot.status()
    await box.wait_for("robot.capability")
    await robot.telemetry(1.0)
    await robot.nc.flush()  # type: ignore[union-attr]
    await box.wait_for("robot.telemetry")
    box.site.server.stop()
    await box.site.server.start()

    async def sample_kept() -> bool:
        await robot.telemetry(2.0)
        await robot.nc.flush()  # type: ignore[union-attr]
        return any(b.telemetry.pose.x == 2.0 for b in await box.bodies("robot.telemetry"))  # type: ignore[attr-defined]

    await wait_until(sample_kept, timeout=20, interval=0.2, what="telemetry read again after the restart")
    await robot.status("DOCKING")
    await box.wait_for("robot.status", 2)
    assert box.nc is not None
    assert (await box.nc.jetstream().stream_info(wire.TELEMETRY_STREAM)).config.max_msgs_per_subject == 1
    assert link.streams_ready

async def test_a_message_the_journal_refuses_is_read_again_and_journaled_once(tmp_path: Path) -> None:
    """A journal full of unforwarded alarms refuses the robot's status change: the message is not
    acknowledged and the tracker forgets the change, so once the journal has room the message is
    read again and its event journaled, once."""
    box = await Box(tmp_path, journal_max_bytes=64 * 1024).start()
    try:
        link = await box.run_agent()
        robot = await box.robot(R1)
        await robot.status()
        await box.wait_for("robot.capability")
        assert box.journal is not None
        with pytest.raises(JournalFull):
            for zone in range(10_000):  # evicts everything else, then refuses
                await box.journal.append(new_envelope("satel.zone.alarm", "panel-1", Priority.CRITICAL,
                                                      ZoneEvent(zone=zone % 256 + 1)))
        refused = JOURNAL_REFUSED._value.get()
        await robot.status("MOVING")
        await wait_until(lambda: JOURNAL_REFUSED._value.get() > refused, timeout=10, what="the status refused")
        assert link.trackers[R1].reported_state == "IDLE", "what was not journaled has not happened"
        await box.journal.mark_forwarded(LANE_ALARM, 0, box.journal.last_seq)  # the hub took the alarms
        await box.wait_for("robot.status")
        await robot.status("DOCKING")  # a fence: MOVING was read before it
        await wait_until(lambda: link.trackers[R1].reported_state == "DOCKING", timeout=10, what="DOCKING")
        await box.wait_for("robot.status", 2)
        states = [b.status.state.value for b in await box.bodies("robot.status")]  # type: ignore[attr-defined]
        assert states == ["MOVING", "DOCKING"]
        assert box.nc is not None
        info = await box.nc.jetstream().consumer_info(wire.EVENTS_STREAM, wire.EVENTS_CONSUMER)
        assert info.num_ack_pending == 0
        assert info.delivered.consumer_seq > info.delivered.stream_seq, "the refused message was delivered again"
    finally:
        await box.close()

async def test_diagnostics_show_the_robots_without_the_sites_map(box: Box) -> None:
    link = await box.run_agent()
    robot = await box.robot(R1)
    route = [wire.Waypoint(x=1, y=2, name="gate"), wire.Waypoint(x=3, y=4)]
    await robot.send("settings.reported", wire.SettingsReported(settings=wire.Settings(patrol_route=route)))
    await robot.telemetry(7.0)
    await robot.status()
    await box.wait_for("robot.capability")
    dump = diagnostics(link)
    text = str(dump)
    assert dump["robots"][R1]["patrol_route"] == "2 waypoints" and "gate" not in text
    assert dump["robots"][R1]["pose"] == "<redacted>" and dump["settings"]["robots"][0]["id"] == R1
    assert dump["counters"]["vigil_edge_robot_messages_total"]["status"] >= 1


def _now() -> datetime:
    return datetime.now(timezone.utc)


async def test_the_agent_runs_the_robot_link_and_shows_its_robots(box: Box, tmp_path: Path) -> None:
    """`python -m edge run` with robots configured: the link runs beside the rest, the local API
    shows each robot, and the status report names each robot's connection."""
    data = tmp_path / "agent"
    config = load_edge_config(env={}, overrides={
        "edge_id": EDGE, "data_dir": str(data), "nats_url": box.url, **box.site.auth.edge_settings(),
        "http_port": free_port(), "discovery": {"enabled": False}, "forwarder": {"drain_on_stop_s": 0}, "status_report": {"interval_s": 0.2, "retry_s": 0.1},
        "robots": {"robots": [{"id": R1, "name": "north"}], "poll_interval_s": 0.05}})
    create_key_file(config.key_path)
    stop = asyncio.Event()
    agent = asyncio.create_task(run_edge(config, stop, handle_signals=False))
    robot = await box.robot(R1)
    try:
        async def robots() -> list[dict[str, Any]] | None:
            try:
                status = await _local_api(config.http_port, token_path(data), "/api/v1/status")
            except (OSError, TokenFileError):
                return None
            return status["robots"]["robots"]

        await wait_until(robots, timeout=20, what="the agent's local API")

        async def online() -> bool:
            await robot.status()
            found = await robots() or []
            return bool(found) and found[0]["connection"] == "ONLINE" and found[0]["identity"] is not None

        await wait_until(online, timeout=20, interval=0.2, what="the robot ONLINE with its identity on the local page")
        listed = await _local_api(config.http_port, token_path(data), "/api/v1/links/robots")
        assert [r["id"] for r in listed["robots"]] == [R1] and listed["robots"][0]["name"] == "north"
        dump = await _local_api(config.http_port, token_path(data), "/api/v1/links/robots/diagnostics")
        assert dump["settings"]["robots"][0]["id"] == R1
    finally:
        stop.set()
        await agent


async def _local_api(port: int, token_file: Path, path: str) -> Any:
    """A GET on the agent's local API as the on-box tools make it (off the event loop it serves on)."""
    def get() -> Any:
        request = urllib.request.Request(f"http://127.0.0.1:{port}{path}",
                                         headers={"Authorization": f"Bearer {read_cli_token(token_file)}"})
        with urllib.request.urlopen(request, timeout=5) as resp:
            return json.loads(resp.read())

    return await asyncio.to_thread(get)


def test_status_reports_name_each_robots_connection() -> None:
    tracker = RobotTracker(R1, Policy(), FakeClock())
    reports = link_reports([], [], [tracker])
    assert [(r.kind, r.id, r.state) for r in reports()] == [("robot", R1, "UNKNOWN")]
    tracker.connection, tracker.connection_since = "ONLINE", FakeClock().now()
    assert [(r.state, r.since) for r in reports()] == [("ONLINE", tracker.connection_since)]
