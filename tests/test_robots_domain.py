"""The robots' pure rules (hub.robots.domain), the live stream's telemetry throttle, and robot
alarms in the alarm vocabulary, with a fake clock: status transitions on acks, leases and what a
command needs of them, desired settings and the pending difference, what the API may edit, a
telemetry range."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from hub.alarms.apply import group_key_of
from hub.alarms.classify import ROBOT, classify
from hub.alarms.describe import describe_event
from hub.robots.domain import (BadCommand, BadRange, CommandStatus, ForceForbidden, LeaseHeld, LeaseLost,
                               LeaseRequired, LeaseView, NotEditable, RobotOwned, RobotRuleError, check_command,
                               check_command_lease, check_desired, check_metadata_keys, decide_take, needs_lease,
                               pending, settle_ack, telemetry_range)
from hub.stream.messages import Row
from hub.stream.throttle import TelemetryThrottle
from shared.clock import FakeClock
from shared.robots import AckStatus

S = CommandStatus
TTL = timedelta(seconds=60)


@pytest.mark.parametrize(("current", "by_hub", "ack", "expected"), [
    (S.SENT, False, AckStatus.WAITING, (S.ACKED, False)),
    (S.REQUESTED, False, AckStatus.WAITING, (S.ACKED, False)),  # published, the hub's SENT not yet committed
    (S.ACKED, False, AckStatus.RUNNING, (S.RUNNING, False)),
    (S.RUNNING, False, AckStatus.RUNNING, (S.RUNNING, False)),  # new progress
    (S.RUNNING, False, AckStatus.WAITING, None),                # never back
    (S.ACKED, False, AckStatus.WAITING, None),                  # a repeat says nothing new
    (S.RUNNING, False, AckStatus.FINISHED, (S.FINISHED, False)),
    (S.SENT, False, AckStatus.FAILED, (S.FAILED, False)),
    (S.SENT, False, AckStatus.REJECTED_STALE_TOKEN, (S.FAILED, False)),
    (S.SENT, False, AckStatus.REJECTED_EXPIRED, (S.FAILED, False)),
    (S.RUNNING, False, AckStatus.CANCELLED, (S.CANCELLED, False)),
    (S.SENT, False, AckStatus.TIMEOUT, (S.TIMEOUT, False)),     # the edge's TIMEOUT: the robot never answered
    (S.FINISHED, False, AckStatus.FAILED, None),                # final is final
    (S.TIMEOUT, False, AckStatus.FINISHED, None),               # the edge's own TIMEOUT too
    (S.CANCELLED, False, AckStatus.RUNNING, None),
    (S.TIMEOUT, True, AckStatus.FINISHED, (S.FINISHED, True)),  # the hub's TIMEOUT is replaced, late
    (S.TIMEOUT, True, AckStatus.RUNNING, (S.RUNNING, True)),
])
def test_how_an_ack_moves_a_command(current: S, by_hub: bool, ack: AckStatus, expected: tuple[S, bool] | None) -> None:
    settled = settle_ack(current, by_hub, ack)
    assert (None if settled is None else (settled.status, settled.late)) == expected


def test_final_statuses() -> None:
    assert {s for s in S if s.final} == {S.FINISHED, S.FAILED, S.TIMEOUT, S.CANCELLED}


def _lease(holder: int, expires_at: datetime, lease_id: str = "L1", token: int = 1) -> LeaseView:
    return LeaseView(lease_id, holder, f"user {holder}", token, expires_at)


def test_a_lease_is_taken_renewed_refused_and_forced_by_the_clock() -> None:
    clock = FakeClock()
    now = clock.now()
    assert decide_take(None, 1, now, TTL).action == "new"
    held = _lease(1, now + TTL)
    renew = decide_take(held, 1, now + timedelta(seconds=30), TTL)
    assert (renew.action, renew.ends, renew.expires_at) == ("renew", None, now + timedelta(seconds=90))
    with pytest.raises(LeaseHeld) as refused:
        decide_take(held, 2, now, TTL)
    assert refused.value.details == {"holder": {"id": 1, "name": "user 1"}, "expiresAt": (now + TTL).isoformat()}
    clock.advance(60)  # at its expiry it is over, whether or not anything marked it
    taken = decide_take(held, 2, clock.now(), TTL)
    assert (taken.action, taken.ends) == ("new", "EXPIRED")
    with pytest.raises(ForceForbidden):
        decide_take(held, 2, now, TTL, force=True, may_force=False, reason="mine")
    with pytest.raises(RobotRuleError, match="reason"):
        decide_take(held, 2, now, TTL, force=True, may_force=True, reason="  ")
    forced = decide_take(held, 2, now, TTL, force=True, may_force=True, reason="fire exit blocked")
    assert (forced.action, forced.ends) == ("new", "FORCED")
    assert decide_take(held, 1, now, TTL, force=True, may_force=True, reason="x").action == "renew"


def test_a_command_needs_the_callers_current_lease() -> None:
    clock = FakeClock()
    lease = _lease(1, clock.now() + TTL)
    assert check_command_lease(lease, "L1", 1, clock.now()) is lease
    with pytest.raises(LeaseRequired):
        check_command_lease(lease, None, 1, clock.now())
    with pytest.raises(LeaseLost) as lost:
        check_command_lease(lease, "L1", 2, clock.now())
    assert "user 1 holds it" in str(lost.value) and lost.value.details["holder"]["id"] == 1
    with pytest.raises(LeaseLost):
        check_command_lease(_lease(1, clock.now() + TTL, "L2", 2), "L1", 1, clock.now())  # a newer lease
    clock.advance(61)
    with pytest.raises(LeaseLost) as expired:
        check_command_lease(lease, "L1", 1, clock.now())
    assert expired.value.details == {"holder": None, "expiresAt": None}
    assert not needs_lease("estop") and not needs_lease("cancel") and needs_lease("goto")


def test_commands_are_checked_against_the_wire_contract() -> None:
    assert check_command("goto", {"x": 1, "y": 2}) == {"x": 1.0, "y": 2.0, "theta": None}
    assert check_command("cancel", {"commandId": "c-1"}) == {"commandId": "c-1"}
    for command_type, payload in (("fly", {}), ("report_identity", {}), ("goto", {"x": 1}),
                                  ("patrol", {"loops": -1}), ("estop", {"now": True})):
        with pytest.raises(BadCommand):
            check_command(command_type, payload)


def test_desired_settings_and_the_pending_difference() -> None:
    assert check_desired({"maxSpeedMps": 1.5, "cameraOn": None}) == {"maxSpeedMps": 1.5}
    for bad in ({"maxSpeedMps": 0}, {"speed": 1}, {}, {"cameraOn": None}, {"patrolRoute": [{"x": 1}]}):
        with pytest.raises(RobotRuleError):
            check_desired(bad)
    desired = {"maxSpeedMps": 1.5, "patrolRoute": [{"x": 1.0, "y": 2.0}]}
    assert pending(desired, None) == {"maxSpeedMps": {"desired": 1.5, "reported": None},
                                      "patrolRoute": {"desired": [{"x": 1.0, "y": 2.0}], "reported": None}}
    assert pending(desired, {**desired, "cameraOn": True}) == {}
    assert pending(desired, {**desired, "maxSpeedMps": 1.4}) == {"maxSpeedMps": {"desired": 1.5, "reported": 1.4}}
    assert pending(None, {"maxSpeedMps": 1.0}) == {}


def test_the_api_edits_metadata_only() -> None:
    check_metadata_keys({"displayName", "tags", "notes", "enabled"})
    with pytest.raises(RobotOwned):
        check_metadata_keys({"displayName", "identity"})
    with pytest.raises(NotEditable):
        check_metadata_keys({"edgeId"})


def test_a_telemetry_range() -> None:
    now = datetime(2026, 5, 1, 12, tzinfo=timezone.utc)
    assert telemetry_range("2026-05-01T11:00:00Z", None, now, timedelta(days=31)) == (now - timedelta(hours=1), now)
    for since, until in ((None, None), ("noon", None), ("2026-05-01T11:00:00", None),
                         ("2026-05-01T11:00:00Z", "2026-05-01T10:00:00Z"), ("2026-01-01T00:00:00Z", None)):
        with pytest.raises(BadRange):
            telemetry_range(since, until, now, timedelta(days=31))


def _row(seq: int, robot: str | None) -> Row:
    return Row(seq, datetime(2026, 1, 1, tzinfo=timezone.utc), "robot.telemetry" if robot else "panel.state", None,
               b"", b"", robot)


def test_the_throttle_passes_one_sample_per_robot_per_interval_and_the_latest_wins() -> None:
    throttle = TelemetryThrottle(1.0)
    assert [r.seq for r in throttle.admit([_row(1, "A"), _row(2, "A"), _row(3, None), _row(4, "B"), _row(5, "A")],
                                          10.0)] == [1, 3, 4]
    assert throttle.next_due() == 11.0 and throttle.due(10.9) == []
    assert [r.seq for r in throttle.due(11.0)] == [5]
    assert throttle.next_due() is None
    assert throttle.admit([_row(6, "A")], 11.5) == []  # 5 went at 11.0: the next may go at 12.0
    assert [r.seq for r in throttle.admit([_row(7, "A")], 12.0)] == [7]  # its own time came: 6 is dropped
    assert throttle.next_due() is None and throttle.due(20.0) == []


def test_robot_alarms_in_the_alarm_vocabulary() -> None:
    assert classify("robot.alarm.estop", {}).opens == ROBOT
    assert classify("robot.restore.estop", {}).restores == ROBOT
    assert not classify("robot.status", {}).matters
    assert group_key_of(ROBOT, 7, "site-1", "RB-001") == "robot:site-1/RB-001"
    assert group_key_of("BURGLARY", 7, "site-1", "panel-1") == "object:7"
    assert describe_event("robot.alarm.estop", {"robot": "RB-001"}) == "Robot RB-001: emergency stop"
    assert describe_event("robot.restore.battery_critical", {"robot": "RB-001"}) == \
        "Robot RB-001: battery critical ended"
    assert describe_event("robot.connection", {"robot": "RB-001", "state": "OFFLINE", "reason": "goodbye"}) == \
        "Robot RB-001: offline (goodbye)"
