"""SMS-DELIVER PDU codec: published and hand-built vectors, error paths, property tests."""

from __future__ import annotations

import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_bridges.gsm.gsm7 import (
    DEFAULT_ALPHABET,
    EXTENSION_TABLE,
    Gsm7EncodeError,
    decode_septets,
    encode_septets,
    is_gsm7,
)
from firmware_bridges.gsm.pdu import (
    AddressType,
    Concat,
    PduError,
    decode_deliver,
    encode_deliver,
    encode_deliver_raw,
    split_for_concat,
    tpdu_length,
)

WARSAW = datetime.timezone(datetime.timedelta(hours=1))
WHEN = datetime.datetime(2026, 3, 1, 12, 30, 45, tzinfo=WARSAW)

# The classic published example (dreamfabric "SMS and the PDU format"): "Hello World!" GSM-7.
HELLO = "07911326040000F0040B911346610089F60000208062917314080CC8329BFD065DDF72363904"

# Hand-built: SMSC +48601000310, sender +48600123012, DCS 08 (UCS2), SCTS 26-03-01 12:30:45 +1h.
POLISH = "ąćęłńóśźż ĄĆĘŁŃÓŚŹŻ"
POLISH_PDU = (
    "07918406010013F0" "04" "0B918406103210F2" "00" "08" "62301021035440" "26"
    "0105010701190142014400F3015B017A017C0020"
    "0104010601180141014300D3015A0179017B"
)  # fmt: skip


def test_published_gsm7_vector() -> None:
    message = decode_deliver(HELLO)
    assert message.text == "Hello World!"
    assert message.sender == "+31641600986"
    assert message.sender_type is AddressType.INTERNATIONAL
    assert message.smsc == "+31624000000"
    assert message.encoding == "gsm7"
    assert message.concat is None
    # TS 23.040 §9.2.3.11: zone octet 08 is sign bit set with 0 quarters, i.e. UTC.
    assert message.timestamp == datetime.datetime(2002, 8, 26, 19, 37, 41, tzinfo=datetime.UTC)
    assert message.more_messages is False and message.raw == HELLO
    assert decode_deliver(bytes.fromhex(HELLO)) == message
    assert decode_deliver(" ".join(HELLO[i : i + 2] for i in range(0, len(HELLO), 2))) == message


def test_ucs2_polish_vector_decodes_and_encodes_identically() -> None:
    message = decode_deliver(POLISH_PDU)
    assert message.text == POLISH
    assert message.encoding == "ucs2"
    assert message.sender == "+48600123012"
    assert message.timestamp == WHEN
    assert message.timestamp.utcoffset() == datetime.timedelta(hours=1)
    encoded = encode_deliver("+48600123012", POLISH, encoding="ucs2", smsc_time=WHEN)
    assert encoded.hex().upper() == POLISH_PDU
    assert tpdu_length(encoded) == len(encoded) - 8


def test_extension_characters() -> None:
    text = "€[]{}^~\\|\f"
    assert encode_septets(text).hex().upper() == "1B651B3C1B3E1B281B291B141B3D1B2F1B401B0A"
    with pytest.raises(Gsm7EncodeError):
        encode_septets("°")
    pdu = encode_deliver("+48600123012", f"T {text} @£$¥ ÄÖÑÜ§äöñüà", encoding="gsm7", smsc_time=WHEN)
    message = decode_deliver(pdu)
    assert message.text == f"T {text} @£$¥ ÄÖÑÜ§äöñüà"
    # An escape before a code missing from the table shows the base character; a trailing one a space.
    assert decode_septets(bytes((0x1B, 0x41, 0x42, 0x1B))) == "AB "
    # The high bit of a septet byte is ignored on both the plain and the escape path.
    assert decode_septets(bytes((0xC1, 0x80))) == "A@"
    assert decode_septets(bytes((0x9B, 0x65, 0xC1))) == "€A"
    assert len(DEFAULT_ALPHABET) == 128 and set(EXTENSION_TABLE.values()) <= set(text)
    assert is_gsm7(text) and not is_gsm7("ą")


def test_eight_bit_data_is_kept_as_bytes() -> None:
    payload = bytes(range(0, 256, 7))
    message = decode_deliver(encode_deliver("+48600123012", payload, encoding="8bit", smsc_time=WHEN))
    assert message.encoding == "8bit"
    assert message.data == payload
    assert message.text == payload.decode("latin-1")


