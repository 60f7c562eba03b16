"""Operator work as pure code (issue 12): resolutions, take-over and escalation in the lifecycle,
procedure steps and who may tick them, events and moves in words, click-to-call numbers, and
who is who."""
from __future__ import annotations

import typing
from datetime import timedelta

import pytest

from hub.alarms import lifecycle as lc
from hub.alarms.checklist import MAX_STEPS, NotWorked, check_tick, procedure_steps
from hub.alarms.describe import PanelNames, describe_call, describe_event, describe_move, tel_uri
from hub.alarms.lifecycle import Bundle, Status
from hub.alarms.outcomes import CALL_OUTCOMES, RESOLUTIONS, CallOutcome, ResolutionCode, resolution_label
from hub.alarms.people import SYSTEM_NAME, Who, name_of, user_id_of, who
from hub.config import AlarmSettings
from shared.clock import FakeClock

NOW = FakeClock().now()
NAMES = PanelNames(zones={3: "Biuro", 4: "Hol"}, partitions={1: "Parter"}, outputs={2: "Syrena"})


def _held(status: Status, by: str = "user:1", **kw: typing.Any) -> Bundle:
    return Bundle(id=9, status=status, version=5, claimed_by=by, **kw)


# --- resolutions -----------------------------------------------------------------------------------

def test_the_vocabularies_and_their_literal_types_name_the_same_codes() -> None:
    assert list(typing.get_args(ResolutionCode)) == list(RESOLUTIONS)
    assert list(typing.get_args(CallOutcome)) == list(CALL_OUTCOMES)
    assert list(RESOLUTIONS)[-1] == "OTHER" and {"FALSE_ALARM", "TEST", "CONFIRMED_INTRUSION_POLICE",
                                                 "TECHNICAL_FAULT"} <= set(RESOLUTIONS)
    assert resolution_label("TEST").startswith("Test") and resolution_label(None) is None


def test_resolve_needs_a_known_resolution_and_keeps_it_with_the_note() -> None:
    acked = _held(Status.ACK)
    with pytest.raises(lc.UnknownResolution):
        lc.resolve(acked, "user:1", 5, NOW, "BURGLAR_ESCAPED")
    with pytest.raises(lc.UnknownResolution):
        lc.resolve(acked, "user:1", 5, NOW, "")
    done = lc.resolve(acked, "user:1", 5, NOW, "WEATHER_ANIMAL", "   ")
    assert (done.status, done.version, done.resolution, done.resolution_note) == (
        Status.RESOLVED, 6, "WEATHER_ANIMAL", None)
    # The state machine and the claim are checked first: a bad code on an illegal move is that move's refusal.
    with pytest.raises(lc.IllegalTransition):
        lc.resolve(_held(Status.IN_PROGRESS), "user:1", 5, NOW, "nonsense")
    with pytest.raises(lc.NotClaimant):
        lc.resolve(acked, "user:2", 5, NOW, "TEST")


# --- take-over -------------------------------------------------------------------------------------

@pytest.mark.parametrize("status", [Status.IN_PROGRESS, Status.ACK])
def test_take_over_moves_the_holder_and_keeps_the_status(status: Status) -> None:
    taken = lc.take_over(_held(status, claim_expires_at=None, ack_note="n"), "user:7", 5, NOW, "shift change")
    assert (taken.status, taken.version, taken.claimed_by, taken.ack_note, taken.updated_at) == (
        status, 6, "user:7", "n", NOW)
    assert taken.claim_expires_at is None


def test_take_over_of_a_claim_gives_the_new_holder_a_fresh_claim() -> None:
    claiming = _held(Status.CLAIMING, claim_expires_at=NOW + timedelta(seconds=3))
    taken = lc.take_over(claiming, "user:7", 5, NOW, "operator left the desk")
    assert taken.claim_expires_at == NOW + lc.CLAIM_TTL


@pytest.mark.parametrize("status", [Status.NEW, Status.RESOLVED, Status.CLOSED])
def test_take_over_is_refused_outside_the_worked_statuses(status: Status) -> None:
    with pytest.raises(lc.IllegalTransition):
        lc.take_over(_held(status), "user:7", 5, NOW, "why")


def test_take_over_needs_the_current_version_a_reason_and_a_new_holder() -> None:
    held = _held(Status.IN_PROGRESS)
    with pytest.raises(lc.VersionConflict):
        lc.take_over(held, "user:7", 4, NOW, "why")
    with pytest.raises(lc.ReasonRequired):
        lc.take_over(held, "user:7", 5, NOW, "  \n ")
    with pytest.raises(lc.AlreadyHolder):
        lc.take_over(held, "user:1", 5, NOW, "why")


