"""The robot bridge's sans-IO core (firmware_bridges.robot.core) on a fake clock, with the MOCK
robot's simulation as the robot it reads: fencing, repeats, the queue, estop, cancel, settings,
dropped messages, heartbeats, telemetry and the goodbye."""
from __future__ import annotations

import uuid
from typing import Any

import msgspec
import pytest

from firmware_bridges.robot.adapter import StatusReading
from firmware_bridges.robot.core import (MAX_QUEUE, Abort, Action, ApplySettings, BridgeCore, Execute, SaveFencingToken,
                                         Send)
from firmware_bridges.robot.mock import MockRobot
from shared.clock import FakeClock
from shared.robots import (PAYLOAD_VERSION, AckStatus, Capability, Cmd, CmdAck, Identity, RobotEnvelope, RobotState,
                           Settings, SettingsDesired, SettingsReported, Status, Telemetry, Waypoint, decode, encode,
                           subject)

ROBOT = "RB-001"


class Bridge:
    """A core with its robot and clock, and helpers to speak to it as the edge does."""

    def __init__(self, *, heartbeat_s: float = 2.0, telemetry_hz: float = 0.0, highest_token: int | None = None) -> None:
        self.clock = FakeClock()
        self.robot = MockRobot(ROBOT, "Rover")
        self.core = BridgeCore(ROBOT, self.robot, self.clock, heartbeat_s=heartbeat_s, telemetry_hz=telemetry_hz,
                               highest_token=highest_token)

    def cmd(self, command_type: str, command_id: str, token: int | None = None, **args: Any) -> list[Action]:
        data = encode("cmd", ROBOT, str(uuid.uuid4()), self.clock.now(), Cmd(command_type, args, token), command_id)
        return self.core.receive(subject("cmd", ROBOT), data)

    def desired(self, settings: Settings, command_id: str, token: int | None, message_id: str = "m-desired") -> list[Action]:
        data = encode("settings.desired", ROBOT, message_id, self.clock.now(),
                      SettingsDesired(settings=settings, fencing_token=token), command_id)
        return self.core.receive(subject("settings.desired", ROBOT), data)


def sent(actions: list[Action]) -> list[tuple[RobotEnvelope, msgspec.Struct]]:
    """The messages among `actions`, decoded as the edge reads them."""
    return [decode(a.data, a.subject) for a in actions if isinstance(a, Send)]


def acks(actions: list[Action]) -> list[tuple[str, AckStatus, str]]:
    """(command id, status, detail) of each ack among `actions`."""
    return [(env.correlation_id or "", p.status, p.detail) for env, p in sent(actions) if isinstance(p, CmdAck)]


def executes(actions: list[Action]) -> list[str]:
    return [a.command.id for a in actions if isinstance(a, Execute)]


def of_type(actions: list[Action], kind: type[msgspec.Struct]) -> list[tuple[RobotEnvelope, Any]]:
    return [(env, p) for env, p in sent(actions) if isinstance(p, kind)]


W, R, F = AckStatus.WAITING, AckStatus.RUNNING, AckStatus.FINISHED


def test_a_command_is_acked_waiting_running_finished_under_its_id() -> None:
    b = Bridge()
    actions = b.cmd("goto", "c1", 1, x=3.0, y=4.0)
    assert [(c, s) for c, s, _ in acks(actions)] == [("c1", W), ("c1", R)]
    (execute,) = [a for a in actions if isinstance(a, Execute)]
    assert execute.command.type == "goto" and execute.command.args.x == 3.0 and execute.command.fencing_token == 1
    assert SaveFencingToken(1) in actions
    b.clock.advance(5)
    done = b.core.execution_ended("c1", F, "at (3, 4)")
    assert acks(done) == [("c1", F, "at (3, 4)")]
    envelopes = [env for env, _ in sent(actions + done)]
    assert len({env.message_id for env in envelopes}) == len(envelopes)
    assert all(env.robot_id == ROBOT and env.payload_version == PAYLOAD_VERSION for env in envelopes)
    assert envelopes[-1].sent_at == b.clock.now()


