"""hub.alarms.lifecycle and hub.alarms.bundling as pure code, driven by a fake clock."""
from __future__ import annotations

from datetime import timedelta

import pytest

from hub.alarms import lifecycle as lc
from hub.alarms.bundling import AlarmInput, WorkingBundle, enrich_priority, plan_bundles
from hub.alarms.classify import NORMAL_STATE, classify
from hub.alarms.lifecycle import Bundle, Status
from shared.clock import FakeClock


def _new(requires_note: bool = False) -> Bundle:
    return Bundle(id=1, status=Status.NEW, version=1, requires_note=requires_note)


def test_the_happy_path_bumps_the_version_at_every_step() -> None:
    clock = FakeClock()
    b = lc.claim(_new(), "ann", 1, clock.now())
    assert (b.status, b.version, b.claimed_by, b.claim_expires_at) == (Status.CLAIMING, 2, "ann", clock.now() + lc.CLAIM_TTL)
    clock.advance(10)
    b = lc.start(b, "ann", 2, clock.now())
    assert (b.status, b.version, b.claim_expires_at) == (Status.IN_PROGRESS, 3, None)
    b = lc.ack(b, "ann", 3, clock.now(), "  called the guard  ")
    assert (b.status, b.ack_note) == (Status.ACK, "called the guard")
    b = lc.resolve(b, "ann", 4, clock.now(), "FALSE_ALARM", "  detector dusty ")
    assert (b.status, b.resolution, b.resolution_note) == (Status.RESOLVED, "FALSE_ALARM", "detector dusty")
    b = lc.close(b, "bob", 5, clock.now())
    assert (b.status, b.version) == (Status.CLOSED, 6)


@pytest.mark.parametrize(
    "status, action",
    [
        (Status.NEW, "ack"), (Status.NEW, "resolve"), (Status.NEW, "start"), (Status.NEW, "close"),
        (Status.CLAIMING, "claim"), (Status.CLAIMING, "resolve"), (Status.IN_PROGRESS, "close"),
        (Status.ACK, "start"), (Status.RESOLVED, "ack"), (Status.CLOSED, "claim"), (Status.CLOSED, "resolve"),
    ],
)
def test_illegal_transitions_are_refused(status: Status, action: str) -> None:
    bundle = Bundle(id=1, status=status, version=7, claimed_by="ann")
    now = FakeClock().now()
    calls = {
        "claim": lambda: lc.claim(bundle, "ann", 7, now),
        "start": lambda: lc.start(bundle, "ann", 7, now),
        "ack": lambda: lc.ack(bundle, "ann", 7, now, "note"),
        "resolve": lambda: lc.resolve(bundle, "ann", 7, now, "TEST"),
        "close": lambda: lc.close(bundle, "ann", 7, now),
    }
    with pytest.raises(lc.IllegalTransition):
        calls[action]()


def test_a_stale_version_is_a_conflict_before_anything_else() -> None:
    with pytest.raises(lc.VersionConflict):
        lc.claim(_new(), "ann", 0, FakeClock().now())
    closed = Bundle(id=1, status=Status.CLOSED, version=3)
    with pytest.raises(lc.VersionConflict):
        lc.claim(closed, "ann", 2, FakeClock().now())


def test_only_the_claimant_continues_and_an_expired_claim_cannot_start() -> None:
    clock = FakeClock()
    b = lc.claim(_new(), "ann", 1, clock.now())
    with pytest.raises(lc.NotClaimant):
        lc.start(b, "bob", 2, clock.now())
    clock.advance(30)
    with pytest.raises(lc.IllegalTransition, match="expired"):
        lc.start(b, "ann", 2, clock.now())


def test_temperature_alarms_need_a_note() -> None:
    clock = FakeClock()
    b = lc.start(lc.claim(_new(requires_note=True), "ann", 1, clock.now()), "ann", 2, clock.now())
    for note in (None, "", "   "):
        with pytest.raises(lc.NoteRequired):
            lc.ack(b, "ann", 3, clock.now(), note)
    assert lc.ack(b, "ann", 3, clock.now(), "freezer door closed").status is Status.ACK


def test_reaper_reverts_a_lapsed_claim_and_auto_close_waits_30_minutes() -> None:
    clock = FakeClock()
    claimed = lc.claim(_new(), "ann", 1, clock.now())
    clock.advance(29.9)
    assert lc.reap(claimed, clock.now()) is None
    clock.advance(0.1)
    reaped = lc.reap(claimed, clock.now())
    assert reaped is not None and (reaped.status, reaped.claimed_by, reaped.version) == (Status.NEW, None, 3)
    resolved = Bundle(id=1, status=Status.RESOLVED, version=5, updated_at=clock.now())
    clock.advance(29 * 60 + 59)
    assert lc.auto_close(resolved, clock.now()) is None
    clock.advance(1)
    assert lc.auto_close(resolved, clock.now()).status is Status.CLOSED  # type: ignore[union-attr]
    assert lc.reap(resolved, clock.now()) is None