# --- escalation ------------------------------------------------------------------------------------

AFTER = {"CRITICAL": timedelta(seconds=60), "HIGH": timedelta(seconds=180)}


def _new(priority: str = "CRITICAL", **kw: typing.Any) -> Bundle:
    return Bundle(id=1, status=Status.NEW, version=1, priority=priority, created_at=NOW, **kw)


def test_escalation_is_due_at_the_priority_threshold_once() -> None:
    assert lc.escalation_due(_new(), NOW + timedelta(seconds=59.9), AFTER) is None
    assert lc.escalation_due(_new(), NOW + timedelta(seconds=60), AFTER) == timedelta(seconds=60)
    assert lc.escalation_due(_new("HIGH"), NOW + timedelta(seconds=179), AFTER) is None
    assert lc.escalation_due(_new("HIGH"), NOW + timedelta(seconds=180), AFTER) == timedelta(seconds=180)
    late = NOW + timedelta(hours=1)
    assert lc.escalation_due(_new(escalated_at=NOW + timedelta(seconds=61)), late, AFTER) is None
    assert lc.escalation_due(_new("NORMAL"), late, AFTER) is None and lc.escalation_due(_new("LOW"), late, AFTER) is None
    assert lc.escalation_due(_new(service_mode=True), late, AFTER) is None
    for status in (Status.CLAIMING, Status.IN_PROGRESS, Status.ACK, Status.RESOLVED, Status.CLOSED):
        assert lc.escalation_due(Bundle(id=1, status=status, version=2, priority="CRITICAL", created_at=NOW),
                                 late, AFTER) is None
    assert lc.escalation_due(_new(), late, {}) is None


def test_escalation_settings_default_and_refuse_nonsense() -> None:
    assert AlarmSettings().escalation() == AFTER  # CRITICAL 60 s, HIGH 180 s, NORMAL and LOW never
    assert AlarmSettings(escalate_after_s={"LOW": 3600}).escalation() == {"LOW": timedelta(hours=1)}
    for bad in ({"URGENT": 30}, {"CRITICAL": 0}, {"HIGH": 86_401}):
        with pytest.raises(ValueError, match="escalate_after_s"):
            AlarmSettings(escalate_after_s=bad)


# --- checklists ------------------------------------------------------------------------------------

def test_procedure_text_becomes_numbered_steps() -> None:
    text = "1. Verify the cameras\n\n2) Call the keyholder  \n- Send a patrol\n* Note the outcome\n• Close\n   \n3.5 m fence check"
    assert procedure_steps(text) == ["Verify the cameras", "Call the keyholder", "Send a patrol", "Note the outcome",
                                     "Close", "3.5 m fence check"]
    assert procedure_steps("") == [] and procedure_steps(" \n\t\n") == []
    assert len(procedure_steps("\n".join(f"step {i}" for i in range(300)))) == MAX_STEPS


def test_only_the_holder_or_a_supervisor_ticks_and_only_while_worked() -> None:
    check_tick(_held(Status.IN_PROGRESS), "user:1", supervisor=False)
    check_tick(_held(Status.ACK), "user:1", supervisor=False)
    check_tick(_held(Status.ACK), "user:5", supervisor=True)
    with pytest.raises(lc.NotClaimant):
        check_tick(_held(Status.IN_PROGRESS), "user:2", supervisor=False)
    for status in (Status.NEW, Status.CLAIMING, Status.RESOLVED, Status.CLOSED):
        with pytest.raises(NotWorked):
            check_tick(_held(status), "user:1", supervisor=True)