def test_alphanumeric_sender() -> None:
    pdu = encode_deliver("BluLog", "ALARM T1 8.5C", encoding="gsm7", smsc_time=WHEN)
    # TS 23.040 §9.1.2.5: 6 characters = 42 bits = 11 semi-octets, type D0, packed GSM-7.
    assert pdu.hex().upper()[16:34] == "040BD042769DF93E03"
    message = decode_deliver(pdu)
    assert message.sender == "BluLog"
    assert message.sender_type is AddressType.ALPHANUMERIC
    assert decode_deliver(encode_deliver("Efento[1]", "x", encoding="gsm7", smsc_time=WHEN)).sender == "Efento[1]"


def test_national_sender_and_no_smsc() -> None:
    pdu = encode_deliver("600123012", "x", encoding="gsm7", smsc_time=WHEN, smsc=None)
    assert pdu.hex().upper().startswith("0004" "09A1" "0610321")
    message = decode_deliver(pdu)
    assert message.smsc is None
    assert message.sender == "600123012" and message.sender_type is AddressType.NATIONAL


def test_negative_time_zone() -> None:
    # SCTS 26-01-15 07:05:00, zone octet 0A: sign bit + 20 quarters = UTC-5 (TS 23.040 §9.2.3.11).
    pdu = "07918406010013F0040B918406103210F20000" "62105170500" "00A" "01" "31"
    message = decode_deliver(pdu)
    assert message.text == "1"
    assert message.timestamp.isoformat() == "2026-01-15T07:05:00-05:00"
    zone = datetime.timezone(-datetime.timedelta(hours=3, minutes=45))
    when = datetime.datetime(2026, 1, 15, 7, 5, tzinfo=zone)
    assert decode_deliver(encode_deliver("+1", "x", encoding="gsm7", smsc_time=when)).timestamp == when


def test_concatenation_headers_and_fill_bits() -> None:
    eight = encode_deliver("+1", "A", encoding="gsm7", smsc_time=WHEN, concat=Concat(7, 2, 1))
    # UDL 8 septets = 7 for the 6-octet header (+1 fill bit) and one for "A" shifted by the fill bit.
    assert eight.hex().upper().endswith("08" "050003070201" "82")
    sixteen = encode_deliver("+1", "A", encoding="gsm7", smsc_time=WHEN, concat=Concat(0x1234, 3, 2, 16))
    # A 7-octet header is exactly 8 septets: no fill bits.
    assert sixteen.hex().upper().endswith("09" "0608041234030241")
    assert decode_deliver(eight).concat == Concat(7, 2, 1, 8)
    assert decode_deliver(sixteen).concat == Concat(0x1234, 3, 2, 16)
    assert decode_deliver(eight).text == decode_deliver(sixteen).text == "A"


def test_udh_unknown_elements_are_skipped_and_bad_concat_ignored() -> None:
    # UDH: IEI 0x24 (national language, length 1), then 8-bit concat ref 9 part 2 of 2; 8-bit data.
    head = "07918406010013F0440B918406103210F20004623010210354400"
    message = decode_deliver(head + "B" + "08" "240103" "0003090202" "FF" "00")
    assert message.concat == Concat(9, 2, 2) and message.data == b"\xff\x00"
    # TS 23.040 §9.2.3.24.1: a zero count or a number above the count voids the element.
    assert decode_deliver(head + "7" "05" "0003090203" "FF").concat is None
    assert decode_deliver(head + "7" "05" "0003090000" "FF").concat is None


def test_message_class_and_coding_groups() -> None:
    head = "00040B918406103210F200"
    scts = "62301021035440"
    assert decode_deliver(head + "F2" + scts + "0131").message_class == 2  # 1111: GSM-7, class 2
    flash = decode_deliver(head + "10" + scts + "0131")  # general, class 0 (flash)
    assert flash.message_class == 0 and flash.encoding == "gsm7"
    assert decode_deliver(head + "F6" + scts + "0131").encoding == "8bit"
    assert decode_deliver(head + "18" + scts + "020041").text == "A"  # UCS2 class 0
    assert decode_deliver(head + "E0" + scts + "020041").encoding == "ucs2"  # MWI store, UCS2
    assert decode_deliver(head + "C0" + scts + "0131").encoding == "gsm7"  # MWI discard
    # Compressed, reserved alphabet and reserved groups keep their octets as 8-bit data.
    for dcs in ("20", "0C", "80", "B5"):
        message = decode_deliver(head + dcs + scts + "0131")
        assert message.encoding == "8bit" and message.data == b"1"