def test_priority_enrichment() -> None:
    assert enrich_priority("HIGH", "satel.zone.alarm", None, False) == "HIGH"
    assert enrich_priority("HIGH", "satel.zone.alarm", {"satel.zone.alarm": "CRITICAL"}, False) == "CRITICAL"
    assert enrich_priority("HIGH", "satel.zone.tamper", {"*": "LOW", "satel.zone.alarm": "CRITICAL"}, False) == "LOW"
    assert enrich_priority("HIGH", "satel.zone.alarm", {"satel.zone.alarm": "BOGUS"}, False) == "HIGH"
    assert enrich_priority("CRITICAL", "satel.zone.alarm", None, True) == "LOW"


def _inp(clock: FakeClock, seq: int, *, restore: bool = False, priority: str = "HIGH", service: bool = False,
         alarm_type: str = "BURGLARY") -> AlarmInput:
    return AlarmInput(event_id=f"e{seq}", at=clock.now(), ord=seq, edge_id="e", source="p", group_key="object:1",
                      object_id=1, alarm_type=alarm_type, restore=restore, priority=priority, service_mode=service,
                      requires_note=False)


def test_bundling_window_edges_and_restores() -> None:
    clock = FakeClock()
    first = _inp(clock, 1)
    clock.advance(14 * 60 + 59)
    joins = _inp(clock, 2, priority="CRITICAL")
    clock.advance(15 * 60 + 1)
    too_late = _inp(clock, 3)
    [b1, b2] = plan_bundles([first, joins, too_late], [])
    assert [e.ord for e in b1.events] == [1, 2] and b1.priority == "CRITICAL" and b1.event_count == 2
    assert [e.ord for e in b2.events] == [3]
    # A restore updates the open bundle and never opens one.
    clock.advance(1)
    [updated] = plan_bundles([_inp(clock, 4, restore=True)], [b2])
    assert updated is b2 and b2.restored and b2.event_count == 2
    assert plan_bundles([_inp(clock, 5, restore=True, alarm_type="TAMPER")], [b2]) == []


def test_a_late_restore_does_not_override_a_newer_alarm() -> None:
    clock = FakeClock()
    [b] = plan_bundles([_inp(clock, 10)], [])
    plan_bundles([_inp(clock, 9, restore=True)], [b])  # older seq, arrived later on the other lane
    assert not b.restored


def test_service_mode_suppresses_and_leaving_it_restores_normal_handling() -> None:
    clock = FakeClock()
    [b] = plan_bundles([_inp(clock, 1, priority="LOW", service=True)], [])
    assert b.service_mode and b.priority == "LOW"
    plan_bundles([_inp(clock, 2, priority="LOW", service=True)], [b])
    assert b.service_mode and b.priority == "LOW"
    plan_bundles([_inp(clock, 3, priority="HIGH")], [b])
    assert not b.service_mode and b.priority == "HIGH"


def test_existing_open_bundles_are_joined_newest_first() -> None:
    clock = FakeClock()
    old = WorkingBundle(group_key="object:1", alarm_type="BURGLARY", object_id=1, status=Status.ACK, priority="LOW",
                        service_mode=False, requires_note=False, first_event_at=clock.now() - timedelta(hours=1),
                        last_event_at=clock.now() - timedelta(minutes=20), event_count=1, last_alarm_ord=1,
                        restored_ord=0, edge_id="e", source="p", id=5)
    newer = WorkingBundle(group_key="object:1", alarm_type="BURGLARY", object_id=1, status=Status.NEW, priority="LOW",
                          service_mode=False, requires_note=False, first_event_at=clock.now(),
                          last_event_at=clock.now() - timedelta(minutes=1), event_count=1, last_alarm_ord=2,
                          restored_ord=0, edge_id="e", source="p", id=6)
    [touched] = plan_bundles([_inp(clock, 3)], [newer, old])
    assert touched.id == 6 and touched.event_count == 2


def test_a_snapshot_names_every_element_it_mentions_and_nothing_from_malformed_fields() -> None:
    meaning = classify("satel.snapshot", {"violated": [2], "armed": {"1": 3}, "outputs_on": [4],
                                          "zone_names": {"9": "Hall"}, "partition_names": {"x": "bad key"},
                                          "tamper": "not a list", "bypassed": [True, -1, 0, "7"]})
    assert meaning.matters and meaning.opens is None and meaning.restores is None
    by_element = {(c.element, c.number): c.state for c in meaning.changes}
    assert set(by_element) == {("zone", 2), ("zone", 7), ("zone", 9), ("partition", 1), ("output", 4)}
    assert by_element[("zone", 2)]["violated"] is True and by_element[("zone", 9)] == NORMAL_STATE["zone"]
    assert by_element[("zone", 7)]["bypassed"] is True
    assert by_element[("partition", 1)] == {**NORMAL_STATE["partition"], "armed": True, "mode": 3}
    assert by_element[("output", 4)] == {"on": True}
    assert classify("satel.snapshot", {"armed": ["not", "a", "map"]}).changes == ()