# --- in words --------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind, body, text", [
    ("satel.zone.alarm", {"zone": 3}, "Zone 3 Biuro: alarm"),
    ("satel.zone.violation", {"zone": 4}, "Zone 4 Hol: violated"),
    ("satel.zone.restore", {"zone": 4}, "Zone 4 Hol: restored"),
    ("satel.zone.tamper", {"zone": 3}, "Zone 3 Biuro: tamper"),
    ("satel.zone.tamper_restore", {"zone": 3}, "Zone 3 Biuro: tamper restored"),
    ("satel.zone.alarm_cleared", {"zone": 3}, "Zone 3 Biuro: alarm cleared"),
    ("satel.zone.tamper_alarm", {"zone": 3}, "Zone 3 Biuro: tamper alarm"),
    ("satel.zone.tamper_alarm_cleared", {"zone": 3}, "Zone 3 Biuro: tamper alarm cleared"),
    ("satel.zone.bypass", {"zone": 3}, "Zone 3 Biuro: bypassed"),
    ("satel.zone.unbypass", {"zone": 3}, "Zone 3 Biuro: bypass removed"),
    # The hub's configured name wins over the one the panel sent; the panel's fills a gap.
    ("satel.zone.alarm", {"zone": 3, "name": "OFFICE"}, "Zone 3 Biuro: alarm"),
    ("satel.zone.alarm", {"zone": 9, "name": "Garaż"}, "Zone 9 Garaż: alarm"),
    ("satel.zone.alarm", {"zone": 9}, "Zone 9: alarm"),
    ("satel.partition.armed", {"partition": 1, "mode": 0}, "Partition 1 Parter: armed"),
    ("satel.partition.armed", {"partition": 1, "mode": 2}, "Partition 1 Parter: armed (mode 2)"),
    ("satel.partition.disarmed", {"partition": 1}, "Partition 1 Parter: disarmed"),
    ("satel.partition.entry", {"partition": 1}, "Partition 1 Parter: entry time started"),
    ("satel.partition.entry_end", {"partition": 1}, "Partition 1 Parter: entry time ended"),
    ("satel.partition.exit", {"partition": 2}, "Partition 2: exit time started"),
    ("satel.partition.exit_end", {"partition": 1}, "Partition 1 Parter: exit time ended"),
    ("satel.partition.alarm", {"partition": 1}, "Partition 1 Parter: alarm"),
    ("satel.partition.alarm_cleared", {"partition": 1}, "Partition 1 Parter: alarm cleared"),
    ("satel.partition.fire_alarm", {"partition": 1}, "Partition 1 Parter: fire alarm"),
    ("satel.partition.fire_alarm_cleared", {"partition": 1}, "Partition 1 Parter: fire alarm cleared"),
    ("satel.output.on", {"output": 2}, "Output 2 Syrena: on"),
    ("satel.output.off", {"output": 5}, "Output 5: off"),
    ("satel.trouble.on", {"part": 1, "bit": 8, "trouble": "ac"}, "Trouble ac: started"),
    ("satel.trouble.off", {"part": 3, "bit": 2, "trouble": ""}, "Trouble (part 3, bit 2): ended"),
    ("satel.log.record", {"text": "Zone alarm", "zone": 3, "partition": 1, "user": None, "offline": False},
     "Panel log: Zone alarm — Zone 3 Biuro, Partition 1 Parter"),
    ("satel.log.record", {"text": "Disarmed", "zone": None, "partition": 0, "user": 5, "offline": True,
                          "recorded_at": "2026-11-22T14:02:00"},
     "Panel log: Disarmed, user 5 (while offline, panel time 2026-11-22T14:02:00)"),
    ("satel.snapshot", {"violated": [1]}, "Panel state read after connecting"),
    ("satel.clock.drift", {"drift_s": 125.4}, "Panel clock off by 125 s"),
    ("satel.clock.drift", {"drift_s": None}, "Panel clock has no valid date"),
    ("satel.clock.synced", {"drift_s": 1.0}, "Panel clock back in step"),
    ("satel.command", {"command": "arm mode 0", "items": [1, 2], "result": "ACK", "who": "jan"},
     "Command arm mode 0 1, 2 by jan: ACK"),
    ("cmd.result", {"type": "clear_alarm", "who": "user:4", "outcome": "NACK", "reason": "user code not found"},
     "Command clear alarm from the hub by user:4: NACK (user code not found)"),
    ("edge.link.down", {"link": "panel-1", "reason": "timeout"}, "Link panel-1: down (timeout)"),
    ("edge.link.down", {"link": "panel-1", "reason": "agent stopping", "planned": True},
     "Link panel-1: down (agent stopping), planned"),
    ("edge.link.up", {"link": "panel-1"}, "Link panel-1: up"),
    ("edge.link.degraded", {"link": "gsm-1", "reason": "signal low"}, "Link gsm-1: signal low"),
    ("edge.link.recovered", {"link": "gsm-1", "reason": "signal low"}, "Link gsm-1: no longer signal low"),
    ("edge.link.released", {"link": "panel-1", "who": "installer", "why": "DLOADX", "minutes": 30},
     "Link panel-1 released for 30 min by installer: DLOADX"),
    ("sms.temp.high", {}, "Temperature: high"),
    ("sms.temp.alarm", {"sensor": "Chłodnia 1", "value": 9.4, "unit": "C", "threshold": 8.0, "direction": "above"},
     "Temperature alarm: Chłodnia 1 9.4 °C (above 8 °C)"),
    ("sms.temp.normal", {"sensor": "Chłodnia 1", "value": 6.1, "unit": "C"}, "Temperature back to normal: Chłodnia 1 6.1 °C"),
    ("sms.temp.battery_low", {"sensor": "282C02"}, "Temperature logger 282C02: battery low"),
    ("sms.temp.lost_connection", {"sensor": "282C02"}, "Temperature logger 282C02: no measurements (connection lost)"),
    ("sms.unparseable", {"sender": "+48 600 *** 012", "quality": "garbled"},
     "SMS from +48 600 *** 012 not understood (garbled): archived for review"),
    ("sms.untrusted", {"sender": "+48 511 *** 999"},
     "SMS from a sender not on the list (+48 511 *** 999): not an alarm, archived for review"),
    ("robot.alarm.estop", {"robot": "RB-001"}, "Robot RB-001: emergency stop"),
    ("robot.restore.collision", {"robot": "RB-001"}, "Robot RB-001: collision ended"),
    ("demo.tick", {"n": 4}, "demo.tick"),
    # A body that does not say what its kind needs falls back to the kind, never to an error.
    ("satel.zone.alarm", {"zone": "three"}, "satel.zone.alarm"),
    ("satel.partition.armed", {}, "satel.partition.armed"),
    ("satel.zone.alarm", {"zone": True}, "satel.zone.alarm"),
])
def test_every_event_kind_in_words_with_the_panel_names(kind: str, body: dict, text: str) -> None:
    assert describe_event(kind, body, NAMES) == text