@pytest.mark.parametrize(
    ("pdu", "error"),
    [
        ("", "SMSC address length"),
        ("0G", "hexadecimal"),
        ("0C91", "SMSC address length 12"),
        ("0001", "TP-MTI 1"),
        ("0004", "originating address length"),
        ("00041591", "originating address length 21"),
        ("00040B91840610", "inside originating address"),
        ("00040391F1F2", "filler nibble"),
        ("00040B918406103210F20000623010", "inside TP-SCTS"),
        ("00040B918406103210F20000623A1021035440" "00", "not BCD"),
        ("00040B918406103210F20000621340210354400131", "month must be"),
        ("00040B918406103210F20000623010210354400231", "inside TP-UD"),
        ("00040B918406103210F2000062301021035440013131", "1 octets follow"),
        ("00040B918406103210F2000062301021035440", "inside TP-UDL"),
        ("00040B918406103210F2000062301021035440A1", "exceeds 160 septets"),
        ("00040B918406103210F2000462301021035440" "8D", "exceeds 140 octets"),
        ("00440B918406103210F2000462301021035440" "00", "user data is empty"),
        ("00440B918406103210F2000462301021035440" "0206" "00", "overruns the user data"),
        ("00440B918406103210F2000462301021035440" "0302" "0003", "overruns the header"),
        ("00440B918406103210F2000462301021035440" "0201" "00", "inside an information element"),
        ("00440B918406103210F2000062301021035440" "01" "06", "overruns the user data"),
    ],
)
def test_every_decode_error_is_a_pdu_error(pdu: str, error: str) -> None:
    with pytest.raises(PduError, match=error):
        decode_deliver(pdu)


def test_garbled_ucs2_is_flagged() -> None:
    head = "00040B918406103210F20008623010210354400"
    odd = decode_deliver(head + "3" "004100")
    assert odd.garbled and odd.text == "A\ufffd"
    lone = decode_deliver(head + "2" "D83D")
    assert lone.garbled and lone.text == "\ufffd"
    assert not decode_deliver(head + "4" "D83DDE00").garbled


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"sender": ""}, "sender is empty"),
        ({"sender": "+" + "1" * 21}, "more than 20 digits"),
        ({"sender": "ABCDEFGHIJKL"}, "longer than 11"),
        ({"sender": "ą"}, "not in the GSM 7-bit"),
        ({"text": "x" * 161}, "161 septets"),
        ({"text": b"x"}, "carry text"),
        ({"encoding": "8bit"}, "carry bytes"),
        ({"encoding": "ucs2", "text": "x" * 71}, "142 octets"),
        ({"smsc_time": datetime.datetime(2026, 1, 1)}, "time zone"),
        ({"smsc_time": datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone(datetime.timedelta(minutes=10)))}, "quarter"),
        ({"smsc_time": datetime.datetime(1999, 1, 1, tzinfo=datetime.UTC)}, "year 1999"),
        ({"smsc": "+" + "1" * 21}, "too long"),
        ({"smsc": "+48x"}, "not a digit"),
        ({"concat": Concat(256, 2, 1)}, "8-bit reference"),
        ({"concat": Concat(70000, 2, 1, 16)}, "16-bit reference"),
        ({"concat": Concat(1, 2, 3)}, "part 3 of 2"),
    ],
)
def test_encoder_refuses_what_cannot_be_represented(kwargs: dict[str, object], error: str) -> None:
    arguments: dict[str, object] = {"sender": "+48600123012", "text": "x", "encoding": "gsm7", "smsc_time": WHEN}
    arguments.update(kwargs)
    sender, text = arguments.pop("sender"), arguments.pop("text")
    with pytest.raises(ValueError, match=error):
        encode_deliver(sender, text, **arguments)  # type: ignore[arg-type]


def test_split_fills_parts_to_capacity() -> None:
    assert [len(data) for _, data in split_for_concat("x" * 400, "gsm7", 5)] == [153, 153, 94]
    assert [len(data) for _, data in split_for_concat("x" * 400, "gsm7", 5, ref_bits=16)] == [152, 152, 96]
    assert [len(data) for _, data in split_for_concat("ą" * 140, "ucs2", 5)] == [134, 134, 12]
    assert [len(data) for _, data in split_for_concat("ą" * 140, "ucs2", 5, ref_bits=16)] == [132, 132, 16]
    assert [len(data) for _, data in split_for_concat(b"x" * 300, "8bit", 5)] == [134, 134, 32]
    # An escape pair never straddles two parts: 152 'x' then '€' (2 septets) moves '€' on.
    parts = split_for_concat("x" * 152 + "€", "gsm7", 5)
    assert [data[-2:] for _, data in parts] == [b"xx", b"\x1be"]
    assert [concat for concat, _ in parts] == [Concat(5, 2, 1), Concat(5, 2, 2)]
    assert split_for_concat("short", "gsm7", 1) == [(Concat(1, 1, 1), b"short")]