def test_a_lower_fencing_token_is_refused_and_equal_or_higher_accepted() -> None:
    b = Bridge()
    b.cmd("goto", "c1", 5, x=1.0, y=0.0)
    refused = b.cmd("goto", "c2", 4, x=1.0, y=0.0)
    assert acks(refused) == [("c2", AckStatus.REJECTED_STALE_TOKEN, "fencing token 4 is lower than 5, already seen")]
    assert executes(refused) == [] and b.core.highest_token == 5
    equal = b.cmd("goto", "c3", 5, x=1.0, y=0.0)
    assert acks(equal) == [("c3", W, "")] and not any(isinstance(a, SaveFencingToken) for a in equal)
    higher = b.cmd("goto", "c4", 9, x=1.0, y=0.0)
    assert acks(higher)[0][1] is W and SaveFencingToken(9) in higher and b.core.highest_token == 9


def test_the_kept_token_survives_a_restart() -> None:
    b = Bridge(highest_token=7)
    assert acks(b.cmd("dock", "c1", 6))[0][1] is AckStatus.REJECTED_STALE_TOKEN
    assert acks(b.cmd("dock", "c2", 7))[0][1] is W


def test_only_no_lease_commands_pass_without_a_token() -> None:
    b = Bridge()
    assert acks(b.cmd("goto", "c1", None, x=1.0, y=1.0)) == [
        ("c1", AckStatus.REJECTED_INVALID, "a fencing token is required")]
    assert acks(b.desired(Settings(camera_on=False), "s1", None)) == [
        ("s1", AckStatus.REJECTED_INVALID, "a fencing token is required")]
    assert acks(b.cmd("report_identity", "q1"))[-1][1] is F
    assert acks(b.cmd("cancel", "k1", commandId="nothing"))[-1][1] is F
    assert executes(b.cmd("estop", "e1")) == ["e1"]


def test_a_stale_token_never_refuses_an_estop() -> None:
    b = Bridge(highest_token=10)
    actions = b.cmd("estop", "e1", 3)
    assert executes(actions) == ["e1"] and acks(actions) == [("e1", R, "")] and b.core.highest_token == 10


def test_a_queued_command_whose_token_went_stale_is_refused_at_its_turn() -> None:
    b = Bridge()
    b.cmd("goto", "a-run", 1, x=5.0, y=0.0)
    assert acks(b.cmd("goto", "a-queued", 1, x=6.0, y=0.0)) == [("a-queued", W, "")]
    # Operator B takes the lease over: a higher token while A's command still waits.
    assert acks(b.cmd("goto", "b-queued", 2, x=7.0, y=0.0)) == [("b-queued", W, "")]
    turn = b.core.execution_ended("a-run", F)
    assert acks(turn)[:2] == [("a-run", F, ""),
                              ("a-queued", AckStatus.REJECTED_STALE_TOKEN, "fencing token 1 is lower than 2, already seen")]
    assert acks(turn)[2][:2] == ("b-queued", R) and executes(turn) == ["b-queued"]


def test_a_repeated_command_gets_its_current_ack_and_never_runs_twice() -> None:
    b = Bridge()
    b.cmd("goto", "c1", 1, x=1.0, y=0.0)
    again = b.cmd("goto", "c1", 1, x=1.0, y=0.0)
    assert acks(again) == [("c1", R, "")] and executes(again) == []
    b.core.execution_ended("c1", F, "there")
    assert acks(b.cmd("goto", "c1", 1, x=1.0, y=0.0)) == [("c1", F, "there")]
    refused = b.cmd("goto", "c2", 0, x=1.0, y=0.0)
    assert acks(b.cmd("goto", "c2", 5, x=1.0, y=0.0)) == acks(refused)
    assert b.core.repeats == 3


def test_commands_run_one_at_a_time_first_in_first_out() -> None:
    b = Bridge()
    started = [executes(b.cmd("goto", f"c{i}", 1, x=float(i), y=0.0)) for i in range(3)]
    assert started == [["c0"], [], []]
    assert executes(b.core.execution_ended("c0", F)) == ["c1"]
    assert executes(b.core.execution_ended("c1", AckStatus.FAILED, "stuck")) == ["c2"]
    assert executes(b.core.execution_ended("c2", F)) == []
    assert b.core.snapshot()["running"] is None


def test_a_late_end_of_a_command_that_is_not_running_is_ignored() -> None:
    b = Bridge()
    assert b.core.execution_ended("never-ran", F) == []
    with pytest.raises(ValueError):
        b.core.execution_ended("never-ran", AckStatus.CANCELLED)


def test_a_full_queue_refuses_more() -> None:
    b = Bridge()
    for i in range(MAX_QUEUE + 1):  # one runs, MAX_QUEUE wait
        b.cmd("goto", f"c{i}", 1, x=1.0, y=0.0)
    assert acks(b.cmd("goto", "one-too-many", 1, x=1.0, y=0.0))[0][:2] == ("one-too-many", AckStatus.REJECTED_STATE)


