"""Sans-IO AT command codec for GSM modems (3GPP TS 27.007 / TS 27.005, ITU-T V.250).

Typical use::

    session = AtSession()
    port.write(session.send("AT+CMGL=4"))
    for event in session.feed(port.read(4096)):
        match event:
            case Unsolicited(code="+CMTI"):
                storage, index = parse_cmti(event.args)
            case Final(ok=True):
                messages = parse_cmgl(event.lines)
            case Final():
                log(event.kind, event.code, event.meaning)

Rules the codec keeps:

* One command is in flight at a time (V.250 §5.2: the modem answers a command line before it
  takes the next); :meth:`AtSession.send` refuses a second one.
* Every line is first checked against the table of unsolicited result codes, so a notification
  arriving inside a reply is delivered as :class:`Unsolicited` and not mistaken for reply text.
  The one exception: a line carrying the prefix of the command in flight (``+CREG: 0,1`` while
  ``AT+CREG?`` waits) is that command's information line. TS 27.007 §7.2 gives the solicited
  ``+CREG`` the ``<n>`` first, so the two forms differ only by content; a real registration URC
  landing inside that reply is taken as the reply, which holds the same, current state.
* The codec is written for PDU mode (``AT+CMGF=0``): message bodies are hexadecimal lines and so
  can never look like a result code. ``+CMT``, ``+CDS`` and ``+CBM`` notifications carry their
  PDU on the next line (TS 27.005 §3.4.1), which is attached to the :class:`Unsolicited` event.
* Echo (``ATE1``): the echoed command line, seen before the reply, is dropped.
"""

from __future__ import annotations

import re
from enum import IntEnum
from typing import Literal

import msgspec

#: Longest line kept while waiting for its terminator; a longer run is cut into a line so a
#: modem spewing garbage cannot grow the buffer. A PDU line is at most 2 * 176 hex characters.
MAX_LINE = 4096


class Unsolicited(msgspec.Struct, frozen=True):
    """An unsolicited result code. ``args`` is the text after ``code: `` (empty for ``RING``).

    ``pdu`` is the line that follows ``+CMT`` / ``+CDS`` / ``+CBM`` (None if a result code came
    where it should have been).
    """

    code: str
    args: str
    line: str
    pdu: str | None = None


class Final(msgspec.Struct, frozen=True):
    """The final result of the command in flight, with the information lines it produced.

    ``kind`` is ``OK``, ``ERROR`` (also ``NO CARRIER``, ``BUSY``, ``NO ANSWER``, ``NO DIALTONE``),
    ``CMS`` (TS 27.005 §3.2.5) or ``CME`` (TS 27.007 §9.2). ``code`` is the number of a
    ``+CMS``/``+CME`` error (also when the modem sent the verbose text, ``AT+CMEE=2``, and the
    text is a known one); ``meaning`` says it in words.
    """

    ok: bool
    kind: Literal["OK", "ERROR", "CMS", "CME"]
    code: int | None
    meaning: str
    lines: tuple[str, ...]
    command: str


class Prompt(msgspec.Struct, frozen=True):
    """The ``> `` prompt (TS 27.005 §3.5.1): send the PDU with :meth:`AtSession.send_body`."""

    command: str


class Unexpected(msgspec.Struct, frozen=True):
    """A line that is no notification and arrived with no command in flight (e.g. a late reply)."""

    line: str


Event = Unsolicited | Final | Prompt | Unexpected


class AtBusyError(RuntimeError):
    """A command was sent while another is still waiting for its final result."""


class AtParseError(ValueError):
    """An information line or notification does not have the documented shape."""


#: Unsolicited result codes with a ``: `` argument part (TS 27.005 §3.4.1, TS 27.007, vendors).
URC_PREFIXES = frozenset(
    {
        "+CMTI", "+CMT", "+CDSI", "+CDS", "+CBMI", "+CBM",  # TS 27.005 §3.4.1 new message
        "+CREG", "+CGREG", "+CEREG", "+C5GREG",  # TS 27.007 §7.2, §10.1.20/21 registration
        "+CPIN", "+CFUN", "+CIEV", "+CRING", "+CLIP", "+CCWA", "+CUSD", "+CTZV", "+CTZE",
        "+CSQN", "+CPINR", "+QIND", "+QUSIM", "^BOOT", "^RSSI", "^MODE", "^SRVST", "^SIMST",
        "^SYSSTART", "+PACSP", "*PSUTTZ", "+SIMCARD",
    }
)  # fmt: skip
#: Bare unsolicited result codes: the whole line is the code.
URC_WORDS = frozenset(
    {
        "RING", "RDY", "SMS Ready", "Call Ready", "PB DONE", "^SYSSTART", "NORMAL POWER DOWN",
        "UNDER-VOLTAGE POWER DOWN", "UNDER-VOLTAGE WARNNING", "OVER-VOLTAGE POWER DOWN",
    }
)  # fmt: skip
#: URCs whose message PDU (or text) is the next line (TS 27.005 §3.4.1).
URC_WITH_BODY = frozenset({"+CMT", "+CDS", "+CBM"})
#: Commands answered with the ``> `` prompt before their body (TS 27.005 §3.5).
PROMPT_COMMANDS = frozenset({"+CMGS", "+CMGW", "+CMGC"})

