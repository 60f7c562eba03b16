"""The pure state holder: typed answers in, typed events out, with a fake clock and no bytes."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import msgspec
import pytest

from edge.links.satel.state import (
    DEFAULT_PRIORITIES,
    QUERY_COMMANDS,
    Observation,
    PanelState,
    answer_command,
    complete_groups,
    query_for,
    supports_push,
)
from firmware_bridges.satel.protocol import (
    Answer,
    Cmd,
    DeviceNameAnswer,
    DeviceType,
    IntegraVersionAnswer,
    ModuleVersionAnswer,
    OutputsAnswer,
    PartitionsAnswer,
    PartitionState,
    ReadPartitions,
    ReadTroubles,
    ReadZones,
    StatusAnswer,
    TroublesAnswer,
    ZonesAnswer,
    ZoneState,
)
from shared.bodies import BODY_TYPES, ClockDrift, LogRecord, PanelSnapshot, PartitionArmed, PartitionEvent, TroubleEvent, ZoneEvent
from shared.clock import FakeClock
from shared.envelope import Priority

TROUBLE_SIZES = (47, 26, 60, 30, 31)


def zones(state: ZoneState, *numbers: int) -> ZonesAnswer:
    return ZonesAnswer(state, frozenset(numbers), wide=True)


def partitions(state: PartitionState, *numbers: int) -> PartitionsAnswer:
    return PartitionsAnswer(state, frozenset(numbers))


def troubles(part: int, *bits: int) -> TroublesAnswer:
    data = bytearray(TROUBLE_SIZES[part - 1])
    for bit in bits:
        data[(bit - 1) // 8] |= 1 << ((bit - 1) % 8)
    return TroublesAnswer(part, False, bytes(data))


def quiet_panel(clock: FakeClock) -> list[Answer]:
    """Every tracked query answered for a panel where nothing is going on."""
    answers: list[Answer] = [zones(state) for state in (ZoneState.VIOLATION, ZoneState.TAMPER, ZoneState.ALARM,
                                                        ZoneState.TAMPER_ALARM, ZoneState.BYPASS)]
    answers += [partitions(PartitionState(cmd)) for cmd in QUERY_COMMANDS if cmd in PartitionState._value2member_map_]
    answers += [OutputsAnswer(frozenset(), wide=True), *(troubles(part) for part in range(1, 6))]
    answers.append(StatusAnswer(clock.now().replace(tzinfo=None)))
    return answers


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()  # UTC, like the emulated panel's clock


@pytest.fixture
def state(clock: FakeClock) -> PanelState:
    """A holder that has seen one full, quiet snapshot."""
    holder = PanelState(clock)
    assert holder.apply(quiet_panel(clock)) == []
    return holder


def kinds(events: list[Observation]) -> list[str]:
    return [event.kind for event in events]


def test_the_first_snapshot_is_state_not_events(clock: FakeClock) -> None:
    holder = PanelState(clock)
    busy = [
        zones(ZoneState.VIOLATION, 1, 2), zones(ZoneState.ALARM, 2), zones(ZoneState.TAMPER, 7),
        partitions(PartitionState.ARMED, 1), partitions(PartitionState.ALARM, 1),
        OutputsAnswer(frozenset({1})), troubles(1, 8),
    ]
    assert holder.apply(busy) == []
    snapshot = holder.snapshot(push=False)
    assert (snapshot.violated, snapshot.alarm, snapshot.tamper) == ([1, 2], [2], [7])
    assert snapshot.partition_alarm == [1] and snapshot.outputs_on == [1]
    assert snapshot.troubles[0].trouble == "ac"
    # Arming needs all four arming bitmaps; until then the snapshot shows nothing armed.
    assert snapshot.armed == {}


def test_identical_answers_make_no_events(state: PanelState, clock: FakeClock) -> None:
    clock.advance(30)
    assert state.apply(quiet_panel(clock)) == []
    assert state.apply([zones(ZoneState.VIOLATION)]) == []


def test_zone_events_and_their_default_priorities(state: PanelState) -> None:
    events = state.apply([zones(ZoneState.VIOLATION, 3), zones(ZoneState.ALARM, 3)])
    assert [(e.kind, e.priority, e.body) for e in events] == [
        ("satel.zone.violation", Priority.LOW, ZoneEvent(3)),
        ("satel.zone.alarm", Priority.CRITICAL, ZoneEvent(3)),
    ]
    assert events[0].device == (DeviceType.ZONE, 3)
    assert kinds(state.apply([zones(ZoneState.VIOLATION)])) == ["satel.zone.restore"]
    assert kinds(state.apply([zones(ZoneState.ALARM)])) == ["satel.zone.alarm_cleared"]
    tamper = state.apply([zones(ZoneState.TAMPER, 5), zones(ZoneState.TAMPER_ALARM, 5)])
    assert [(e.kind, e.priority) for e in tamper] == [
        ("satel.zone.tamper", Priority.HIGH), ("satel.zone.tamper_alarm", Priority.HIGH)]
    assert kinds(state.apply([zones(ZoneState.TAMPER), zones(ZoneState.TAMPER_ALARM)])) == [
        "satel.zone.tamper_restore", "satel.zone.tamper_alarm_cleared"]
    assert kinds(state.apply([zones(ZoneState.BYPASS, 4, 200)])) == ["satel.zone.bypass"] * 2
    assert kinds(state.apply([zones(ZoneState.BYPASS, 200)])) == ["satel.zone.unbypass"]


def test_per_zone_priority_override(clock: FakeClock) -> None:
    holder = PanelState(clock, zone_priorities={8: {"violation": Priority.HIGH, "alarm": Priority.NORMAL}})
    holder.apply(quiet_panel(clock))
    events = holder.apply([zones(ZoneState.VIOLATION, 7, 8), zones(ZoneState.ALARM, 7, 8)])
    assert [(e.kind, e.body.zone, e.priority) for e in events] == [  # type: ignore[attr-defined]
        ("satel.zone.violation", 7, Priority.LOW),
        ("satel.zone.violation", 8, Priority.HIGH),
        ("satel.zone.alarm", 7, Priority.CRITICAL),
        ("satel.zone.alarm", 8, Priority.NORMAL),
    ]
    # Events the override does not name keep their default.
    assert holder.apply([zones(ZoneState.VIOLATION, 7)])[0].priority is Priority.LOW


def test_arming_in_each_mode_and_disarming(state: PanelState) -> None:
    events = state.apply([partitions(PartitionState.ARMED, 1, 2), partitions(PartitionState.ARMED_MODE_2, 2)])
    assert [(e.kind, e.body) for e in events] == [
        ("satel.partition.armed", PartitionArmed(1, 0)), ("satel.partition.armed", PartitionArmed(2, 2))]
    assert all(e.priority is Priority.LOW for e in events)
    # A mode change while armed is a new `armed` event with the new mode.
    events = state.apply([partitions(PartitionState.ARMED_MODE_2), partitions(PartitionState.ARMED_MODE_3, 2)])
    assert [(e.kind, e.body) for e in events] == [("satel.partition.armed", PartitionArmed(2, 3))]
    events = state.apply([partitions(PartitionState.ARMED_MODE_1, 1)])
    assert [(e.kind, e.body) for e in events] == [("satel.partition.armed", PartitionArmed(1, 1))]
    events = state.apply([partitions(PartitionState.ARMED), partitions(PartitionState.ARMED_MODE_1),
                          partitions(PartitionState.ARMED_MODE_3)])
    assert kinds(events) == ["satel.partition.disarmed"] * 2
    assert state.snapshot(push=False).armed == {}


def test_partition_alarms_entry_and_exit(state: PanelState) -> None:
    events = state.apply([partitions(PartitionState.ALARM, 1), partitions(PartitionState.FIRE_ALARM, 2)])
    assert [(e.kind, e.priority) for e in events] == [
        ("satel.partition.alarm", Priority.CRITICAL), ("satel.partition.fire_alarm", Priority.CRITICAL)]
    assert kinds(state.apply([partitions(PartitionState.ALARM), partitions(PartitionState.FIRE_ALARM)])) == [
        "satel.partition.alarm_cleared", "satel.partition.fire_alarm_cleared"]
    assert kinds(state.apply([partitions(PartitionState.ENTRY_TIME, 1)])) == ["satel.partition.entry"]
    assert kinds(state.apply([partitions(PartitionState.ENTRY_TIME)])) == ["satel.partition.entry_end"]
    assert kinds(state.apply([partitions(PartitionState.EXIT_TIME_LONG, 2)])) == ["satel.partition.exit"]
    # Long exit time turning into short exit time is still exit time: nothing to report.
    assert state.apply([partitions(PartitionState.EXIT_TIME_LONG), partitions(PartitionState.EXIT_TIME_SHORT, 2)]) == []
    assert kinds(state.apply([partitions(PartitionState.EXIT_TIME_SHORT)])) == ["satel.partition.exit_end"]


def test_outputs_and_troubles(state: PanelState) -> None:
    assert kinds(state.apply([OutputsAnswer(frozenset({1, 2}))])) == ["satel.output.on"] * 2
    assert kinds(state.apply([OutputsAnswer(frozenset({2}))])) == ["satel.output.off"]
    events = state.apply([troubles(1, 8), troubles(3, 17)])
    assert [(e.kind, e.priority, e.body) for e in events] == [
        ("satel.trouble.on", Priority.NORMAL, TroubleEvent(1, 8, "ac")),
        ("satel.trouble.on", Priority.NORMAL, TroubleEvent(3, 17, "")),
    ]
    assert [e.body for e in state.apply([troubles(1)])] == [TroubleEvent(1, 8, "ac")]
    assert kinds(state.apply([troubles(3)])) == ["satel.trouble.off"]
    # Troubles memory is history, not state: it makes no events.
    assert state.apply([TroublesAnswer(1, True, bytes([0xFF]) * 47)]) == []


def test_events_of_one_moment_come_in_a_readable_order(state: PanelState) -> None:
    events = state.apply([
        zones(ZoneState.VIOLATION, 2), zones(ZoneState.ALARM, 2),
        partitions(PartitionState.ARMED, 1), partitions(PartitionState.ALARM, 1),
    ])
    assert kinds(events) == ["satel.partition.armed", "satel.zone.violation", "satel.zone.alarm", "satel.partition.alarm"]


def test_clock_drift_is_reported_once_each_way(state: PanelState, clock: FakeClock) -> None:
    panel_now = clock.now().replace(tzinfo=None)
    assert state.apply([StatusAnswer(panel_now + timedelta(seconds=100))]) == []
    events = state.apply([StatusAnswer(panel_now + timedelta(seconds=300))])
    assert [(e.kind, e.priority) for e in events] == [("satel.clock.drift", Priority.NORMAL)]
    body = events[0].body
    assert isinstance(body, ClockDrift) and body.drift_s == 300.0 and body.edge_clock == clock.now()
    clock.advance(60)
    assert state.apply([StatusAnswer(panel_now + timedelta(seconds=400))]) == []  # still off: no repeat
    events = state.apply([StatusAnswer(clock.now().replace(tzinfo=None))])
    assert kinds(events) == ["satel.clock.synced"]
    # A clock without a valid date is off, too.
    events = state.apply([StatusAnswer(None)])
    assert kinds(events) == ["satel.clock.drift"] and events[0].body.drift_s is None  # type: ignore[attr-defined]


def test_the_panel_clock_runs_in_the_configured_time_zone() -> None:
    clock = FakeClock(datetime(2026, 7, 1, 10, 0, tzinfo=timezone.utc))
    warsaw_wall_clock = StatusAnswer(datetime(2026, 7, 1, 12, 0))  # UTC+2 in July
    assert PanelState(clock, timezone="Europe/Warsaw").apply([warsaw_wall_clock]) == []
    assert kinds(PanelState(clock).apply([warsaw_wall_clock])) == ["satel.clock.drift"]


def test_names_travel_in_bodies_and_the_snapshot(state: PanelState) -> None:
    state.apply([DeviceNameAnswer(DeviceType.ZONE, 3, 1, "Biuro"), DeviceNameAnswer(DeviceType.PARTITION, 1, 1, "Parter")])
    events = state.apply([zones(ZoneState.VIOLATION, 3), partitions(PartitionState.ALARM, 1)])
    assert [e.body for e in events] == [ZoneEvent(3, "Biuro"), PartitionEvent(1, "Parter")]
    state.set_name(DeviceType.OUTPUT, 9, "")
    assert state.name(DeviceType.OUTPUT, 9) == "" and state.name(DeviceType.OUTPUT, 8) is None
    snapshot = state.snapshot(push=True)
    assert snapshot.zone_names == {3: "Biuro"} and snapshot.partition_names == {1: "Parter"} and snapshot.push
    assert state.active_devices() == {(DeviceType.ZONE, 3), (DeviceType.PARTITION, 1)}
    state.forget_names()
    assert state.name(DeviceType.ZONE, 3) is None


def test_versions_decide_width_and_push(clock: FakeClock) -> None:
    holder = PanelState(clock)
    assert not holder.wide
    holder.apply([ModuleVersionAnswer("20620190301", 1), IntegraVersionAnswer(72, "12120180502")])
    assert holder.wide
    holder.apply([IntegraVersionAnswer(3, "12120180502")])  # an INTEGRA 128 has no zones above 128
    assert not holder.wide
    assert supports_push("20620190301") and not supports_push("20020170101") and not supports_push("11820120527")
    assert not supports_push(None) and not supports_push("x")


def test_query_helpers() -> None:
    assert complete_groups({PartitionState.ARMED}) == {s.value for s in (
        PartitionState.ARMED, PartitionState.ARMED_MODE_1, PartitionState.ARMED_MODE_2, PartitionState.ARMED_MODE_3)}
    assert complete_groups({PartitionState.EXIT_TIME_SHORT}) == {PartitionState.EXIT_TIME_LONG, PartitionState.EXIT_TIME_SHORT}
    assert complete_groups({ZoneState.VIOLATION}) == {ZoneState.VIOLATION}
    assert query_for(ZoneState.TAMPER, True) == ReadZones(ZoneState.TAMPER, True)
    assert query_for(PartitionState.ALARM, True) == ReadPartitions(PartitionState.ALARM)
    assert query_for(Cmd.TROUBLES_1 + 2, False) == ReadTroubles(3)
    with pytest.raises(ValueError, match="not a query"):
        query_for(ZoneState.ALARM_MEMORY, False)
    for cmd in QUERY_COMMANDS:
        assert answer_command(_answer_for(cmd)) == cmd


def _answer_for(cmd: int) -> Answer:
    if cmd in ZoneState._value2member_map_:
        return zones(ZoneState(cmd))
    if cmd in PartitionState._value2member_map_:
        return partitions(PartitionState(cmd))
    if cmd == Cmd.OUTPUTS_STATE:
        return OutputsAnswer(frozenset())
    if cmd == Cmd.STATUS:
        return StatusAnswer(None)
    return troubles(cmd - Cmd.TROUBLES_1 + 1)


def test_every_kind_has_a_registered_body_and_a_default_priority() -> None:
    for kind in DEFAULT_PRIORITIES:
        assert kind in BODY_TYPES, kind
    # A snapshot is always LOW, a command given always NORMAL; a log record's priority follows its
    # category (event_log.py).
    own_priority = {"satel.snapshot", "satel.log.record", "satel.command"}
    satel_kinds = {kind for kind in BODY_TYPES if kind.startswith("satel.") and kind not in own_priority}
    assert satel_kinds == set(DEFAULT_PRIORITIES)
    assert BODY_TYPES["satel.snapshot"] is PanelSnapshot
    assert BODY_TYPES["satel.log.record"] is LogRecord
    # Bodies round-trip through JSON as the hub will read them, and refuse unknown fields.
    body = msgspec.json.encode(ZoneEvent(3, "Biuro"))
    assert msgspec.json.decode(body, type=BODY_TYPES["satel.zone.alarm"]) == ZoneEvent(3, "Biuro")
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(b'{"zone": 3, "colour": "red"}', type=ZoneEvent)