def test_estop_overtakes_the_queue_and_aborts_the_running_command() -> None:
    b = Bridge()
    b.cmd("goto", "run", 1, x=5.0, y=0.0)
    b.cmd("patrol", "q1", 1, loops=1)
    b.cmd("dock", "q2", 1)
    actions = b.cmd("estop", "stop")
    assert actions[0] == Abort("run", "emergency stop")
    assert acks(actions) == [("run", AckStatus.FAILED, "emergency stop"), ("q1", AckStatus.CANCELLED, "emergency stop"),
                             ("q2", AckStatus.CANCELLED, "emergency stop"), ("stop", R, "")]
    assert executes(actions) == ["stop"]
    b.robot.sim.estop()  # what the adapter does with it
    assert acks(b.core.execution_ended("stop", F, "stopped")) == [("stop", F, "stopped")]
    # Stopped: no motion until reset.
    refused = b.cmd("goto", "moving", 2, x=1.0, y=1.0)
    assert acks(refused) == [("moving", AckStatus.REJECTED_STATE, "the robot is in EMERGENCY_STOP; reset it first")]
    assert executes(b.cmd("reset", "reset", 2)) == ["reset"]


def test_a_queued_motion_command_is_refused_at_its_turn_when_the_robot_stopped_meanwhile() -> None:
    b = Bridge()
    b.cmd("goto", "run", 1, x=5.0, y=0.0)
    b.cmd("goto", "next", 1, x=6.0, y=0.0)
    b.robot.sim.raise_fault("MOTOR")  # the running goto fails with it
    turn = b.core.execution_ended("run", AckStatus.FAILED, "fault MOTOR")
    assert acks(turn)[1] == ("next", AckStatus.REJECTED_STATE, "the robot is in ERROR; reset it first")
    assert executes(turn) == []


def test_cancel_takes_a_queued_command_out_or_aborts_the_running_one() -> None:
    b = Bridge()
    b.cmd("goto", "run", 1, x=5.0, y=0.0)
    b.cmd("goto", "waiting", 1, x=6.0, y=0.0)
    b.cmd("goto", "last", 1, x=7.0, y=0.0)
    out = b.cmd("cancel", "k1", commandId="waiting")
    assert acks(out) == [("waiting", AckStatus.CANCELLED, "cancelled by command k1"),
                         ("k1", F, "command waiting taken out of the queue")]
    abort = b.cmd("cancel", "k2", commandId="run")
    assert abort[0] == Abort("run", "cancelled by command k2")
    assert acks(abort)[:2] == [("run", AckStatus.CANCELLED, "cancelled by command k2"), ("k2", F, "command run aborted")]
    assert executes(abort) == ["last"]  # the next one starts
    assert b.core.execution_ended("run", AckStatus.FAILED, "aborted") == []  # its ack is already out
    assert acks(b.cmd("cancel", "k3", commandId="run")) == [("k3", F, "nothing to cancel: command run is CANCELLED")]
    assert acks(b.cmd("cancel", "k4", commandId="who")) == [("k4", F, "nothing to cancel: command who is not known here")]


def test_pause_and_resume_act_at_once_on_what_moves() -> None:
    b = Bridge()
    assert acks(b.cmd("pause", "p0", 1)) == [("p0", AckStatus.REJECTED_STATE, "nothing to pause: the robot is CHARGING")]
    assert acks(b.cmd("resume", "r0", 1)) == [("r0", AckStatus.REJECTED_STATE, "nothing to resume: the robot is CHARGING")]
    b.cmd("patrol", "run", 1)
    b.robot.sim.patrol(0)
    pause = b.cmd("pause", "p1", 1)
    assert executes(pause) == ["p1"] and acks(pause) == [("p1", R, "")]
    b.robot.sim.pause()
    assert executes(b.cmd("resume", "r1", 1)) == ["r1"]
    assert acks(b.core.execution_ended("p1", F)) == [("p1", F, "")]
    assert b.core.snapshot()["running"] == "run"


def test_identity_and_capability_are_reported_under_the_query_id() -> None:
    b = Bridge(heartbeat_s=0.5)
    actions = b.cmd("report_identity", "q1")
    ((env, identity),) = of_type(actions, Identity)
    assert env.correlation_id == "q1" and identity.serial_number == "MOCK-RB-001" and identity.name == "Rover"
    assert acks(actions) == [("q1", F, "")]
    ((env, capability),) = of_type(b.cmd("report_capability", "q2"), Capability)
    assert env.correlation_id == "q2" and capability.heartbeat_interval_s == 0.5 and "patrol" in capability.commands