#: TS 27.005 §3.2.5 ``+CMS ERROR`` values; 0..127 are TS 24.011 Annex E-2 RP causes and 128..255
#: TS 23.040 §9.2.3.22 TP-FCS values. 512 and up are manufacturer specific: 515 is the widely
#: used "initialising / busy, please wait".
CMS_ERRORS: dict[int, str] = {
    1: "unassigned (unallocated) number",
    8: "operator determined barring",
    10: "call barred",
    21: "short message transfer rejected",
    27: "destination out of service",
    28: "unidentified subscriber",
    29: "facility rejected",
    30: "unknown subscriber",
    38: "network out of order",
    41: "temporary failure",
    42: "congestion",
    47: "resources unavailable, unspecified",
    50: "requested facility not subscribed",
    69: "requested facility not implemented",
    81: "invalid short message transfer reference value",
    95: "invalid message, unspecified",
    96: "invalid mandatory information",
    97: "message type non-existent or not implemented",
    98: "message not compatible with short message protocol state",
    99: "information element non-existent or not implemented",
    111: "protocol error, unspecified",
    127: "interworking, unspecified",
    128: "telematic interworking not supported",
    129: "short message type 0 not supported",
    130: "cannot replace short message",
    143: "unspecified TP-PID error",
    144: "data coding scheme (alphabet) not supported",
    145: "message class not supported",
    159: "unspecified TP-DCS error",
    160: "command cannot be actioned",
    161: "command unsupported",
    175: "unspecified TP-Command error",
    176: "TPDU not supported",
    192: "SC busy",
    193: "no SC subscription",
    194: "SC system failure",
    195: "invalid SME address",
    196: "destination SME barred",
    197: "SM rejected - duplicate SM",
    198: "TP-VPF not supported",
    199: "TP-VP not supported",
    208: "(U)SIM SMS storage full",
    209: "no SMS storage capability in (U)SIM",
    210: "error in MS",
    211: "memory capacity exceeded",
    212: "(U)SIM application toolkit busy",
    213: "(U)SIM data download error",
    255: "unspecified error cause",
    300: "ME failure",
    301: "SMS service of ME reserved",
    302: "operation not allowed",
    303: "operation not supported",
    304: "invalid PDU mode parameter",
    305: "invalid text mode parameter",
    310: "(U)SIM not inserted",
    311: "(U)SIM PIN required",
    312: "PH-(U)SIM PIN required",
    313: "(U)SIM failure",
    314: "(U)SIM busy",
    315: "(U)SIM wrong",
    316: "(U)SIM PUK required",
    317: "(U)SIM PIN2 required",
    318: "(U)SIM PUK2 required",
    320: "memory failure",
    321: "invalid memory index",
    322: "memory full",
    330: "SMSC address unknown",
    331: "no network service",
    332: "network timeout",
    340: "no +CNMA acknowledgement expected",
    500: "unknown error",
    512: "manufacturer specific: MM establishment failure / user abort",
    513: "manufacturer specific: lower layer failure / unable to store",
    514: "manufacturer specific: CP error / invalid status",
    515: "please wait, initialisation or command processing in progress",
}

