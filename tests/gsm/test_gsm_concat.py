"""Reassembly of concatenated SMS: raw parts joined before decoding, expiry flagged truncated."""

from __future__ import annotations

import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_bridges.gsm.concat import Reassembler
from firmware_bridges.gsm.gsm7 import encode_septets
from firmware_bridges.gsm.pdu import (
    Concat,
    SmsDeliver,
    decode_deliver,
    encode_deliver,
    encode_deliver_raw,
    split_for_concat,
)

WHEN = datetime.datetime(2026, 3, 1, 12, 0, tzinfo=datetime.timezone(datetime.timedelta(hours=1)))
SENDER = "+48600123012"


def parts_of(text: str | bytes, encoding: str, ref: int, ref_bits: int = 8, sender: str = SENDER) -> list[SmsDeliver]:
    return [
        decode_deliver(encode_deliver_raw(sender, data, encoding=encoding, smsc_time=WHEN, concat=concat))  # type: ignore[arg-type]
        for concat, data in split_for_concat(text, encoding, ref, ref_bits=ref_bits)  # type: ignore[arg-type]
    ]


@pytest.mark.parametrize(
    ("text", "encoding", "ref_bits"),
    [
        ("Alarm: czujnik T1 " * 20, "gsm7", 8),
        ("Alarm € [T1] " * 30, "gsm7", 16),
        ("Temperatura zbyt wysoka: ąćęłńóśźż ĄĆĘŁŃÓŚŹŻ " * 4, "ucs2", 8),
        ("Temperatura zbyt wysoka: ąćęłńóśźż ĄĆĘŁŃÓŚŹŻ " * 4, "ucs2", 16),
        (bytes(range(256)) * 2, "8bit", 8),
    ],
)
def test_parts_in_any_order_reassemble(text: str | bytes, encoding: str, ref_bits: int) -> None:
    parts = parts_of(text, encoding, 200, ref_bits)
    assert len(parts) > 2
    reassembler = Reassembler(timeout=60)
    done = []
    for index, part in enumerate(reversed(parts)):
        done += reassembler.add(part, now=float(index))
    assert len(done) == 1 and len(reassembler) == 0
    message = done[0]
    expected = text if isinstance(text, str) else text.decode("latin-1")
    assert (message.text, message.truncated, message.garbled, message.missing) == (expected, False, False, ())
    assert (message.ref, message.total, message.encoding) == (200, len(parts), encoding)
    assert [p.concat.part for p in message.parts if p.concat] == list(range(1, len(parts) + 1))


def test_escape_pair_and_surrogate_pair_split_across_parts_decode_as_one_character() -> None:
    gsm = [
        decode_deliver(encode_deliver_raw(SENDER, data, encoding="gsm7", smsc_time=WHEN, concat=Concat(1, 2, n)))
        for n, data in ((1, b"A\x1b"), (2, b"eB"))
    ]
    emoji = "😀".encode("utf-16-be")
    ucs2 = [
        decode_deliver(encode_deliver_raw(SENDER, data, encoding="ucs2", smsc_time=WHEN, concat=Concat(2, 2, n)))
        for n, data in ((1, b"\x00A" + emoji[:2]), (2, emoji[2:] + b"\x00B"))
    ]
    assert ucs2[0].garbled  # alone, a part holds half a surrogate pair
    reassembler = Reassembler()
    assert reassembler.add(gsm[0], 0.0) == [] and reassembler.add(ucs2[0], 0.0) == []
    assert reassembler.add(gsm[1], 1.0)[0].text == "A€B"
    whole = reassembler.add(ucs2[1], 1.0)[0]
    assert whole.text == "A😀B" and not whole.garbled


def test_sets_are_keyed_by_sender_reference_and_total() -> None:
    reassembler = Reassembler()
    first = parts_of("x" * 200, "gsm7", 9)
    other_sender = parts_of("y" * 200, "gsm7", 9, sender="+48600999999")
    assert reassembler.add(first[0], 0) == []
    assert reassembler.add(other_sender[1], 0) == []
    assert len(reassembler) == 2
    assert reassembler.add(first[0], 0) == []  # a repeated part is ignored
    assert reassembler.add(first[1], 0)[0].text == "x" * 200