def test_split_into_a_requested_number_of_parts() -> None:
    parts = split_for_concat("abcdefghij", "gsm7", 300, ref_bits=16, parts=3)
    assert [data for _, data in parts] == [b"abcd", b"efg", b"hij"]
    assert {concat.total for concat, _ in parts} == {3}
    assert [data for _, data in split_for_concat("ab€", "gsm7", 1, parts=3)] == [b"a", b"b", b"\x1be"]
    with pytest.raises(ValueError, match="cannot be spread"):
        split_for_concat("ab", "gsm7", 1, parts=3)
    with pytest.raises(ValueError, match="does not fit 2 parts"):
        split_for_concat("x" * 400, "gsm7", 1, parts=2)
    with pytest.raises(ValueError, match="more than 255"):
        split_for_concat("x" * 153 * 256, "gsm7", 1)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_raise_only_pdu_error(data: bytes) -> None:
    try:
        decode_deliver(data)
    except PduError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 60), st.integers(0, 255), st.binary(min_size=1, max_size=3))
def test_mutated_valid_pdus_raise_only_pdu_error(position: int, value: int, tail: bytes) -> None:
    pdu = bytearray(encode_deliver("Efento", "x" * 20, encoding="gsm7", smsc_time=WHEN, concat=Concat(1, 2, 1)))
    pdu[position % len(pdu)] = value
    for candidate in (bytes(pdu), bytes(pdu) + tail, bytes(pdu[: position % len(pdu)])):
        try:
            decode_deliver(candidate)
        except PduError:
            pass


GSM7_CHARS = st.sampled_from([c for c in DEFAULT_ALPHABET if c != "\x1b"] + list(EXTENSION_TABLE.values()))
SENDERS = st.one_of(
    st.from_regex(r"\+[1-9][0-9]{6,14}", fullmatch=True),
    st.from_regex(r"[0-9]{3,12}", fullmatch=True),
    st.from_regex(r"[A-Za-z][A-Za-z0-9 ]{0,10}", fullmatch=True),
)
ZONES = st.integers(-48, 56).map(lambda q: datetime.timezone(datetime.timedelta(minutes=15 * q)))
TIMES = st.builds(
    lambda naive, zone: naive.replace(tzinfo=zone),
    st.datetimes(datetime.datetime(2000, 1, 1), datetime.datetime(2099, 12, 31)).map(lambda d: d.replace(microsecond=0)),
    ZONES,
)


@settings(max_examples=200, deadline=None)
@given(SENDERS, st.text(GSM7_CHARS, max_size=80), TIMES)
def test_gsm7_round_trip(sender: str, text: str, when: datetime.datetime) -> None:
    message = decode_deliver(encode_deliver(sender, text, encoding="gsm7", smsc_time=when))
    assert (message.sender, message.text, message.timestamp) == (sender, text, when)


@settings(max_examples=200, deadline=None)
@given(
    SENDERS,
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=70).filter(lambda t: len(t.encode("utf-16-be")) <= 140),
    TIMES,
)
def test_ucs2_round_trip(sender: str, text: str, when: datetime.datetime) -> None:
    message = decode_deliver(encode_deliver(sender, text, encoding="ucs2", smsc_time=when))
    assert (message.sender, message.text, message.encoding, message.garbled) == (sender, text, "ucs2", False)


@settings(max_examples=200, deadline=None)
@given(SENDERS, st.binary(max_size=140), TIMES)
def test_8bit_round_trip(sender: str, data: bytes, when: datetime.datetime) -> None:
    message = decode_deliver(encode_deliver(sender, data, encoding="8bit", smsc_time=when))
    assert (message.sender, message.data, message.timestamp) == (sender, data, when)


def test_raw_encoder_keeps_cut_payloads() -> None:
    pdu = encode_deliver_raw("+1", b"\x1b", encoding="gsm7", smsc_time=WHEN, concat=Concat(1, 2, 1))
    assert decode_deliver(pdu).data == b"\x1b"
