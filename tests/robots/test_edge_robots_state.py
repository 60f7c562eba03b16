"""The robot trackers and the telemetry sampler, pure (edge/links/robots/state.py): a fake clock,
decoded robot messages in, events and questions out."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import msgspec
import pytest

from edge.config import ConfigError, load_edge_config
from edge.links.robots.state import (Ask, Observation, Policy, RobotTracker, Snapshot, TelemetrySampler, Unanswered,
                                     alarms_of)
from shared import robots as wire
from shared.bodies.robots import RobotCommandAck, RobotConnection
from shared.clock import FakeClock
from shared.envelope import Priority

ROBOT = "RB-001"
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


class Script:
    """Messages from one robot, as the link would decode them."""

    def __init__(self) -> None:
        self.n = 0

    def envelope(self, message_type: wire.MessageType, correlation_id: str | None = None) -> wire.RobotEnvelope:
        self.n += 1
        return wire.RobotEnvelope(payload_version=1, message_id=f"m{self.n}", robot_id=ROBOT, sent_at=T0,
                                  type=message_type, payload=msgspec.Raw(b"{}"), correlation_id=correlation_id)


def status(state: str = "IDLE", battery: float = 80.0, faults: tuple[str, ...] = (), goodbye: bool = False,
           interval: float = 1.0) -> wire.Status:
    return wire.Status(state=wire.RobotState(state), battery_pct=battery, charging=False, heartbeat_interval_s=interval,
                       faults=list(faults), goodbye=goodbye)


def kinds(actions: list) -> list[str]:
    return [a.kind if isinstance(a, Observation) else f"ask:{a.command_type}" if isinstance(a, Ask)
            else f"unanswered:{a.command_type}" for a in actions]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def tracker(clock: FakeClock) -> RobotTracker:
    return RobotTracker(ROBOT, Policy(missed_heartbeats=3, battery_critical_pct=10, query_timeout_s=5, query_attempts=2),
                        clock)


def test_first_heartbeat_is_online_with_its_status_and_asks_identity_then_capability(tracker: RobotTracker) -> None:
    s = Script()
    first = tracker.on_message(s.envelope("status"), status())
    assert kinds(first) == ["robot.connection", "robot.status", "ask:report_identity"]
    assert first[0].body.state == "ONLINE" and first[0].priority is Priority.LOW  # type: ignore[union-attr]
    ask = first[-1]
    assert isinstance(ask, Ask) and ask.attempt == 1
    # Heartbeats change nothing.
    assert tracker.on_message(s.envelope("status"), status()) == []
    identity = wire.Identity(manufacturer="Acme", model="P2", serial_number="1", firmware_version="1",
                             bridge_version="1")
    after = tracker.on_message(s.envelope("identity"), identity)
    assert kinds(after) == ["robot.identity", "ask:report_capability"]
    cap = wire.Capability(commands=[], settings=[], telemetry=[], heartbeat_interval_s=1.0)
    assert kinds(tracker.on_message(s.envelope("capability"), cap)) == ["robot.capability"]
    assert tracker.asking is None
    # Each event of a message has a key of its own: the same message read again is the same event.
    keys = [a.key for a in first if isinstance(a, Observation)]
    assert len(set(keys)) == 2 and all(k.startswith(f"{ROBOT}|m1|") for k in keys)  # type: ignore[union-attr]


def test_a_state_or_fault_change_is_journaled_once_with_the_previous_state(tracker: RobotTracker) -> None:
    s = Script()
    tracker.on_message(s.envelope("status"), status())
    moving = tracker.on_message(s.envelope("status"), status("MOVING"))
    assert kinds(moving) == ["robot.status"]
    assert moving[0].body.previous_state == "IDLE"  # type: ignore[union-attr]
    assert tracker.on_message(s.envelope("status"), status("MOVING", battery=70)) == []
    assert kinds(tracker.on_message(s.envelope("status"), status("MOVING", faults=("SENSOR",)))) == [
        "robot.status", "robot.alarm.fault"]


def test_missed_heartbeats_break_the_connection_and_the_next_one_asks_again(tracker: RobotTracker,
                                                                           clock: FakeClock) -> None:
    s = Script()
    tracker.on_message(s.envelope("status"), status(interval=1.0), heard_at=clock.now())
    tracker.asking = None  # questions answered
    clock.advance(3.0)
    assert [a for a in tracker.tick() if isinstance(a, Observation)] == []  # 3 × 1 s: not yet
    clock.advance(0.1)
    [broken] = tracker.tick()
    assert isinstance(broken, Observation) and broken.priority is Priority.NORMAL
    assert isinstance(broken.body, RobotConnection) and broken.body.state == "CONNECTION_BROKEN"
    assert broken.body.last_heard_at == T0
    assert tracker.tick() == []  # once
    back = tracker.on_message(s.envelope("status"), status(), heard_at=clock.now())
    assert kinds(back) == ["robot.connection", "ask:report_identity"]
    assert back[0].body.reason == "heartbeat again after CONNECTION_BROKEN"  # type: ignore[union-attr]


def test_goodbye_is_offline_and_back_is_online_and_asked_again(tracker: RobotTracker, clock: FakeClock) -> None:
    s = Script()
    tracker.on_message(s.envelope("status"), status())
    bye = tracker.on_message(s.envelope("status"), status(goodbye=True))
    assert kinds(bye) == ["robot.connection"] and bye[0].body.state == "OFFLINE"  # type: ignore[union-attr]
    clock.advance(60)
    assert tracker.tick() == [], "no heartbeat is expected from a robot that said goodbye"
    assert kinds(tracker.on_message(s.envelope("status"), status())) == ["robot.connection", "ask:report_identity"]


def test_alarms_start_once_and_end_once_with_their_priorities() -> None:
    assert alarms_of(status("EMERGENCY_STOP"), 10) == {"estop": "emergency stop"}
    assert alarms_of(status("ERROR", faults=("MOTOR", "LOCALISATION")), 10) == {
        "fault": "state ERROR, LOCALISATION, MOTOR"}
    assert alarms_of(status(faults=("COLLISION", "STUCK", "BATTERY_CRITICAL")), 10) == {
        "collision": "COLLISION", "stuck": "STUCK", "battery_critical": "BATTERY_CRITICAL"}
    assert alarms_of(status(battery=10), 10) == {"battery_critical": "battery 10 %"}
    assert alarms_of(status(battery=11.5), 10) == {}
    assert alarms_of(status(battery=11.5), 10, battery_alarm_active=True) == {"battery_critical": "battery 11.5 %"}


def test_alarm_events_carry_where_the_robot_was(tracker: RobotTracker) -> None:
    s = Script()
    tracker.on_telemetry(s.envelope("telemetry"), wire.Telemetry(pose=wire.Pose(x=1.5, y=2.0), battery_pct=50,
                                                                 speed_mps=0.0))
    tracker.on_message(s.envelope("status"), status())
    stop = tracker.on_message(s.envelope("status"), status("EMERGENCY_STOP", faults=("COLLISION",)))
    assert kinds(stop) == ["robot.status", "robot.alarm.collision", "robot.alarm.estop"]
    priorities = {a.kind: a.priority for a in stop if isinstance(a, Observation)}
    assert priorities["robot.alarm.estop"] is Priority.CRITICAL and priorities["robot.alarm.collision"] is Priority.HIGH
    assert stop[2].body.pose == {"x": 1.5, "y": 2.0, "theta": 0.0}  # type: ignore[union-attr]
    assert tracker.on_message(s.envelope("status"), status("EMERGENCY_STOP", faults=("COLLISION",))) == []
    ended = tracker.on_message(s.envelope("status"), status("IDLE"))
    assert kinds(ended) == ["robot.status", "robot.restore.collision", "robot.restore.estop"]
    assert all(a.priority is Priority.NORMAL for a in ended[1:])  # type: ignore[union-attr]


def test_an_unanswered_question_is_asked_again_then_given_up(tracker: RobotTracker, clock: FakeClock) -> None:
    s = Script()
    ask = tracker.on_message(s.envelope("status"), status(interval=100))[-1]
    assert isinstance(ask, Ask)
    clock.advance(5)
    [again] = tracker.tick()
    assert isinstance(again, Ask) and again.attempt == 2 and again.correlation_id == ask.correlation_id
    clock.advance(5)
    gave_up, capability = tracker.tick()
    assert isinstance(gave_up, Unanswered) and gave_up.attempts == 2
    assert isinstance(capability, Ask) and capability.command_type == "report_capability"
    # The robot refuses the question: answered, the questions end.
    refused = tracker.on_ack(s.envelope("cmd.ack", capability.correlation_id),
                             wire.CmdAck(status=wire.AckStatus.REJECTED_INVALID))
    assert kinds(refused) == ["robot.cmd.ack"] and tracker.asking is None
    body = refused[0].body  # type: ignore[union-attr]
    assert isinstance(body, RobotCommandAck) and body.command_type == "report_capability" and body.by == "robot"


def test_a_restored_snapshot_neither_reopens_alarms_nor_reports_the_state_again(clock: FakeClock) -> None:
    first = RobotTracker(ROBOT, Policy(), clock)
    s = Script()
    first.on_message(s.envelope("status"), status("EMERGENCY_STOP"))
    saved = msgspec.json.decode(msgspec.json.encode(first.snapshot()), type=Snapshot)
    second = RobotTracker(ROBOT, Policy(), clock)
    second.restore(saved)
    # A new agent asks who the robot is, but the connection, state and alarm are known already.
    assert kinds(second.on_message(s.envelope("status"), status("EMERGENCY_STOP"))) == ["ask:report_identity"]
    assert kinds(second.on_message(s.envelope("status"), status())) == ["robot.status", "robot.restore.estop"]


def test_the_sampler_keeps_the_latest_sample_per_period_and_counts_the_rest() -> None:
    sampler = TelemetrySampler(period_s=1.0)
    s = Script()

    def sample(x: float) -> tuple[wire.RobotEnvelope, wire.Telemetry]:
        return s.envelope("telemetry"), wire.Telemetry(pose=wire.Pose(x=x, y=0), battery_pct=50, speed_mps=0)

    assert sampler.due(10.0) is None  # nothing to keep yet
    sampler.offer(*sample(0))
    kept = sampler.due(10.0)
    assert kept is not None and kept[1].pose.x == 0 and kept[2] == 0
    for i in range(1, 10):
        sampler.offer(*sample(i))
        assert sampler.due(10.0 + i / 10) is None
    assert sampler.due(10.95) is None
    envelope, latest, skipped = sampler.due(11.0)  # type: ignore[misc]
    assert latest.pose.x == 9 and skipped == 8
    assert sampler.due(11.5) is None and (sampler.kept, sampler.skipped_total) == (2, 8)


def test_the_sampler_keeps_its_rate_when_ticks_come_a_little_late() -> None:
    """Ticks every 0.5 s, each a hair after its mark: still one sample per second, not one per
    1.5 s; after a gap (no samples for a while) the rate starts again, with no burst."""
    sampler = TelemetrySampler(period_s=1.0)
    s = Script()
    kept = 0
    for tick in range(40):  # 20 s
        sampler.offer(s.envelope("telemetry"), wire.Telemetry(pose=wire.Pose(x=0, y=0), battery_pct=50, speed_mps=0))
        kept += sampler.due(100.0 + tick * 0.5 + 0.001 * (tick % 3)) is not None
    assert kept in (20, 21)
    sampler.offer(s.envelope("telemetry"), wire.Telemetry(pose=wire.Pose(x=0, y=0), battery_pct=50, speed_mps=0))
    assert sampler.due(200.0) is not None and sampler.due(200.5) is None


def test_robots_config_and_its_environment_variable(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "edge.toml"
    path.write_text('edge_id = "site-1"\n[robots]\nmissed_heartbeats = 5\n\n[[robots.robots]]\nid = "RB-001"\n'
                    'telemetry_hz = 2.0\nname = "north"\n')
    config = load_edge_config(path, env={})
    assert config.robots.missed_heartbeats == 5 and config.robots.robots[0].telemetry_hz == 2.0
    env = {"VIGIL_EDGE_ROBOTS": '[{"id": "RB-002"}, {"id": "RB-003", "telemetry_hz": 0.5}]'}
    assert [r.id for r in load_edge_config(path, env=env).robots.robots] == ["RB-002", "RB-003"]
    for bad, message in (('[{"id": "agent"}]', "robot id"), ('[{"id": "r.1"}]', "robot id"),
                         ('[{"id": "r1"}, {"id": "r1"}]', "unique"), ('[{"id": "r1", "telemetry_hz": 0}]', "telemetry_hz"),
                         ("not json", "not valid JSON")):
        with pytest.raises(ConfigError, match=message):
            load_edge_config(path, env={"VIGIL_EDGE_ROBOTS": bad})


def test_time_is_the_trackers_clock_not_the_robots(tracker: RobotTracker, clock: FakeClock) -> None:
    """A robot whose clock is a year off is judged by when the box heard it."""
    s = Script()
    envelope = msgspec.structs.replace(s.envelope("status"), sent_at=T0 - timedelta(days=365))
    tracker.on_message(envelope, status(interval=1.0))
    clock.advance(2.0)
    assert [a for a in tracker.tick() if isinstance(a, Observation)] == []