def test_incomplete_set_expires_truncated() -> None:
    parts = parts_of("abc" * 200, "gsm7", 3)
    assert len(parts) == 4
    reassembler = Reassembler(timeout=30)
    reassembler.add(parts[0], now=100.0)
    reassembler.add(parts[2], now=110.0)
    reassembler.add(parts[3], now=115.0)
    assert reassembler.expire(now=129.9) == []
    (message,) = reassembler.expire(now=130.0)
    assert message.truncated and message.missing == (2,)
    # Runs around the gap decode separately: part 1 then parts 3-4.
    assert message.text == "".join(p.text for p in (parts[0], parts[2], parts[3]))
    assert len(reassembler) == 0 and reassembler.expire(now=1000.0) == []


def test_single_pdu_passes_straight_through() -> None:
    message = decode_deliver(encode_deliver(SENDER, "T1 8.5C", encoding="gsm7", smsc_time=WHEN))
    (whole,) = Reassembler().add(message, 0.0)
    assert (whole.text, whole.ref, whole.total, whole.truncated, whole.parts) == ("T1 8.5C", None, None, False, (message,))


def test_pending_sets_are_capped_and_flush_empties() -> None:
    reassembler = Reassembler(timeout=60, max_pending=2)
    firsts = [parts_of("z" * 200, "gsm7", ref)[0] for ref in (1, 2, 3)]
    assert reassembler.add(firsts[0], 0) == [] and reassembler.add(firsts[1], 1) == []
    (pushed,) = reassembler.add(firsts[2], 2)
    assert pushed.ref == 1 and pushed.truncated
    assert [m.ref for m in reassembler.flush()] == [2, 3]
    assert len(reassembler) == 0
    with pytest.raises(ValueError):
        Reassembler(timeout=0)


def test_mixed_encodings_in_one_set_decode_per_part() -> None:
    one = decode_deliver(encode_deliver(SENDER, "ab", encoding="gsm7", smsc_time=WHEN, concat=Concat(4, 2, 1)))
    two = decode_deliver(encode_deliver(SENDER, "ąb", encoding="ucs2", smsc_time=WHEN, concat=Concat(4, 2, 2)))
    reassembler = Reassembler()
    reassembler.add(two, 0)
    (message,) = reassembler.add(one, 0)
    assert message.text == "abąb" and message.encoding == "8bit"


@settings(max_examples=100, deadline=None)
@given(
    st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=400),
    st.randoms(use_true_random=False),
)
def test_any_ucs2_text_survives_split_shuffle_reassembly(text: str, random: object) -> None:
    parts = parts_of(text, "ucs2", 77, 16)
    random.shuffle(parts)  # type: ignore[attr-defined]
    reassembler = Reassembler()
    done = [m for part in parts for m in reassembler.add(part, 0.0)]
    assert [m.text for m in done] == [text]


GSM7_TEXT = st.text(st.sampled_from("abcXYZ 019@£€[]{}^~\\|\f\n"), min_size=1, max_size=500)


@settings(max_examples=100, deadline=None)
@given(GSM7_TEXT, st.integers(1, 6), st.sampled_from([8, 16]))
def test_any_gsm7_text_split_into_n_parts_reassembles(text: str, parts: int, ref_bits: int) -> None:
    capacity = 153 if ref_bits == 8 else 152
    if len(text) < parts or len(encode_septets(text)) > parts * (capacity - 2):
        return  # too short to spread over that many parts, or (nearly) too long for them
    split = split_for_concat(text, "gsm7", 42, ref_bits=ref_bits, parts=parts)  # type: ignore[arg-type]
    assert len(split) == parts
    reassembler = Reassembler()
    done = []
    for concat, data in split:
        pdu = encode_deliver_raw("Efento", data, encoding="gsm7", smsc_time=WHEN, concat=concat)
        done += reassembler.add(decode_deliver(pdu), 0.0)
    assert [m.text for m in done] == [text]
