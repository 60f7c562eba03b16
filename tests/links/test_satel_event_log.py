"""The pure event-log holder: walks over the emulated panel's log (no sockets), the records it
makes of them, and the occurrence keys that tie a live alarm and its log record together."""
from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import msgspec
import pytest

from edge.links.satel.event_log import (
    EMPTY_LOG,
    MAX_WALK,
    EventLogState,
    LogCursor,
    LogWalk,
    record_priority,
)
from edge.links.satel.state import Observation
from firmware_bridges.satel.emulator import Panel, sample_panel
from firmware_bridges.satel.protocol import NEWEST_EVENT, EventCategory, MonitoringStatus, UserCode
from shared.bodies.satel import LogRecord, PartitionEvent, ZoneEvent
from shared.clock import FakeClock
from shared.envelope import Priority

CODE = UserCode.from_digits("1234")
START = datetime(2026, 3, 14, 9, 26, 0, tzinfo=timezone.utc)


class PanelClock:
    """The emulated panel's RTC: naive local time that follows the test's clock."""

    def __init__(self, clock: FakeClock, tz: str = "UTC") -> None:
        self.clock = clock
        self.tz = tz

    def __call__(self) -> datetime:
        return self.clock.now().astimezone(ZoneInfo(self.tz)).replace(tzinfo=None)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def panel(clock: FakeClock) -> Panel:
    return sample_panel(clock=PanelClock(clock))


def walk(state: EventLogState, panel: Panel) -> LogWalk:
    """What the link does over 0x8C: from the newest, follow each answer's event index."""
    log_walk = state.walk()
    answer = panel.events.read(NEWEST_EVENT)
    while log_walk.take(answer):
        answer = panel.events.read(answer.previous_index)
    return log_walk


def read(state: EventLogState, panel: Panel, *, at_connect: bool = False) -> list[Observation]:
    """Walk, turn the new records into observations and move the cursor, as the link does."""
    log_walk = walk(state, panel)
    observations = state.records(log_walk, at_connect=at_connect)
    state.advance(log_walk)
    return observations


def bodies(observations: list[Observation]) -> list[LogRecord]:
    return [o.body for o in observations if isinstance(o.body, LogRecord)]


def alarm(zone: int) -> Observation:
    return Observation("satel.zone.alarm", Priority.CRITICAL, ZoneEvent(zone))


# --- walking the log ---------------------------------------------------------------------------


def test_a_first_start_reads_back_the_window_and_old_records_are_history(clock: FakeClock, panel: Panel) -> None:
    state = EventLogState("p1", clock, window=50, alarm_age_s=3600)
    for _ in range(30):
        panel.tamper_zone(1)
        panel.restore_tamper(1)
    clock.advance(2 * 3600)
    panel.arm(CODE, {1}, 0)
    panel.violate_zone(3)

    log_walk = walk(state, panel)
    assert len(log_walk.collected) == 50 and log_walk.read_back and log_walk.warning() is None
    observations = state.records(log_walk, at_connect=True)
    records = bodies(observations)
    assert len(records) == 50
    # Oldest first; only the two records of the last hour are news.
    assert [(r.code, r.history_only) for r in records[-3:]] == [(144, True), (401, False), (130, False)]
    assert all(r.history_only for r in records[:-2])
    assert {o.priority for o in observations[:-2]} == {Priority.LOW}
    assert observations[-1].priority is Priority.HIGH and observations[-2].priority is Priority.LOW


def test_with_a_cursor_only_new_records_are_read(clock: FakeClock, panel: Panel) -> None:
    state = EventLogState("p1", clock)
    panel.arm(CODE, {1}, 0)
    assert [r.code for r in bodies(read(state, panel))] == [401]
    assert bodies(read(state, panel)) == []
    panel.violate_zone(2)
    panel.disarm(CODE, {1})
    records = bodies(read(state, panel))
    assert [(r.code, r.category, r.zone, r.user) for r in records] == [
        (130, "ALARM", 2, None), (401, "DISARM", None, 1),
    ]
    # The cursor survives a restart through its text form.
    restarted = EventLogState("p1", clock)
    restarted.load_cursor(state.cursor.encode() if state.cursor else None)
    assert bodies(read(restarted, panel)) == []


def test_an_empty_log_gives_a_cursor_that_takes_everything_after_it(clock: FakeClock, panel: Panel) -> None:
    state = EventLogState("p1", clock, window=2)
    assert bodies(read(state, panel)) == [] and state.cursor == EMPTY_LOG
    for zone in (1, 2, 3):
        panel.tamper_zone(zone)
    # Not a read back: every record after an empty log is new, window or not.
    records = bodies(read(state, panel))
    assert [r.zone for r in records] == [1, 2, 3] and not any(r.history_only for r in records)


