"""The event-code table: records written out bit by bit from the manual's layout, read through it,
and names and event texts cleaned of control bytes at the codec."""

from __future__ import annotations

import pytest

from firmware_bridges.satel.protocol import (
    EVENT_CODES,
    UNKNOWN_EVENT_TEXT,
    DeviceNameAnswer,
    DeviceType,
    EventCategory,
    EventDescription,
    EventTextAnswer,
    Frame,
    SourceKind,
    decode_answer,
    decode_event_record,
    describe_record,
    event_code,
)

C, S = EventCategory, SourceKind

# Byte 0 3f: year marker 0, record present, not monitored; bytes 2-3 53 39: May, 13:45.
# Byte 1 is the class (high 3 bits) and day 17; byte 4 is partition-1, R, the code's high bits.
RECORD_VECTORS = [
    ("3f 11 53 39 08 82 06 00", EventDescription(130, False, C.ALARM, "Burglary alarm", S.ZONE, 6)),
    ("3f 11 53 39 0c 82 06 00", EventDescription(130, True, C.ALARM, "Zone restore", S.ZONE, 6)),
    ("3f 11 53 39 00 90 03 00", EventDescription(144, False, C.TAMPER, "Alarm (zone tamper)", S.ZONE, 3)),
    # The same zone kind naming an expander (129..192): a module's tamper, not a zone's.
    ("3f 31 53 39 00 91 96 00", EventDescription(145, False, C.TAMPER, "Alarm (module tamper)", S.EXPANDER, 150)),
    ("3f 11 53 39 00 6e 0b 00", EventDescription(110, False, C.FIRE, "Fire alarm", S.ZONE, 11)),
    ("3f 31 53 39 00 79 02 00", EventDescription(121, False, C.PANIC, "Duress alarm", S.USER, 2)),
    # A user kind whose source is not a person (250 and up): no user.
    ("3f 31 53 39 00 79 fb 00", EventDescription(121, False, C.PANIC, "Duress alarm", S.NONE, None)),
    # 401: disarm by user; with the restore flag, arm by user.
    ("3f 51 53 39 01 91 02 00", EventDescription(401, False, C.DISARM, "Disarm by user", S.USER, 2)),
    ("3f 51 53 39 05 91 02 00", EventDescription(401, True, C.ARM, "Arm by user", S.USER, 2)),
    # 403 auto-arm: partition 3, the source byte is the timer.
    ("3f 51 53 39 15 93 04 00", EventDescription(403, True, C.ARM, "Auto-arm", S.PARTITION, 3)),
    ("3f 51 53 39 01 96 01 00", EventDescription(406, False, C.ALARM_CLEARED, "Alarm cleared", S.USER, 1)),
    ("3f 71 53 39 02 3a 05 00", EventDescription(570, False, C.BYPASS, "Zone bypass", S.ZONE, 5)),
    ("3f b1 53 39 01 2d 00 00", EventDescription(301, False, C.TROUBLE, "AC supply trouble", S.NONE, None)),
    ("3f b1 53 39 05 2d 00 00", EventDescription(301, True, C.TROUBLE, "AC supply ok", S.NONE, None)),
    ("3f f1 53 39 01 31 00 00", EventDescription(305, False, C.SYSTEM, "Main panel restart", S.NONE, None)),
    # A code the table does not know: OTHER with the generic text, never an error.
    ("3f f1 53 39 03 ff 09 00", EventDescription(1023, False, C.OTHER, UNKNOWN_EVENT_TEXT, S.NONE, None)),
]


@pytest.mark.parametrize(("data", "described"), RECORD_VECTORS, ids=lambda v: v if isinstance(v, str) else "")
def test_record_vectors(data: str, described: EventDescription) -> None:
    assert describe_record(decode_event_record(bytes.fromhex(data))) == described


def test_the_table_is_consistent() -> None:
    for code, entry in EVENT_CODES.items():
        assert entry.code == code and 0 <= code <= 0x3FF
        for restore in (False, True):
            # 0x8F sends at most 46 bytes of CP1250.
            assert len(entry.text_for(restore).encode("cp1250")) <= 46, code
        assert entry.short_kind or entry.long_kind == 0, code
    arming = [entry for entry in EVENT_CODES.values() if entry.category_for(True) is not entry.category_for(False)]
    assert {entry.code for entry in arming} == {400, 401, 402, 403, 404, 405, 407, 409}
    assert all((e.category, e.category_for(True)) == (C.DISARM, C.ARM) for e in arming)


def test_unknown_codes_are_other() -> None:
    entry = event_code(999)
    assert (entry.category_for(True), entry.text_for(True), entry.source_kind) == (C.OTHER, UNKNOWN_EVENT_TEXT, S.NONE)


def test_device_names_lose_nul_and_control_bytes() -> None:
    # Zone 3, reaction 1, name "Biu\0ro" with a BEL inside and NUL padding after the spaces.
    frame = Frame(0xEE, bytes.fromhex("01 03 01 42 69 75 00 72 6f 07 20 20 20 20 00 00 00 00 00"))
    assert decode_answer(frame) == DeviceNameAnswer(DeviceType.ZONE, 3, 1, "Biuro")
    # CP1250 letters stay: "Wejście" then NUL padding.
    frame = Frame(0xEE, bytes.fromhex("01 01 02 57 65 6a 9c 63 69 65 00 00 00 00 00 00 00 00 00"))
    assert decode_answer(frame) == DeviceNameAnswer(DeviceType.ZONE, 1, 2, "Wejście")


def test_event_texts_lose_nul_and_control_bytes() -> None:
    # Code 130, short text "Burglary\0 alarm" with a tab and space padding.
    text = bytes.fromhex("42 75 72 67 6c 61 72 79 00 20 61 6c 61 72 6d 09")
    answer = decode_answer(Frame(0x8F, bytes.fromhex("00 82 01 00 03") + text))
    assert answer == EventTextAnswer(130, False, False, 1, 0x0003, "Burglary alarm")