def test_unknown_commands_and_bad_arguments_are_invalid() -> None:
    b = Bridge()
    ((_, status, detail),) = acks(b.cmd("fly", "c1", 1))
    assert status is AckStatus.REJECTED_INVALID and "unknown command 'fly'" in detail
    ((_, status, detail),) = acks(b.cmd("goto", "c2", 1, x="far", y=0.0))
    assert status is AckStatus.REJECTED_INVALID and "goto" in detail
    ((_, status, _),) = acks(b.cmd("cancel", "c3"))  # no commandId
    assert status is AckStatus.REJECTED_INVALID


def test_desired_settings_are_applied_then_reported_with_the_message_they_applied() -> None:
    b = Bridge()
    route = [Waypoint(1.0, 1.0), Waypoint(2.0, 2.0)]
    actions = b.desired(Settings(max_speed_mps=1.5, patrol_route=route), "s1", 3, message_id="desired-1")
    assert acks(actions) == [("s1", W, "")]
    assert ApplySettings("s1", Settings(max_speed_mps=1.5, patrol_route=route)) in actions
    # A second one waits for the first.
    assert not any(isinstance(a, ApplySettings) for a in b.desired(Settings(camera_on=False), "s2", 3, "desired-2"))
    applied = b.robot.sim.apply_settings(Settings(max_speed_mps=1.5, patrol_route=route))
    done = b.core.settings_applied("s1", applied)
    ((env, reported),) = of_type(done, SettingsReported)
    assert env.correlation_id == "s1" and reported.applied_message_id == "desired-1"
    assert reported.settings.max_speed_mps == 1.5 and reported.settings.camera_on is True  # all of them
    assert acks(done) == [("s1", F, "")]
    assert ApplySettings("s2", Settings(camera_on=False)) in done
    assert acks(b.core.settings_failed("s2", "camera busy")) == [("s2", AckStatus.FAILED, "camera busy")]


def test_settings_outside_the_capability_or_under_a_stale_token_are_refused() -> None:
    b = Bridge(highest_token=4)
    assert acks(b.desired(Settings(max_speed_mps=5.0), "s1", 4)) == [
        ("s1", AckStatus.REJECTED_INVALID, "maxSpeedMps 5.0 is outside 0.1..2.0")]
    assert acks(b.desired(Settings(camera_on=True), "s2", 3))[0][1] is AckStatus.REJECTED_STALE_TOKEN
    # Queued desired settings are fenced at their turn too.
    b.desired(Settings(camera_on=True), "s3", 4)
    b.desired(Settings(camera_on=False), "s4", 4)
    b.cmd("dock", "c1", 5)
    turn = b.core.settings_applied("s3", b.robot.settings())
    assert acks(turn)[-1][:2] == ("s4", AckStatus.REJECTED_STALE_TOKEN)


def _raw_envelope(**fields: Any) -> bytes:
    base = {"payloadVersion": PAYLOAD_VERSION, "messageId": "m1", "robotId": ROBOT, "sentAt": "2026-01-01T00:00:00Z",
            "type": "cmd", "payload": {"commandType": "dock", "fencingToken": 1}, "correlationId": "c1"}
    return msgspec.json.encode({**base, **fields})


@pytest.mark.parametrize(("data", "reason"), [
    (b"{not json", "malformed"),
    (_raw_envelope(payloadVersion=99), "unknown_version"),
    (_raw_envelope(robotId="RB-002"), "wrong_robot"),
    (_raw_envelope(type="settings.desired"), "wrong_type"),
    (_raw_envelope(payload={"commandType": 5}), "bad_payload"),
    (_raw_envelope(correlationId=None), "malformed"),
])
def test_unreadable_messages_are_dropped_and_counted(data: bytes, reason: str) -> None:
    b = Bridge()
    assert b.core.receive(subject("cmd", ROBOT), data) == []
    assert b.core.dropped == {reason: 1}
    assert b.core.receive(subject("cmd", ROBOT), _raw_envelope()) != []  # and the bridge goes on