#: TS 27.007 §9.2.1 / §9.2.2 ``+CME ERROR`` values.
CME_ERRORS: dict[int, str] = {
    0: "phone failure",
    1: "no connection to phone",
    2: "phone-adaptor link reserved",
    3: "operation not allowed",
    4: "operation not supported",
    5: "PH-SIM PIN required",
    6: "PH-FSIM PIN required",
    7: "PH-FSIM PUK required",
    10: "SIM not inserted",
    11: "SIM PIN required",
    12: "SIM PUK required",
    13: "SIM failure",
    14: "SIM busy",
    15: "SIM wrong",
    16: "incorrect password",
    17: "SIM PIN2 required",
    18: "SIM PUK2 required",
    20: "memory full",
    21: "invalid index",
    22: "not found",
    23: "memory failure",
    24: "text string too long",
    25: "invalid characters in text string",
    26: "dial string too long",
    27: "invalid characters in dial string",
    30: "no network service",
    31: "network timeout",
    32: "network not allowed - emergency calls only",
    40: "network personalization PIN required",
    41: "network personalization PUK required",
    42: "network subset personalization PIN required",
    43: "network subset personalization PUK required",
    44: "service provider personalization PIN required",
    45: "service provider personalization PUK required",
    46: "corporate personalization PIN required",
    47: "corporate personalization PUK required",
    48: "hidden key required",
    49: "EAP method not supported",
    50: "incorrect parameters",
    100: "unknown",
    103: "illegal MS",
    106: "illegal ME",
    107: "GPRS services not allowed",
    111: "PLMN not allowed",
    112: "location area not allowed",
    113: "roaming not allowed in this location area",
    132: "service option not supported",
    133: "requested service option not subscribed",
    134: "service option temporarily out of order",
    148: "unspecified GPRS error",
    149: "PDP authentication failure",
    150: "invalid mobile class",
}

_CMS_BY_TEXT = {text.lower(): code for code, text in CMS_ERRORS.items()}
_CME_BY_TEXT = {text.lower(): code for code, text in CME_ERRORS.items()}
# V.250 §5.7.1 final result codes other than OK that end a command unsuccessfully.
_ERROR_WORDS = {
    "ERROR": "error",
    "NO CARRIER": "no carrier",
    "BUSY": "busy",
    "NO ANSWER": "no answer",
    "NO DIALTONE": "no dialtone",
}
_COMMAND_PREFIX = re.compile(r"^AT([+^$%#*][A-Z0-9]+)", re.IGNORECASE)
_PREFIXED_LINE = re.compile(r"^([+^$%#*][A-Za-z0-9]+):\s?(.*)$")


def cms_meaning(code: int) -> str:
    """Words for a ``+CMS ERROR`` number, with the range's meaning when it is not in the table."""
    if code in CMS_ERRORS:
        return CMS_ERRORS[code]
    if 0 <= code <= 127:
        return f"network cause {code} (TS 24.011 annex E-2)"
    if 128 <= code <= 255:
        return f"TP-FCS {code:#04x} (TS 23.040 §9.2.3.22)"
    if code >= 512:
        return f"manufacturer-specific error {code}"
    return f"unknown +CMS error {code}"


def cme_meaning(code: int) -> str:
    """Words for a ``+CME ERROR`` number."""
    return CME_ERRORS.get(code, f"unknown +CME error {code}")


def _final(line: str, command: str) -> Final | None:
    """The final result code the line is, or None (V.250 §5.7.1, TS 27.005 §3.2.5, 27.007 §9.2)."""
    if line == "OK":
        return Final(True, "OK", None, "ok", (), command)
    if line in _ERROR_WORDS:
        return Final(False, "ERROR", None, _ERROR_WORDS[line], (), command)
    for marker, kind, table, by_text, meaning in (
        ("+CMS ERROR:", "CMS", CMS_ERRORS, _CMS_BY_TEXT, cms_meaning),
        ("+CME ERROR:", "CME", CME_ERRORS, _CME_BY_TEXT, cme_meaning),
    ):
        if line.startswith(marker):
            value = line[len(marker) :].strip()
            if value.isdigit() and value.isascii():
                code = int(value)
                return Final(False, kind, code, meaning(code), (), command)  # type: ignore[arg-type]
            # AT+CMEE=2 reports the error in words; map known words back to the number.
            code_or_none = by_text.get(value.lower())
            return Final(False, kind, code_or_none, value or "unspecified", (), command)  # type: ignore[arg-type]
    return None


def _urc(line: str) -> Unsolicited | None:
    """The unsolicited result code the line is, by the URC tables, or None."""
    if line in URC_WORDS:
        return Unsolicited(line, "", line)
    match = _PREFIXED_LINE.match(line)
    if match and match.group(1).upper() in URC_PREFIXES:
        return Unsolicited(match.group(1).upper(), match.group(2), line)
    return None