def test_monitoring_status_updated_in_place_keeps_the_cursor(panel: Panel) -> None:
    panel.tamper_zone(1)
    answer = panel.events.read(NEWEST_EVENT)
    cursor = LogCursor.of(answer)
    # The panel marks the record as sent to the monitoring station: the same record still.
    sent = msgspec.structs.replace(answer.record, monitoring_1=MonitoringStatus.SENT)
    assert cursor.matches(msgspec.structs.replace(answer, record=sent))
    other = msgspec.structs.replace(answer.record, source=2)
    assert not cursor.matches(msgspec.structs.replace(answer, record=other))


def test_a_reset_log_is_read_back_with_a_warning(clock: FakeClock, panel: Panel) -> None:
    state = EventLogState("p1", clock, window=5)
    panel.tamper_zone(1)
    read(state, panel)
    panel.clear_event_log()
    panel.tamper_zone(2)
    log_walk = walk(state, panel)
    assert log_walk.lost and "no longer holds" in (log_walk.warning() or "")
    assert [r.code for r in bodies(state.records(log_walk, at_connect=True))] == [621, 144]


def test_a_log_that_wrapped_past_the_cursor_is_read_back(clock: FakeClock) -> None:
    panel = dataclasses.replace(sample_panel(clock=PanelClock(clock)), log_size=4)
    state = EventLogState("p1", clock, window=3)
    panel.tamper_zone(1)
    read(state, panel)
    for zone in (2, 3, 4, 5, 6, 7):  # the cursor's slot is reused by zone 5's record
        panel.tamper_zone(zone)
    log_walk = walk(state, panel)
    assert log_walk.lost
    assert [r.zone for r in bodies(state.records(log_walk, at_connect=True))] == [5, 6, 7]


def test_a_full_ring_without_an_end_stops_where_it_started(clock: FakeClock) -> None:
    state = EventLogState("p1", clock, window=50)
    panel = sample_panel(clock=PanelClock(clock))
    panel.tamper_zone(1)
    answer = panel.events.read(NEWEST_EVENT)
    # A module whose ring has no empty slot: the oldest record's event index is the newest's slot.
    ring = {3: msgspec.structs.replace(answer, previous_index=2, requested_index=3),
            2: msgspec.structs.replace(answer, previous_index=1, requested_index=2),
            1: msgspec.structs.replace(answer, previous_index=3, requested_index=1)}
    log_walk = state.walk()
    current = msgspec.structs.replace(ring[3], requested_index=NEWEST_EVENT)
    reads = 0
    while log_walk.take(current):
        reads += 1
        current = ring[current.previous_index]
    assert reads == 3 and len(log_walk.collected) == 3


def test_a_walk_with_a_cursor_stops_at_max_walk(clock: FakeClock) -> None:
    panel = dataclasses.replace(sample_panel(clock=PanelClock(clock)), log_size=MAX_WALK + 10)
    state = EventLogState("p1", clock)
    panel.tamper_zone(1)
    read(state, panel)
    for _ in range(MAX_WALK + 5):
        panel.tamper_zone(2)
    log_walk = walk(state, panel)
    assert log_walk.capped and len(log_walk.new_records) == MAX_WALK
    assert f"more than {MAX_WALK}" in (log_walk.warning() or "")


@pytest.mark.parametrize("text", ["", "12:ab", "00000g:0011223344556677", "000001:00112233445566", "-00001:0011223344556677"])
def test_a_bad_stored_cursor_is_refused(clock: FakeClock, text: str) -> None:
    with pytest.raises(ValueError):
        EventLogState("p1", clock).load_cursor(text)


def test_cursor_text_round_trips() -> None:
    cursor = LogCursor(0x00ABCD, "00112233445566ff")
    assert LogCursor.parse(cursor.encode()) == cursor and LogCursor.parse(EMPTY_LOG.encode()) == EMPTY_LOG


# --- what a record becomes ---------------------------------------------------------------------


def test_a_record_in_the_panels_time_zone(clock: FakeClock) -> None:
    panel = sample_panel(clock=PanelClock(clock, "Europe/Warsaw"))
    state = EventLogState("p1", clock, timezone="Europe/Warsaw")
    panel.arm(CODE, {2}, 0)
    panel.violate_zone(6)
    [armed, burglary] = read(state, panel, at_connect=True)
    record = burglary.body
    assert isinstance(record, LogRecord)
    assert record.recorded_at == START and record.recorded_at.utcoffset() == timedelta(hours=1)
    assert (record.code, record.category, record.text, record.zone, record.partition) == (130, "ALARM", "Burglary alarm", 6, 2)
    assert record.offline and not record.history_only and burglary.priority is Priority.HIGH
    assert burglary.occurrence == f"log:p1:{record.index}:2026-03-14T10:26:00+01:00"
    assert (armed.body.user, armed.body.category) == (1, "ARM")  # type: ignore[attr-defined]
    # The body is what the hub decodes.
    assert msgspec.json.decode(msgspec.json.encode(record), type=LogRecord) == record


