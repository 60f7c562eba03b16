"""AT command codec: replies, URCs interleaved in replies, every final result path, parsers."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_bridges.gsm.at import (
    MAX_LINE,
    AtBusyError,
    AtParseError,
    AtSession,
    Final,
    MessageStatus,
    Prompt,
    RegistrationStatus,
    Unexpected,
    Unsolicited,
    cme_meaning,
    cms_meaning,
    parse_cmgl,
    parse_cmgr,
    parse_cmti,
    parse_cpms,
    parse_creg,
    parse_csq,
    parse_ranges,
    split_args,
)

PDU = "07911326040000F0040B911346610089F60000208062917314080CC8329BFD065DDF72363904"


def run(session: AtSession, command: str, reply: bytes) -> list[object]:
    assert session.send(command) == command.encode() + b"\r"
    return list(session.feed(reply))


def test_reply_with_information_lines_and_echo() -> None:
    session = AtSession()
    events = run(session, "AT+CSQ", b"AT+CSQ\r\r\n+CSQ: 17,99\r\n\r\nOK\r\n")
    assert events == [Final(True, "OK", None, "ok", ("+CSQ: 17,99",), "AT+CSQ")]
    assert session.in_flight is None


def test_bytes_split_anywhere_give_the_same_events() -> None:
    reply = b"\r\n+CMGL: 1,0,,23\r\n" + PDU.encode() + b"\r\n+CMTI: \"SM\",2\r\n\r\nOK\r\n"
    for cut in range(len(reply)):
        session = AtSession()
        session.send("AT+CMGL=4")
        events = session.feed(reply[:cut]) + session.feed(reply[cut:])
        assert events[0] == Unsolicited("+CMTI", '"SM",2', '+CMTI: "SM",2')
        assert events[1].lines == ("+CMGL: 1,0,,23", PDU)  # type: ignore[union-attr]


def test_urc_interleaved_in_a_reply_is_delivered_and_the_reply_intact() -> None:
    session = AtSession()
    reply = (
        b"\r\n+CMGL: 1,1,,23\r\n" + PDU.encode() + b"\r\n"
        b"\r\n+CMTI: \"SM\",3\r\n"
        b"RING\r\n"
        b"\r\n+CMGL: 2,0,,23\r\n" + PDU.encode() + b"\r\n"
        b"\r\n^BOOT:1,0,0,0,0\r\n"
        b"\r\nOK\r\n"
    )
    events = run(session, "AT+CMGL=4", reply)
    assert [type(e).__name__ for e in events] == ["Unsolicited", "Unsolicited", "Unsolicited", "Final"]
    assert [e.code for e in events[:3]] == ["+CMTI", "RING", "^BOOT"]  # type: ignore[attr-defined]
    final = events[3]
    assert isinstance(final, Final) and final.ok
    listed = parse_cmgl(final.lines)
    assert [(m.index, m.status, m.length, m.pdu) for m in listed] == [
        (1, MessageStatus.REC_READ, 23, PDU),
        (2, MessageStatus.REC_UNREAD, 23, PDU),
    ]
    assert parse_cmti(events[0].args) == ("SM", 3)  # type: ignore[attr-defined]


def test_creg_prefix_of_the_command_in_flight_is_an_information_line() -> None:
    session = AtSession()
    (final,) = run(session, "AT+CREG?", b"\r\n+CREG: 0,1\r\n\r\nOK\r\n")
    assert isinstance(final, Final) and final.lines == ("+CREG: 0,1",)
    registration = parse_creg(final.lines[0][len("+CREG:") :], solicited=True)
    assert registration.n == 0 and registration.status is RegistrationStatus.HOME
    assert registration.status.registered
    # The same text with no command in flight, or inside another reply, is a notification.
    (urc,) = session.feed(b"\r\n+CREG: 2\r\n")
    assert urc == Unsolicited("+CREG", "2", "+CREG: 2")
    assert parse_creg(urc.args, solicited=False).status is RegistrationStatus.SEARCHING  # type: ignore[union-attr]
    events = run(session, "AT+CSQ", b"\r\n+CREG: 5,\"1A2B\",\"00C3D4\"\r\n+CSQ: 31,0\r\nOK\r\n")
    assert isinstance(events[0], Unsolicited) and events[1].lines == ("+CSQ: 31,0",)  # type: ignore[union-attr]
    roaming = parse_creg(events[0].args, solicited=False)
    assert (roaming.status, roaming.lac, roaming.ci) == (RegistrationStatus.ROAMING, "1A2B", "00C3D4")


def test_cpin_answer_is_the_reply_but_a_cpin_at_boot_a_notification() -> None:
    session = AtSession()
    (final,) = run(session, "AT+CPIN?", b"\r\n+CPIN: READY\r\n\r\nOK\r\n")
    assert final == Final(True, "OK", None, "ok", ("+CPIN: READY",), "AT+CPIN?")
    events = run(session, "AT+CGMI", b"\r\n+CPIN: NOT READY\r\nSIMCOM_Ltd\r\n\r\nOK\r\n")
    assert events[0] == Unsolicited("+CPIN", "NOT READY", "+CPIN: NOT READY")
    assert events[1].lines == ("SIMCOM_Ltd",)  # type: ignore[union-attr]


def test_cmt_carries_the_pdu_line_that_follows() -> None:
    session = AtSession()
    events = session.feed(b"\r\n+CMT: ,23\r\n")
    assert events == []  # the PDU line has not come yet
    (urc,) = session.feed(PDU.encode() + b"\r\n")
    assert urc == Unsolicited("+CMT", ",23", "+CMT: ,23", PDU)
    # A notification between header and PDU is delivered; the PDU still pairs with its header.
    events = session.feed(b"\r\n+CMT: ,23\r\nRDY\r\n" + PDU.encode() + b"\r\n")
    assert [e.code for e in events] == ["RDY", "+CMT"]  # type: ignore[union-attr]
    assert events[1].pdu == PDU  # type: ignore[union-attr]
    # A final result where the PDU should be: the header is delivered without one.
    session.send("AT")
    events = session.feed(b"+CDS: 25\r\nOK\r\n")
    assert events == [Unsolicited("+CDS", "25", "+CDS: 25", None), Final(True, "OK", None, "ok", (), "AT")]
    # A second header before the body: the first is delivered without its body.
    events = session.feed(b"+CMT: ,23\r\n+CMT: ,23\r\n" + PDU.encode() + b"\r\n")
    assert [e.pdu for e in events] == [None, PDU]  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("line", "kind", "code", "meaning"),
    [
        ("OK", "OK", None, "ok"),
        ("ERROR", "ERROR", None, "error"),
        ("NO CARRIER", "ERROR", None, "no carrier"),
        ("BUSY", "ERROR", None, "busy"),
        ("NO ANSWER", "ERROR", None, "no answer"),
        ("NO DIALTONE", "ERROR", None, "no dialtone"),
        ("+CMS ERROR: 322", "CMS", 322, "memory full"),
        ("+CMS ERROR: 515", "CMS", 515, "please wait, initialisation or command processing in progress"),
        ("+CMS ERROR: 321", "CMS", 321, "invalid memory index"),
        ("+CMS ERROR: 42", "CMS", 42, "congestion"),
        ("+CMS ERROR: 3", "CMS", 3, "network cause 3 (TS 24.011 annex E-2)"),
        ("+CMS ERROR: 150", "CMS", 150, "TP-FCS 0x96 (TS 23.040 §9.2.3.22)"),
        ("+CMS ERROR: 600", "CMS", 600, "manufacturer-specific error 600"),
        ("+CMS ERROR: 400", "CMS", 400, "unknown +CMS error 400"),
        ("+CMS ERROR: memory full", "CMS", 322, "memory full"),
        ("+CMS ERROR: something odd", "CMS", None, "something odd"),
        ("+CME ERROR: 14", "CME", 14, "SIM busy"),
        ("+CME ERROR: 10", "CME", 10, "SIM not inserted"),
        ("+CME ERROR: 999", "CME", 999, "unknown +CME error 999"),
        ("+CME ERROR: SIM busy", "CME", 14, "SIM busy"),
        ("+CME ERROR:", "CME", None, "unspecified"),
    ],
)
def test_every_final_result(line: str, kind: str, code: int | None, meaning: str) -> None:
    session = AtSession()
    (final,) = run(session, "AT+CMGR=1", f"\r\n{line}\r\n".encode())
    assert isinstance(final, Final)
    assert (final.ok, final.kind, final.code, final.meaning) == (kind == "OK", kind, code, meaning)
    assert final.command == "AT+CMGR=1" and session.in_flight is None


def test_meaning_tables() -> None:
    assert cms_meaning(500) == "unknown error" and cme_meaning(100) == "unknown"
    assert cme_meaning(0) == "phone failure" and cms_meaning(314) == "(U)SIM busy"


def test_one_command_at_a_time_and_cancel() -> None:
    session = AtSession()
    session.send("AT+CMGR=3")
    with pytest.raises(AtBusyError):
        session.send("AT")
    session.cancel()
    assert session.in_flight is None
    # The late reply of the abandoned command comes out as unexpected lines.
    assert session.feed(b"+CMGR: 0,,23\r\nOK\r\n") == [Unexpected("+CMGR: 0,,23"), Unexpected("OK")]
    for bad in ("", "AT\r", "AT\nAT"):
        with pytest.raises(ValueError):
            session.send(bad)


def test_prompt_and_body() -> None:
    session = AtSession()
    assert run(session, "AT+CMGS=23", b"AT+CMGS=23\r\r\n> ") == [Prompt("AT+CMGS=23")]
    assert session.send_body("0011AB") == b"0011AB\x1a"
    events = session.feed(b"0011AB\x1a\r\n+CMGS: 12\r\n\r\nOK\r\n")
    assert events == [Final(True, "OK", None, "ok", ("+CMGS: 12",), "AT+CMGS=23")]
    with pytest.raises(RuntimeError):
        session.send_body("00")


def test_overlong_line_is_cut() -> None:
    session = AtSession()
    events = session.feed(b"x" * (MAX_LINE + 10))
    assert events == [Unexpected("x" * MAX_LINE)]
    assert session.feed(b"\r\n") == [Unexpected("x" * 10)]


def test_unsolicited_words_and_prefixes() -> None:
    session = AtSession()
    lines = b"RDY\r\n+CFUN: 1\r\n+CPIN: READY\r\nSMS Ready\r\nCall Ready\r\n+CSQN: 20,0\r\n+CDSI: \"SM\",4\r\n"
    assert [e.code for e in session.feed(lines)] == [  # type: ignore[union-attr]
        "RDY", "+CFUN", "+CPIN", "SMS Ready", "Call Ready", "+CSQN", "+CDSI",
    ]  # fmt: skip


def test_parsers() -> None:
    assert split_args('"SM",3,"a,b", x ,') == ["SM", "3", "a,b", "x", ""]
    assert split_args("") == []
    with pytest.raises(AtParseError):
        split_args('"SM,3')
    signal = parse_csq("17,99")
    assert (signal.rssi, signal.dbm, signal.ber) == (17, -79, None)
    assert parse_csq("99,99").dbm is None and parse_csq("0,0").dbm == -113 and parse_csq("31,7").dbm == -51
    for bad in ("32,0", "17", "a,b", "17,8"):
        with pytest.raises(AtParseError):
            parse_csq(bad)
    query = parse_cpms('"SM",3,20,"SM",3,20,"ME",0,50')
    assert [(s.storage, s.used, s.total) for s in query] == [("SM", 3, 20), ("SM", 3, 20), ("ME", 0, 50)]
    assert [(s.storage, s.used, s.total) for s in parse_cpms("3,20,3,20")] == [(None, 3, 20), (None, 3, 20)]
    with pytest.raises(AtParseError):
        parse_cpms("3,20,3")
    assert parse_ranges("(0-2),(0-3),(0,2),(0-2),(0,1)") == [
        frozenset({0, 1, 2}), frozenset({0, 1, 2, 3}), frozenset({0, 2}), frozenset({0, 1, 2}), frozenset({0, 1}),
    ]  # fmt: skip
    for bad in ("0-2", "(2-0)", "(a)"):
        with pytest.raises(AtParseError):
            parse_ranges(bad)
    read = parse_cmgr(["+CMGR: 0,,23", PDU])
    assert read is not None and (read.status, read.length, read.pdu) == (MessageStatus.REC_UNREAD, 23, PDU)
    assert parse_cmgr([]) is None and parse_cmgr(["+CMGR: 0,,0"]) is None
    for bad_lines in (["+CMGR: 0,,23"], ["+CMGR: 9,,23", PDU], ["+CMGL: 0,,23", PDU], ["+CMGR: 1"]):
        with pytest.raises(AtParseError):
            parse_cmgr(bad_lines)
    with pytest.raises(AtParseError):
        parse_cmgl(["+CMGL: 1,0,,23"])
    with pytest.raises(AtParseError):
        parse_cmti('"SM"')
    with pytest.raises(AtParseError):
        parse_creg("", solicited=False)
    with pytest.raises(AtParseError):
        parse_creg("0,11", solicited=True)


LINES = st.sampled_from(
    [
        "OK", "ERROR", "+CMS ERROR: 322", "+CME ERROR: 14", "+CMS ERROR: x", "RING", "RDY", "SMS Ready",
        '+CMTI: "SM",1', "+CMT: ,23", PDU, "+CREG: 0,1", "+CREG: 1", "+CSQ: 17,99", "+CMGL: 1,0,,23",
        "> ", ">", "AT+CSQ", "", "\x00\xff", "+", ":", "^BOOT:", "+CMS ERROR: 99999999999999999999",
    ]
)  # fmt: skip
COMMANDS = st.sampled_from(["AT", "AT+CSQ", "AT+CREG?", "AT+CMGS=23", "AT+CMGL=4", "ATE0", "AT^SYSINFO"])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.binary(max_size=40), LINES.map(lambda s: s.encode("latin-1") + b"\r\n"), COMMANDS)))
def test_random_input_never_raises(steps: list[bytes | str]) -> None:
    session = AtSession()
    for step in steps:
        if isinstance(step, str):
            if session.in_flight is None:
                session.send(step)
            continue
        for event in session.feed(step):
            assert isinstance(event, Unsolicited | Final | Prompt | Unexpected)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_parsers_raise_only_parse_errors(text: str) -> None:
    for parse in (parse_cmti, parse_csq, parse_cpms, parse_ranges, split_args):
        try:
            parse(text)  # type: ignore[operator]
        except AtParseError:
            pass
    for solicited in (True, False):
        try:
            parse_creg(text, solicited=solicited)
        except AtParseError:
            pass
    for lines in ([text], [text, text]):
        try:
            parse_cmgl(lines)
            parse_cmgr(lines)
        except AtParseError:
            pass
