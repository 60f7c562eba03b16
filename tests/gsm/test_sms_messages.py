"""What a received SMS becomes in the edge's journal (issue 14, edge/links/gsm/messages.py): the
trusted-sender check, templates, quality, masked senders, raw text only in sms.raw, and one
occurrence key per message however often it is read."""
from __future__ import annotations

import datetime

import msgspec

from edge.links.gsm.messages import SmsPolicy, identity, normalise_sender, read_message
from edge.links.gsm.templates import default_templates
from firmware_bridges.gsm.concat import Reassembler
from firmware_bridges.gsm.pdu import decode_deliver, encode_deliver, encode_deliver_raw, split_for_concat
from shared.envelope import Priority

SENDER = "+48600123012"
WHEN = datetime.datetime(2026, 11, 30, 14, 5, tzinfo=datetime.timezone(datetime.timedelta(hours=1)))
ALARM = "Efento: sensor 282C02 'Cold room' temperature 9.4C above threshold 8.0C"
POLICY = SmsPolicy.of(["0048 600 123 012", "Efento"])
TEMPLATES = default_templates()


def _one(text: str, sender: str = SENDER, encoding: str = "gsm7") -> list:
    [message] = Reassembler().add(decode_deliver(encode_deliver(sender, text, encoding=encoding, smsc_time=WHEN)),
                                  0.0)  # type: ignore[arg-type]
    return read_message(message, TEMPLATES, POLICY)


def test_a_trusted_alarm_becomes_a_high_temperature_event_and_a_raw_one() -> None:
    raw, alarm = _one(ALARM)
    assert (raw.kind, raw.priority) == ("sms.raw", Priority.LOW)
    assert raw.body.text == ALARM and raw.body.sender == SENDER and raw.body.trusted
    assert (alarm.kind, alarm.priority) == ("sms.temp.alarm", Priority.HIGH)
    body = msgspec.to_builtins(alarm.body)
    assert (body["value"], body["threshold"], body["direction"], body["quality"]) == (9.4, 8.0, "above", "complete")
    assert body["sender"] == "+48 600 *** 012" and SENDER not in str(body) and ALARM not in str(body)
    assert raw.occurrence != alarm.occurrence and raw.occurrence.startswith("sms:")
    assert _one(ALARM)[1].occurrence == alarm.occurrence, "read again after a crash: the same key"


def test_an_untrusted_sender_is_never_an_alarm_and_a_stranger_text_is_unparseable() -> None:
    raw, untrusted = _one(ALARM, sender="+48511999888")
    assert untrusted.kind == "sms.untrusted" and not raw.body.trusted
    assert untrusted.body.sender == "+48 511 *** 888"
    _, unread = _one("Your parcel is waiting at the locker")
    assert unread.kind == "sms.unparseable" and unread.body.quality == "unparseable"
    assert _one(ALARM, sender="EFENTO")[1].kind == "sms.temp.alarm", "alphanumeric ids compare without case"


def test_a_concatenated_ucs2_message_is_read_whole_or_flagged_truncated() -> None:
    text = "Alarm temperatury: czujnik Chłodnia 1 9,4°C powyżej progu 8,0°C " * 2
    parts = [decode_deliver(encode_deliver_raw(SENDER, payload, encoding="ucs2", smsc_time=WHEN, concat=concat))
             for concat, payload in split_for_concat(text, "ucs2", 7, parts=2)]
    whole = Reassembler()
    assert whole.add(parts[0], 0.0) == []
    [message] = whole.add(parts[1], 1.0)
    _, alarm = read_message(message, TEMPLATES, POLICY)
    assert alarm.kind == "sms.temp.alarm" and alarm.body.value == 9.4 and alarm.body.quality == "complete"
    cut = Reassembler(timeout=60)
    cut.add(parts[0], 0.0)
    [partial] = cut.expire(61.0)
    raw, event = read_message(partial, TEMPLATES, POLICY)
    assert partial.truncated and raw.body.quality == "truncated" and event.body.quality == "truncated"
    assert identity(partial) == identity(message), "one message, one identity, however much of it came"


def test_a_text_naming_no_sensor_is_told_by_its_sender() -> None:
    _, normal = _one("BluLog: Alarm ustąpił / Powrót do normy", encoding="ucs2")
    assert normal.kind == "sms.temp.normal" and normal.body.sensor == "+48 600 *** 012"


def test_a_sensors_priority_can_be_configured() -> None:
    policy = SmsPolicy.of([SENDER], {("282C02", "sms.temp.alarm"): Priority.CRITICAL})
    [message] = Reassembler().add(decode_deliver(encode_deliver(SENDER, ALARM, encoding="gsm7", smsc_time=WHEN)), 0.0)
    assert read_message(message, TEMPLATES, policy)[1].priority is Priority.CRITICAL


def test_senders_are_compared_in_one_spelling() -> None:
    assert normalise_sender("0048 600-123-012") == normalise_sender("+48600123012") == "+48600123012"
    assert normalise_sender("BluLog") == normalise_sender("BLULOG")
