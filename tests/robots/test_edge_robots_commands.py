"""Robot commands from the hub through the box (docs/architecture.md §4.4): the hub publishes a
`RobotCommand` on the edge's command subject (header `Vigil-Command-Kind: robot`), the box pulls
it across the leaf, claims it in its journal and hands it to the robot with its fencing token
until the robot answers; every ack the robot sends is journaled in its order. Real servers for
the hub and the box, the robot a scripted client."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import AsyncIterator

import msgspec
import pytest

from edge.links.robots.metrics import COMMANDS
from edge.links.robots.state import ack_key, event_id
from shared import robots as wire
from shared import subjects
from shared.bodies.robots import RobotCommandAck
from support.waiting import wait_until
from robots.edge_box import EDGE, R1, R2, Box


@pytest.fixture
async def box(tmp_path: Path) -> AsyncIterator[Box]:
    box = await Box(tmp_path, hub=True).start()
    try:
        yield box
    finally:
        await box.close()


def command(robot: str = R1, command_type: str = "goto", *, expires_in_s: float = 60.0, token: int | None = 7,
            edge: str = EDGE, **args: object) -> wire.RobotCommand:
    now = datetime.now(timezone.utc)
    return wire.RobotCommand(id=str(uuid.uuid4()), edge=edge, robot=robot, kind="cmd", who="user:ola", issued_at=now,
                             expires_at=now + timedelta(seconds=expires_in_s), command_type=command_type,
                             args=dict(args), fencing_token=token)


async def acks(box: Box, command_id: str) -> list[RobotCommandAck]:
    found = [b for b in await box.bodies(wire.ACK_KIND) if isinstance(b, RobotCommandAck)]
    return [b for b in found if b.command_id == command_id]


async def test_commands_reach_the_robot_with_their_token_estop_first_and_every_ack_is_journaled(box: Box) -> None:
    robot = await box.robot(R1)
    goto = command(command_type="goto", x=1.0, y=2.0)
    estop = command(command_type="estop", token=None)
    settings = wire.RobotCommand(id=str(uuid.uuid4()), edge=EDGE, robot=R1, kind="settings.desired", who="user:ola",
                                 issued_at=goto.issued_at, expires_at=goto.expires_at,
                                 settings=wire.Settings(max_speed_mps=1.2), fencing_token=8)
    await box.give(goto)
    await box.give(estop)
    await box.give(settings)
    await box.run_agent(commands=True)  # one fetch takes all three: estop goes first
    await wait_until(lambda: len({e.correlation_id for _, e, _ in robot.received}) >= 3, timeout=20,
                     what="the three commands at the robot")
    first = robot.received[0]
    assert first[0] == wire.subject("cmd", R1) and first[2] == wire.Cmd(command_type="estop")
    # Each send of a command (until the robot answers) is the same message.
    gotos = [(e.message_id, e.correlation_id, p) for _, e, p in robot.received if e.correlation_id == goto.id]
    assert gotos[0] == (goto.id, goto.id, wire.Cmd(command_type="goto", args={"x": 1.0, "y": 2.0}, fencing_token=7))
    assert all(g == gotos[0] for g in gotos)
    desired = [(s, p) for s, e, p in robot.received if e.correlation_id == settings.id]
    assert desired[0] == (wire.subject("settings.desired", R1),
                          wire.SettingsDesired(settings=wire.Settings(max_speed_mps=1.2), fencing_token=8))
    assert not await box.commands_settled(), "not acknowledged to the hub before the robot answers"
    ack_ids = [await robot.ack(goto.id, status, detail=status.lower()) for status in ("WAITING", "RUNNING", "FINISHED")]
    await robot.ack(estop.id, "FINISHED")
    await robot.ack(settings.id, "REJECTED_STALE_TOKEN", detail="token 8 < 9")
    await box.wait_for(wire.ACK_KIND, 5)
    journaled = await acks(box, goto.id)
    assert [(a.status.value, a.by, a.command_type, a.fencing_token, a.detail) for a in journaled] == [
        ("WAITING", "robot", "goto", 7, "waiting"), ("RUNNING", "robot", "goto", 7, "running"),
        ("FINISHED", "robot", "goto", 7, "finished")]
    [stale] = await acks(box, settings.id)
    assert (stale.status, stale.command_type, stale.fencing_token) == (wire.AckStatus.REJECTED_STALE_TOKEN,
                                                                       "settings.desired", 8)
    # Envelope ids from (command, status, robot message): read again, an ack is the same event.
    envelopes = [e for e in await box.events(wire.ACK_KIND) if e.corr == goto.id]
    assert [e.source for e in envelopes] == [R1] * 3
    assert envelopes[0].id == event_id(ack_key(goto.id, wire.AckStatus.WAITING, ack_ids[0]))
    await wait_until(box.commands_settled, timeout=10, what="every command acknowledged to the hub once handed over")
    assert box.relay is not None and box.relay.status()["waiting"] == []


async def test_a_silent_robot_times_out_and_late_foreign_or_repeated_commands_are_settled_by_the_edge(box: Box) -> None:
    silent = await box.robot(R2, answer_questions=False)
    robot = await box.robot(R1)
    await box.run_agent(commands=True)
    timeout_before = COMMANDS.labels("timeout")._value.get()
    # A robot that never answers: sent again every command_retry_s, then TIMEOUT at its expiry.
    unanswered = command(R2, "dock", expires_in_s=1.0)
    await box.give(unanswered)
    [timeout] = [a for a in await box.wait_for(wire.ACK_KIND, timeout=15) if a.corr == unanswered.id]
    body = (await acks(box, unanswered.id))[0]
    assert (body.status, body.by, body.command_type, body.fencing_token) == (wire.AckStatus.TIMEOUT, "edge", "dock", 7)
    assert body.detail.startswith("the robot did not answer")
    sends = silent.received_for(unanswered.id)
    assert len(sends) >= 2 and {e.message_id for e in sends} == {unanswered.id}, "sent again, as the same message"
    assert timeout.id == event_id(ack_key(unanswered.id, wire.AckStatus.TIMEOUT, "edge"))
    assert COMMANDS.labels("timeout")._value.get() == timeout_before + 1
    # Expired on its way (by the hub's clock), for a robot this box does not have, for another
    # edge, desired settings without any: settled at the box, never relayed.
    expired = command(R1, expires_in_s=-10)
    unknown = command("RB-077")
    elsewhere = command(R1, edge="site-x")
    empty = msgspec.structs.replace(command(R1), kind="settings.desired", command_type="")
    for c in (expired, unknown, elsewhere, empty):
        await box.give(c)
    await box.wait_for(wire.ACK_KIND, 5)
    assert [(a.status, a.by) for a in await acks(box, expired.id)] == [(wire.AckStatus.REJECTED_EXPIRED, "edge")]
    assert [(a.status, a.command_type) for a in await acks(box, empty.id)] == [
        (wire.AckStatus.REJECTED_INVALID, "settings.desired")]
    assert [(a.status, a.robot) for a in await acks(box, unknown.id)] == [(wire.AckStatus.REJECTED_UNKNOWN_ROBOT, "RB-077")]
    assert [a.status for a in await acks(box, elsewhere.id)] == [wire.AckStatus.REJECTED_UNKNOWN_ROBOT]
    assert robot.received_for(expired.id) == robot.received_for(elsewhere.id) == robot.received_for(empty.id) == []
    await wait_until(box.commands_settled, timeout=10, what="the settled commands acknowledged to the hub")
    # Delivered again (an ack lost on the WAN): acknowledged, never relayed a second time.
    patrol = command(R1, "patrol", loops=2)
    await box.give(patrol)
    await wait_until(lambda: robot.received_for(patrol.id), timeout=10, what="the patrol at the robot")
    await robot.ack(patrol.id, "RUNNING")
    await wait_until(box.commands_settled, timeout=10, what="the patrol handed over")
    sent = len(robot.received_for(patrol.id))
    redelivered = COMMANDS.labels("redelivered")._value.get()
    await box.give(patrol)
    await wait_until(box.commands_settled, timeout=10, what="the copy acknowledged")
    assert COMMANDS.labels("redelivered")._value.get() == redelivered + 1
    assert len(robot.received_for(patrol.id)) == sent, "not relayed again"
    assert [a.status for a in await acks(box, patrol.id)] == [wire.AckStatus.RUNNING]
    # Marked a robot command but not one: dropped for good (it can never become readable).
    assert box.hub is not None
    await box.hub.jetstream().publish(subjects.edge_commands(EDGE), b'{"id": "x"}',
                                      headers={wire.H_COMMAND_KIND: wire.ROBOT_COMMAND_KIND})
    await wait_until(box.commands_settled, timeout=10, what="the unreadable command dropped")
    assert len(await box.events(wire.ACK_KIND)) == 6


async def test_a_command_still_waiting_when_the_agent_stops_is_settled(box: Box) -> None:
    await box.robot(R2, answer_questions=False)
    await box.run_agent(commands=True)
    waiting = command(R2, "pause", expires_in_s=60)
    await box.give(waiting)
    await wait_until(lambda: box.relay is not None and box.relay.status()["waiting"], timeout=15,
                     what="the command waiting for its robot")
    await box.stop_agent()
    [body] = await acks(box, waiting.id)
    assert (body.status, body.by, body.detail) == (wire.AckStatus.TIMEOUT, "edge",
                                                   "the edge stopped before the robot answered")
    assert await box.commands_settled()