def test_a_robot_to_edge_message_handed_to_the_bridge_is_dropped() -> None:
    b = Bridge()
    status = Status(state=RobotState.IDLE, battery_pct=50.0, charging=False, heartbeat_interval_s=1.0)
    data = encode("status", ROBOT, "m1", b.clock.now(), status, "c1")
    assert b.core.receive(subject("status", ROBOT), data) == []
    assert b.core.dropped == {"wrong_type": 1}


def test_a_status_goes_out_on_change_and_every_heartbeat() -> None:
    b = Bridge(heartbeat_s=2.0)
    ((_, first),) = of_type(b.core.tick(), Status)
    assert first.state is RobotState.CHARGING and first.heartbeat_interval_s == 2.0 and not first.goodbye
    b.clock.advance(1.0)
    assert b.core.tick() == []
    b.clock.advance(1.0)
    assert len(of_type(b.core.tick(), Status)) == 1
    b.clock.advance(0.5)
    b.robot.sim.raise_fault("COLLISION")
    ((_, changed),) = of_type(b.core.tick(), Status)
    assert changed.state is RobotState.ERROR and changed.faults == ["COLLISION"]
    b.clock.advance(1.9)
    assert b.core.tick() == []  # the change restarted the heartbeat
    b.clock.advance(0.1)
    assert len(of_type(b.core.tick(), Status)) == 1


def test_the_current_command_is_in_the_status() -> None:
    b = Bridge()
    b.core.tick()
    ((_, status),) = of_type(b.cmd("dock", "c1", 1), Status)
    assert status.current_command_id == "c1"
    ((_, status),) = of_type(b.core.execution_ended("c1", F), Status)
    assert status.current_command_id is None


def test_telemetry_keeps_its_own_rate() -> None:
    b = Bridge(heartbeat_s=60.0, telemetry_hz=10.0)
    samples = []
    for _ in range(100):  # one second in 10 ms ticks
        samples += of_type(b.core.tick(), Telemetry)
        b.clock.advance(0.01)
    assert len(samples) == 10
    assert samples[0][1].battery_pct == 80.0 and samples[0][1].state is RobotState.CHARGING


def test_progress_goes_out_at_most_once_a_second() -> None:
    b = Bridge()
    started = b.cmd("goto", "c1", 1, x=5.0, y=0.0)
    assert [p.progress for _, p in of_type(started, CmdAck)] == [None, 0.0]  # WAITING, RUNNING at 0
    assert b.core.progress("c1", 0.05) == []
    b.clock.advance(1.0)
    first = b.core.progress("c1", 0.1)
    assert [(env.correlation_id, p.status, p.progress) for env, p in of_type(first, CmdAck)] == [("c1", R, 0.1)]
    b.clock.advance(0.5)
    assert b.core.progress("c1", 0.2) == []
    b.clock.advance(0.5)
    assert [p.progress for _, p in of_type(b.core.progress("c1", 1.5), CmdAck)] == [1.0]
    assert b.core.progress("unknown", 0.5) == []


def test_a_clean_stop_aborts_what_runs_and_says_goodbye_last() -> None:
    b = Bridge()
    b.cmd("goto", "run", 1, x=5.0, y=0.0)
    b.cmd("goto", "waiting", 1, x=6.0, y=0.0)
    b.desired(Settings(camera_on=False), "s1", 1)
    actions = b.core.stop()
    assert Abort("run", "robot bridge stopping") in actions
    assert acks(actions) == [("run", AckStatus.FAILED, "robot bridge stopping"),
                             ("waiting", AckStatus.CANCELLED, "robot bridge stopping"),
                             ("s1", AckStatus.FAILED, "robot bridge stopping")]
    env, last = sent(actions)[-1]
    assert isinstance(last, Status) and last.goodbye and last.current_command_id is None
    assert b.core.receive(subject("cmd", ROBOT), _raw_envelope(correlationId="late")) == []
    assert b.core.tick() == [] and b.core.stop() == []


def test_a_reconnect_sends_the_status_and_settings_at_once() -> None:
    b = Bridge()
    b.core.tick()
    b.clock.advance(0.1)
    kinds = [type(p) for _, p in sent(b.core.on_connected())]
    assert kinds == [Status, SettingsReported]


def test_an_adapter_status_is_clamped_to_the_wire_range() -> None:
    class Overcharged(MockRobot):
        def status(self) -> StatusReading:
            return StatusReading(RobotState.IDLE, 100.04, False)

    clock = FakeClock()
    core = BridgeCore(ROBOT, Overcharged(ROBOT), clock)
    ((_, status),) = of_type(core.tick(), Status)
    assert status.battery_pct == 100.0