@pytest.mark.parametrize(
    ("category", "restore", "history_only", "priority"),
    [
        (EventCategory.FIRE, False, False, Priority.CRITICAL),
        (EventCategory.PANIC, False, False, Priority.CRITICAL),
        (EventCategory.ALARM, False, False, Priority.HIGH),
        (EventCategory.TAMPER, False, False, Priority.HIGH),
        (EventCategory.TAMPER, True, False, Priority.LOW),
        (EventCategory.TROUBLE, False, False, Priority.NORMAL),
        (EventCategory.TROUBLE, True, False, Priority.NORMAL),
        (EventCategory.ARM, False, False, Priority.LOW),
        (EventCategory.FIRE, False, True, Priority.LOW),
        (EventCategory.OTHER, False, False, Priority.LOW),
    ],
)
def test_record_priorities(category: EventCategory, restore: bool, history_only: bool, priority: Priority) -> None:
    assert record_priority(category, restore, history_only) is priority


# --- one occurrence, two paths -----------------------------------------------------------------


def test_a_live_alarm_and_its_log_record_share_one_key(clock: FakeClock, panel: Panel) -> None:
    state = EventLogState("p1", clock)
    read(state, panel)
    panel.arm(CODE, {1}, 0)
    panel.violate_zone(3)
    live = state.tag([alarm(3), Observation("satel.partition.alarm", Priority.CRITICAL, PartitionEvent(1))],
                     at_connect=False)
    zone_key, partition_key = (o.occurrence for o in live)
    assert zone_key and zone_key.startswith("live:p1:") and partition_key and partition_key != zone_key
    [armed, burglary] = read(state, panel)
    # The record names zone 3: the zone's alarm is its occurrence, not the partition's.
    assert burglary.occurrence == zone_key and not burglary.body.offline  # type: ignore[attr-defined]
    assert armed.occurrence is not None and armed.occurrence.startswith("log:p1:")
    # Consumed: the next alarm of zone 3 is another occurrence.
    panel.violate_zone(3)
    [again] = read(state, panel)
    assert again.occurrence != zone_key and again.occurrence.startswith("log:")  # type: ignore[union-attr]


def test_a_live_alarm_read_back_at_reconnect_is_not_offline(clock: FakeClock, panel: Panel) -> None:
    state = EventLogState("p1", clock)
    read(state, panel)
    panel.arm(CODE, {1}, 0)
    panel.violate_zone(3)
    [live] = state.tag([alarm(3)], at_connect=False)
    # The link dropped before it read the log; the reconnect reads it.
    [_, burglary] = read(state, panel, at_connect=True)
    assert burglary.occurrence == live.occurrence and not burglary.body.offline  # type: ignore[attr-defined]


def test_at_reconnect_the_diff_reuses_the_offline_records_key(clock: FakeClock, panel: Panel) -> None:
    state = EventLogState("p1", clock)
    read(state, panel)
    panel.arm(CODE, {1}, 0)
    panel.violate_zone(3)
    panel.tamper_zone(4)
    observations = read(state, panel, at_connect=True)
    burglary, tamper = observations[1], observations[2]
    assert burglary.body.offline and tamper.body.offline  # type: ignore[attr-defined]
    diff = [alarm(3), Observation("satel.zone.tamper_alarm", Priority.HIGH, ZoneEvent(4)), alarm(5)]
    tagged = state.tag(diff, at_connect=True)
    assert [o.occurrence for o in tagged[:2]] == [burglary.occurrence, tamper.occurrence]
    assert tagged[2].occurrence and tagged[2].occurrence.startswith("live:")
    state.end_connect()
    # Later alarms of the same zones are new occurrences.
    assert state.tag([alarm(3)], at_connect=True)[0].occurrence != burglary.occurrence


def test_restores_and_history_never_match(clock: FakeClock, panel: Panel) -> None:
    state = EventLogState("p1", clock)
    read(state, panel)
    [live] = state.tag([Observation("satel.zone.tamper_alarm", Priority.HIGH, ZoneEvent(4))], at_connect=False)
    panel.tamper_zone(1)
    panel.restore_tamper(4)
    observations = read(state, panel)
    assert all(o.occurrence != live.occurrence for o in observations)
    assert [o.body.restore for o in observations] == [False, True]  # type: ignore[attr-defined]


def test_a_live_alarm_stops_waiting_after_the_match_window(clock: FakeClock, panel: Panel) -> None:
    state = EventLogState("p1", clock, match_window_s=60)
    read(state, panel)
    [live] = state.tag([alarm(3)], at_connect=False)
    clock.advance(61)
    panel.arm(CODE, {1}, 0)
    panel.violate_zone(3)
    assert all(o.occurrence != live.occurrence for o in read(state, panel))