class AtSession:
    """State of one AT command channel: line splitting, the command in flight, echo, URCs."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._command: str | None = None
        self._prefix: str | None = None
        self._lines: list[str] = []
        self._prompted = False
        self._body_echo: str | None = None
        self._body_for: Unsolicited | None = None

    @property
    def in_flight(self) -> str | None:
        """The command waiting for its final result, if any."""
        return self._command

    def send(self, command: str) -> bytes:
        """Start a command and return the bytes to write (the command line ended by CR).

        Raises :class:`AtBusyError` while another command is in flight, ``ValueError`` for a
        command that is not one line.
        """
        if self._command is not None:
            raise AtBusyError(f"{self._command!r} is still waiting for its final result")
        if not command or any(char in command for char in "\r\n\x1a\x1b"):
            raise ValueError(f"{command!r} is not a single command line")
        match = _COMMAND_PREFIX.match(command)
        self._command = command
        self._prefix = match.group(1).upper() if match else None
        self._lines = []
        self._prompted = False
        return command.encode("ascii", errors="strict") + b"\r"

    def send_body(self, body: str) -> bytes:
        """After a :class:`Prompt`, the bytes that send ``body`` (the PDU in hex) ended by Ctrl-Z."""
        if not self._prompted:
            raise RuntimeError("no > prompt is waiting for a message body")
        self._prompted = False
        self._body_echo = body.upper()
        return body.encode("ascii") + b"\x1a"

    def cancel(self) -> None:
        """Give up on the command in flight (the caller's timeout ran out).

        Lines of a reply that arrives later come out as :class:`Unexpected` — or, if a new command
        was sent meanwhile, are taken for its reply: V.250 has no command tags, so a caller that
        cancels should also resynchronise (e.g. send ``AT`` until ``OK``).
        """
        self._command = None
        self._prefix = None
        self._lines = []
        self._prompted = False
        self._body_echo = None

    def feed(self, data: bytes) -> list[Event]:
        """Take bytes read from the modem; return the events they complete, in order."""
        self._buffer += data
        events: list[Event] = []
        while True:
            cut = _line_end(self._buffer)
            if cut is None:
                break
            raw = bytes(self._buffer[:cut])
            del self._buffer[: cut + 1]
            line = raw.decode("utf-8", errors="replace").strip()
            if line:
                self._line(line, events)
        self._check_prompt(events)
        return events

    def _check_prompt(self, events: list[Event]) -> None:
        # TS 27.005 §3.5.1: the prompt is "<CR><LF>> " with no line end after it.
        if self._command is not None and self._prefix in PROMPT_COMMANDS and not self._prompted:
            if self._buffer.strip(b"\r\n ") == b">":
                self._buffer.clear()
                self._prompted = True
                events.append(Prompt(self._command))

    def _line(self, line: str, events: list[Event]) -> None:
        if self._body_for is not None:
            header = self._body_for
            final = _final(line, self._command or "")
            if final is None and _urc(line) is None:
                self._body_for = None
                events.append(msgspec.structs.replace(header, pdu=line))
                return
            if final is not None:
                self._body_for = None
                events.append(header)
        if self._command is not None and self._prefix and line.upper().startswith(self._prefix + ":"):
            self._lines.append(line)
            return
        urc = _urc(line)
        if urc is not None:
            if urc.code in URC_WITH_BODY:
                if self._body_for is not None:
                    events.append(self._body_for)  # a second header: the first lost its body
                self._body_for = urc
            else:
                events.append(urc)
            return
        if self._command is None:
            events.append(Unexpected(line))
            return
        final = _final(line, self._command)
        if final is not None:
            events.append(msgspec.structs.replace(final, lines=tuple(self._lines)))
            self.cancel()
            return
        echo = line.rstrip("\x1a").upper()  # the body's echo ends with the Ctrl-Z that sent it
        if not self._lines and echo in (self._command.upper(), self._body_echo):
            return  # the modem's echo (ATE1) of the command line or of the message body
        self._lines.append(line)


def _line_end(buffer: bytearray) -> int | None:
    """Index of the first CR or LF, or a forced cut when a line grows past :data:`MAX_LINE`."""
    cr = buffer.find(b"\r")
    lf = buffer.find(b"\n")
    ends = [index for index in (cr, lf) if index >= 0]
    if ends:
        return min(ends)
    if len(buffer) > MAX_LINE:
        buffer.insert(MAX_LINE, 0x0A)
        return MAX_LINE
    return None


# ---------------------------------------------------------------------------------------------
# Parsers for the information lines and notifications the GSM link uses.

def split_args(args: str) -> list[str]:
    """Split a comma-separated argument list, unquoting ``"strings"`` (commas inside them stay)."""
    if not args.strip():
        return []
    tokens: list[str] = []
    current: list[str] = []
    quoted = was_quoted = False
    for char in args:
        if char == '"':
            quoted = not quoted
            was_quoted = True
        elif char == "," and not quoted:
            tokens.append("".join(current) if was_quoted else "".join(current).strip())
            current, was_quoted = [], False
        else:
            current.append(char)
    if quoted:
        raise AtParseError(f"unbalanced quote in arguments {args!r}")
    tokens.append("".join(current) if was_quoted else "".join(current).strip())
    return tokens


def _int(token: str, what: str) -> int:
    if not (token.isascii() and token.isdigit()):
        raise AtParseError(f"{what} {token!r} is not a number")
    return int(token)


def _args_of(line: str, prefix: str) -> str:
    """The argument text of an information line ``PREFIX: args``."""
    if not line.upper().startswith(prefix + ":"):
        raise AtParseError(f"{line!r} is not a {prefix} line")
    return line[len(prefix) + 1 :].strip()


def parse_cmti(args: str) -> tuple[str, int]:
    """``+CMTI: <mem>,<index>`` (TS 27.005 §3.4.1): the storage and index of a new message."""
    tokens = split_args(args)
    if len(tokens) != 2:
        raise AtParseError(f"+CMTI arguments {args!r} are not <mem>,<index>")
    return tokens[0], _int(tokens[1], "+CMTI index")


class MessageStatus(IntEnum):
    """TS 27.005 §3.1 ``<stat>`` in PDU mode."""

    REC_UNREAD = 0
    REC_READ = 1
    STO_UNSENT = 2
    STO_SENT = 3
    ALL = 4


class ListedMessage(msgspec.Struct, frozen=True):
    """One ``+CMGL`` entry in PDU mode: ``<index>,<stat>,[<alpha>],<length>`` and its PDU line."""

    index: int
    status: MessageStatus
    length: int
    pdu: str


class ReadMessage(msgspec.Struct, frozen=True):
    """A ``+CMGR`` reply in PDU mode: ``<stat>,[<alpha>],<length>`` and its PDU line."""

    status: MessageStatus
    length: int
    pdu: str


def _status(token: str) -> MessageStatus:
    value = _int(token, "<stat>")
    try:
        return MessageStatus(value)
    except ValueError:
        raise AtParseError(f"<stat> {value} is outside 0..4") from None


def parse_cmgl(lines: tuple[str, ...] | list[str]) -> list[ListedMessage]:
    """Pair each ``+CMGL:`` header with the PDU line after it (TS 27.005 §3.4.2, PDU mode)."""
    out: list[ListedMessage] = []
    index = 0
    while index < len(lines):
        tokens = split_args(_args_of(lines[index], "+CMGL"))
        if len(tokens) < 3 or index + 1 >= len(lines):
            raise AtParseError(f"+CMGL entry {lines[index]!r} lacks its fields or its PDU line")
        out.append(
            ListedMessage(
                index=_int(tokens[0], "+CMGL index"),
                status=_status(tokens[1]),
                length=_int(tokens[-1], "+CMGL length"),
                pdu=lines[index + 1],
            )
        )
        index += 2
    return out


def parse_cmgr(lines: tuple[str, ...] | list[str]) -> ReadMessage | None:
    """A ``+CMGR`` reply (TS 27.005 §3.4.3, PDU mode); None when the slot was empty.

    Modems answer a read of an empty index with a bare ``OK`` (or ``+CMGR: 0,,0`` and no PDU).
    """
    if not lines:
        return None
    tokens = split_args(_args_of(lines[0], "+CMGR"))
    if len(tokens) < 2:
        raise AtParseError(f"+CMGR header {lines[0]!r} lacks <stat> or <length>")
    length = _int(tokens[-1], "+CMGR length")
    if len(lines) < 2:
        if length == 0:
            return None
        raise AtParseError("+CMGR reply has no PDU line")
    return ReadMessage(status=_status(tokens[0]), length=length, pdu=lines[1])


class SignalQuality(msgspec.Struct, frozen=True):
    """``+CSQ: <rssi>,<ber>`` (TS 27.007 §8.5); ``dbm``/``ber`` None when the modem says 99."""

    rssi: int
    ber: int | None
    dbm: int | None


def parse_csq(args: str) -> SignalQuality:
    """TS 27.007 §8.5: rssi 0 is -113 dBm or less, 1 is -111, 2..30 step 2 dB, 31 is -51 or more."""
    tokens = split_args(args)
    if len(tokens) != 2:
        raise AtParseError(f"+CSQ arguments {args!r} are not <rssi>,<ber>")
    rssi, ber = _int(tokens[0], "rssi"), _int(tokens[1], "ber")
    if not (rssi <= 31 or rssi == 99) or not (ber <= 7 or ber == 99):
        raise AtParseError(f"+CSQ values {rssi},{ber} are out of range")
    return SignalQuality(rssi, None if ber == 99 else ber, None if rssi == 99 else -113 + 2 * rssi)


class StorageUsage(msgspec.Struct, frozen=True):
    """One memory of ``+CPMS``: its name (when the modem gave it), used and total slots."""

    storage: str | None
    used: int
    total: int


def parse_cpms(args: str) -> list[StorageUsage]:
    """``+CPMS`` (TS 27.005 §3.2.2): ``"SM",3,20,...`` from the query, ``3,20,...`` from the set."""
    tokens = split_args(args)
    named = bool(tokens) and not tokens[0].isdigit()
    width = 3 if named else 2
    if not tokens or len(tokens) % width:
        raise AtParseError(f"+CPMS arguments {args!r} are not (<mem>,)<used>,<total> groups")
    out = []
    for start in range(0, len(tokens), width):
        group = tokens[start : start + width]
        out.append(
            StorageUsage(
                storage=group[0] if named else None,
                used=_int(group[-2], "+CPMS used"),
                total=_int(group[-1], "+CPMS total"),
            )
        )
    return out


class RegistrationStatus(IntEnum):
    """TS 27.007 §7.2 ``<stat>``."""

    NOT_REGISTERED = 0
    HOME = 1
    SEARCHING = 2
    DENIED = 3
    UNKNOWN = 4
    ROAMING = 5
    SMS_ONLY_HOME = 6
    SMS_ONLY_ROAMING = 7
    EMERGENCY_ONLY = 8
    CSFB_NOT_PREFERRED_HOME = 9
    CSFB_NOT_PREFERRED_ROAMING = 10

    @property
    def registered(self) -> bool:
        """Whether the modem can receive SMS: home or roaming, including the SMS-only forms."""
        return self in _REGISTERED


_REGISTERED = frozenset({1, 5, 6, 7, 9, 10})


class Registration(msgspec.Struct, frozen=True):
    """``+CREG`` (TS 27.007 §7.2): ``<n>`` only in the solicited form; location when given."""

    n: int | None
    status: RegistrationStatus
    lac: str | None
    ci: str | None


def parse_creg(args: str, *, solicited: bool) -> Registration:
    """``+CREG: <n>,<stat>[,<lac>,<ci>…]`` answering ``AT+CREG?``, ``+CREG: <stat>[,…]`` as a URC."""
    tokens = split_args(args)
    offset = 1 if solicited else 0
    if len(tokens) <= offset:
        raise AtParseError(f"+CREG arguments {args!r} lack <stat>")
    value = _int(tokens[offset], "<stat>")
    try:
        status = RegistrationStatus(value)
    except ValueError:
        raise AtParseError(f"<stat> {value} is not a TS 27.007 registration status") from None
    location = tokens[offset + 1 : offset + 3]
    return Registration(
        n=_int(tokens[0], "<n>") if solicited else None,
        status=status,
        lac=location[0] or None if location else None,
        ci=location[1] or None if len(location) > 1 else None,
    )


def parse_ranges(args: str) -> list[frozenset[int]]:
    """A test-command answer like ``+CNMI: (0-2),(0-3),(0,2),(0-2),(0,1)`` as sets of values."""
    groups = re.findall(r"\(([^)]*)\)", args)
    if not groups:
        raise AtParseError(f"{args!r} holds no (range) groups")
    out = []
    for group in groups:
        values: set[int] = set()
        for item in filter(None, (part.strip() for part in group.split(","))):
            low, _, high = item.partition("-")
            first = _int(low.strip(), "range start")
            last = _int(high.strip(), "range end") if high else first
            if last < first or last - first > 1024:
                raise AtParseError(f"range {item!r} is not a sensible range")
            values.update(range(first, last + 1))
        out.append(frozenset(values))
    return out