def test_lifecycle_moves_in_words() -> None:
    people = {"user:1": "Ann", "user:2": "Bob", "user:3": "Cy"}

    def person(actor: str | None) -> str:
        return people.get(actor or "", "nobody")

    assert describe_move("alarm.claim", {}, "user:1", person) == "Claimed by Ann"
    assert describe_move("alarm.start", {}, "user:1", person) == "Started by Ann"
    assert describe_move("alarm.ack", {"note": "patrol sent"}, "user:1", person) == "Acknowledged by Ann: patrol sent"
    assert describe_move("alarm.ack", {}, "user:1", person) == "Acknowledged by Ann"
    assert describe_move("alarm.resolve", {"resolution": "TEST", "note": "installer"}, "user:1", person) == \
        f"Resolved by Ann: {RESOLUTIONS['TEST']} — installer"
    assert describe_move("alarm.close", {}, "user:2", person) == "Closed by Bob"
    assert describe_move("alarm.reaped", {}, "system", person) == "Claim lapsed: back to NEW"
    assert describe_move("alarm.auto_closed", {}, "system", person) == "Closed automatically"
    assert describe_move("alarm.escalated", {"after_s": 60.0, "priority": "CRITICAL"}, "system", person) == \
        "Escalated: still NEW after 60 s (CRITICAL)"
    assert describe_move("alarm.take_over", {"previous": "user:1", "holder": "user:2", "reason": "break"}, "user:2",
                         person) == "Taken over from Ann by Bob: break"
    assert describe_move("alarm.take_over", {"previous": "user:1", "holder": "user:3", "reason": "load"}, "user:2",
                         person) == "Reassigned from Ann to Cy by Bob: load"


def test_a_call_and_a_click_to_call_number_in_words() -> None:
    assert describe_call("Jan Kowalski", "+48 600 100 200", "NO_ANSWER") == "Call to Jan Kowalski (+48 600 100 200): no answer"
    assert describe_call("Desk", "", "ANSWERED") == "Call to Desk: answered"
    assert tel_uri("+48 (600) 100-200") == "tel:+48600100200"
    assert tel_uri("0 600.100.200") == "tel:0600100200"
    assert tel_uri("") is None and tel_uri("ask at the gate") is None and tel_uri("٣٤٥") is None


def test_who_is_who() -> None:
    assert user_id_of("user:12") == 12 and user_id_of("system") is None and user_id_of("user:x") is None
    assert user_id_of("user:1234567890123456789") is None and user_id_of(None) is None
    assert who("user:3", "ann@x", "Ann") == Who(3, "ann@x", "Ann")
    assert who("user:3", "ann@x", "") == Who(3, "ann@x", None)
    assert who("system") == Who(None, None, SYSTEM_NAME) and who(None) is None
    assert name_of(Who(3, "ann@x", "Ann")) == "Ann" and name_of(Who(3, "ann@x", None)) == "ann@x"
    assert name_of(Who(3, None, None)) == "user 3" and name_of(None) == "nobody"
