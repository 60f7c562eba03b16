"""SMS-DELIVER TPDUs as a modem shows them in PDU mode (3GPP TS 23.040 §9.2.2.1, TS 27.005 §3.1).

A PDU read with ``AT+CMGR`` / ``AT+CMGL`` in PDU mode (``AT+CMGF=0``) is the SMSC address (TS 27.005
§3.1 ``<pdu>``: length octet, type of address, BCD digits) followed by the SMS-DELIVER TPDU.
Decoding raises :class:`PduError` and nothing else, whatever the input.
"""

from __future__ import annotations

import datetime
from enum import StrEnum
from typing import Literal

import msgspec

from ..gsm7 import decode_septets, encode_septets, pack_septets, unpack_septets

Encoding = Literal["gsm7", "8bit", "ucs2"]

#: TS 23.040 §9.2.3.16: the user data is at most 140 octets, i.e. 160 GSM-7 septets.
MAX_UD_OCTETS = 140
MAX_UD_SEPTETS = 160
#: TS 23.040 §9.1.2.5: an address value is at most 10 octets, i.e. 20 semi-octets.
MAX_ADDRESS_DIGITS = 20
#: TS 24.011 §8.2.5.1: the SMSC (RP) address is at most 11 octets after its length octet.
MAX_SMSC_OCTETS = 11

# TS 23.040 §9.1.2.5 BCD address digits; 0xF is filler, the rest are the "*#abc" codes.
_BCD_DIGITS = "0123456789*#abc"
_DIGIT_VALUES = {char: value for value, char in enumerate(_BCD_DIGITS)}

# TS 23.040 §9.2.3.24.1 / .8: concatenation information elements with 8- and 16-bit references.
IEI_CONCAT_8 = 0x00
IEI_CONCAT_16 = 0x08


class PduError(ValueError):
    """The PDU is not a well-formed SMS-DELIVER; the message says which field and why."""


class AddressType(StrEnum):
    """TS 23.040 §9.1.2.5 type of number of an address."""

    UNKNOWN = "unknown"
    INTERNATIONAL = "international"
    NATIONAL = "national"
    NETWORK_SPECIFIC = "network_specific"
    SUBSCRIBER = "subscriber"
    ALPHANUMERIC = "alphanumeric"
    ABBREVIATED = "abbreviated"
    RESERVED = "reserved"


_TYPE_OF_NUMBER = tuple(AddressType)


class Concat(msgspec.Struct, frozen=True):
    """Concatenation UDH element: reference, number of parts and this part's number (1-based).

    ``ref_bits`` says whether the reference travelled in the 8-bit (IEI 0x00) or the 16-bit
    (IEI 0x08) element.
    """

    ref: int
    total: int
    part: int
    ref_bits: Literal[8, 16] = 8


class SmsDeliver(msgspec.Struct, frozen=True):
    """One decoded SMS-DELIVER.

    ``data`` is the user data after the header, in the unit its encoding counts: septet values
    (one per byte) for ``gsm7``, octets for ``8bit`` and ``ucs2``. Reassembly joins these before
    decoding. ``text`` is the decoded text; for ``8bit`` it is the octets read as Latin-1, for
    display only — the payload is ``data``. ``garbled`` is set when the user data does not decode
    cleanly (a UCS2 payload with an odd length or a lone surrogate, e.g. one half of a pair split
    across concatenated parts); ``text`` then holds U+FFFD in the bad places.
    """

    smsc: str | None
    sender: str
    sender_type: AddressType
    timestamp: datetime.datetime
    encoding: Encoding
    text: str
    data: bytes
    concat: Concat | None
    pid: int
    dcs: int
    message_class: int | None
    more_messages: bool
    status_report: bool
    reply_path: bool
    garbled: bool
    raw: str


class _Reader:
    """Cursor over the PDU octets that names the field when the PDU ends too early."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, count: int, field: str) -> bytes:
        end = self.pos + count
        if end > len(self.data):
            raise PduError(f"PDU ends inside {field} (needs {count} octets at offset {self.pos})")
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def octet(self, field: str) -> int:
        return self.take(1, field)[0]


def _bcd_digits(octets: bytes, count: int, field: str) -> str:
    """Semi-octet digits, low nibble first (TS 23.040 §9.1.2.3); ``count`` digits are read."""
    digits: list[str] = []
    for index in range(count):
        nibble = (octets[index // 2] >> (4 * (index % 2))) & 0x0F
        if nibble == 0x0F:
            raise PduError(f"{field} has a filler nibble among its digits")
        digits.append(_BCD_DIGITS[nibble])
    return "".join(digits)


def _decode_smsc(reader: _Reader) -> str | None:
    """TS 27.005 §3.1 / TS 24.011 §8.2.5.1: length in octets (type + digits); 0 means none."""
    length = reader.octet("SMSC address length")
    if length == 0:
        return None
    if length > MAX_SMSC_OCTETS:
        raise PduError(f"SMSC address length {length} exceeds {MAX_SMSC_OCTETS} octets")
    toa = reader.octet("SMSC type of address")
    octets = reader.take(length - 1, "SMSC address")
    count = 2 * len(octets)
    if octets and octets[-1] >> 4 == 0x0F:
        count -= 1  # an odd number of digits ends with a filler nibble
    digits = _bcd_digits(octets, count, "SMSC address")
    return "+" + digits if (toa >> 4) & 0x07 == 1 else digits


def _decode_originator(reader: _Reader) -> tuple[str, AddressType]:
    """TS 23.040 §9.1.2.5: the length counts useful semi-octets; alphanumeric is packed GSM-7."""
    length = reader.octet("originating address length")
    if length > MAX_ADDRESS_DIGITS:
        raise PduError(f"originating address length {length} exceeds {MAX_ADDRESS_DIGITS} digits")
    toa = reader.octet("originating address type")
    octets = reader.take((length + 1) // 2, "originating address")
    kind = _TYPE_OF_NUMBER[(toa >> 4) & 0x07]
    if kind is AddressType.ALPHANUMERIC:
        # TS 23.040 §9.1.2.5: alphanumeric per TS 23.038 GSM-7, the length in semi-octets used.
        return decode_septets(unpack_septets(octets, length * 4 // 7)), kind
    digits = _bcd_digits(octets, length, "originating address")
    return ("+" + digits if kind is AddressType.INTERNATIONAL else digits), kind


def _bcd_pair(octet: int, field: str) -> int:
    """One swapped-BCD octet (TS 23.040 §9.2.3.11): low nibble tens, high nibble units."""
    tens, units = octet & 0x0F, octet >> 4
    if tens > 9 or units > 9:
        raise PduError(f"{field} octet {octet:02X} is not BCD")
    return tens * 10 + units


def _decode_timestamp(octets: bytes) -> datetime.datetime:
    """TS 23.040 §9.2.3.11 TP-SCTS: YY MM DD hh mm ss, then the zone in quarter hours.

    The zone's first semi-octet (low nibble) carries the sign in its bit 3, so a zone octet of
    0x0A is -20 quarters (UTC-5) and 0x80 is +8 (UTC+2).
    """
    year, month, day, hour, minute, second = (
        _bcd_pair(octet, name)
        for octet, name in zip(octets, ("year", "month", "day", "hour", "minute", "second"))
    )
    zone = octets[6]
    quarters = _bcd_pair(zone & 0xF7, "time zone")
    if zone & 0x08:
        quarters = -quarters
    try:
        tz = datetime.timezone(datetime.timedelta(minutes=15 * quarters))
        return datetime.datetime(2000 + year, month, day, hour, minute, second, tzinfo=tz)
    except ValueError as exc:
        raise PduError(f"service centre timestamp {octets.hex().upper()} is invalid: {exc}") from None


def _coding(dcs: int) -> tuple[Encoding, int | None]:
    """TS 23.038 §4: alphabet and message class from the data coding scheme.

    Compressed text, reserved alphabets and reserved coding groups are taken as 8-bit data: their
    octets are kept intact rather than guessed at.
    """
    group = dcs >> 4
    if group <= 0x07:  # 00xx / 01xx general data coding (01xx: marked for automatic deletion)
        message_class = dcs & 0x03 if dcs & 0x10 else None
        if dcs & 0x20:
            return "8bit", message_class  # compressed (TS 23.042): not decoded here
        alphabet = (dcs >> 2) & 0x03
        encoding: Encoding = ("gsm7", "8bit", "ucs2", "8bit")[alphabet]  # type: ignore[assignment]
        return encoding, message_class
    if group in (0x0C, 0x0D):  # message waiting indication, discard / store: GSM-7
        return "gsm7", None
    if group == 0x0E:  # message waiting indication, store: UCS2
        return "ucs2", None
    if group == 0x0F:  # data coding / message class: bit 2 picks 8-bit over GSM-7
        return ("8bit" if dcs & 0x04 else "gsm7"), dcs & 0x03
    return "8bit", None


def _parse_udh(udh: bytes) -> Concat | None:
    """TS 23.040 §9.2.3.24: walk the information elements; only concatenation is kept.

    Unknown elements are skipped. An element with a zero count or number, or a number above the
    count, is ignored as §9.2.3.24.1 requires. A repeated element: the last one wins (§9.2.3.24).
    """
    concat: Concat | None = None
    pos = 0
    while pos < len(udh):
        if pos + 2 > len(udh):
            raise PduError("user data header ends inside an information element")
        iei, length = udh[pos], udh[pos + 1]
        body = udh[pos + 2 : pos + 2 + length]
        if len(body) != length:
            raise PduError(f"user data header element {iei:02X} overruns the header")
        pos += 2 + length
        if iei == IEI_CONCAT_8 and length == 3:
            ref, total, part = body
            bits: Literal[8, 16] = 8
        elif iei == IEI_CONCAT_16 and length == 4:
            ref, total, part = (body[0] << 8) | body[1], body[2], body[3]
            bits = 16
        else:
            continue
        if total and part and part <= total:
            concat = Concat(ref, total, part, bits)
    return concat


def decode_user_data(data: bytes, encoding: Encoding) -> tuple[str, bool]:
    """Text of a payload (septets for GSM-7, octets otherwise) and whether it was garbled."""
    if encoding == "gsm7":
        return decode_septets(data), False
    if encoding == "8bit":
        return data.decode("latin-1"), False
    try:
        return data.decode("utf-16-be"), False
    except UnicodeDecodeError:
        return data.decode("utf-16-be", errors="replace"), True


def _hex_to_bytes(pdu: str) -> bytes:
    try:
        return bytes.fromhex("".join(pdu.split()))
    except ValueError:
        raise PduError("PDU is not a string of hexadecimal octets") from None


def decode_deliver(pdu: bytes | str) -> SmsDeliver:
    """Decode one PDU-mode SMS-DELIVER (SMSC address + TPDU) given as octets or hex text."""
    raw = _hex_to_bytes(pdu) if isinstance(pdu, str) else bytes(pdu)
    reader = _Reader(raw)
    smsc = _decode_smsc(reader)
    first = reader.octet("first octet")
    # TS 23.040 §9.2.3.1: TP-MTI 00 in the MS-received direction is SMS-DELIVER.
    if first & 0x03 != 0:
        raise PduError(f"TP-MTI {first & 0x03} is not SMS-DELIVER")
    sender, sender_type = _decode_originator(reader)
    pid = reader.octet("TP-PID")
    dcs = reader.octet("TP-DCS")
    encoding, message_class = _coding(dcs)
    timestamp = _decode_timestamp(reader.take(7, "TP-SCTS"))
    udl = reader.octet("TP-UDL")
    has_udh = bool(first & 0x40)  # TP-UDHI, §9.2.3.23
    if encoding == "gsm7":
        if udl > MAX_UD_SEPTETS:
            raise PduError(f"TP-UDL {udl} exceeds {MAX_UD_SEPTETS} septets")
        ud_octets = (udl * 7 + 7) // 8
    else:
        if udl > MAX_UD_OCTETS:
            raise PduError(f"TP-UDL {udl} exceeds {MAX_UD_OCTETS} octets")
        ud_octets = udl
    ud = reader.take(ud_octets, "TP-UD")
    if reader.pos != len(raw):
        raise PduError(f"{len(raw) - reader.pos} octets follow the user data")
    concat = None
    header_octets = 0
    if has_udh:
        if not ud:
            raise PduError("TP-UDHI is set but the user data is empty")
        header_octets = ud[0] + 1
        if header_octets > ud_octets:
            raise PduError(f"user data header length {ud[0]} overruns the user data")
        concat = _parse_udh(ud[1:header_octets])
    if encoding == "gsm7":
        # §9.2.3.24: the header occupies whole septets; fill bits pad it to the septet boundary.
        header_septets = (header_octets * 8 + 6) // 7
        if header_septets > udl:
            raise PduError(f"TP-UDL {udl} septets is shorter than the user data header")
        data = unpack_septets(ud, udl)[header_septets:]
    else:
        data = ud[header_octets:]
    text, garbled = decode_user_data(data, encoding)
    return SmsDeliver(
        smsc=smsc,
        sender=sender,
        sender_type=sender_type,
        timestamp=timestamp,
        encoding=encoding,
        text=text,
        data=data,
        concat=concat,
        pid=pid,
        dcs=dcs,
        message_class=message_class,
        more_messages=not first & 0x04,  # TP-MMS: 0 means more messages are waiting
        status_report=bool(first & 0x20),  # TP-SRI
        reply_path=bool(first & 0x80),  # TP-RP
        garbled=garbled,
        raw=raw.hex().upper(),
    )


# ---------------------------------------------------------------------------------------------
# Encoding: the modem emulator builds the PDUs it stores with these.

_DCS = {"gsm7": 0x00, "8bit": 0x04, "ucs2": 0x08}


def _encode_bcd(digits: str) -> bytes:
    """Digits to swapped semi-octets, an odd count padded with the 0xF filler."""
    try:
        values = [_DIGIT_VALUES[char] for char in digits]
    except KeyError:
        raise ValueError(f"address {digits!r} holds a character that is not a digit") from None
    if len(values) % 2:
        values.append(0x0F)
    return bytes(values[i] | (values[i + 1] << 4) for i in range(0, len(values), 2))


def _encode_smsc(smsc: str | None) -> bytes:
    if not smsc:
        return b"\x00"
    international = smsc.startswith("+")
    digits = smsc[1:] if international else smsc
    value = bytes((0x91 if international else 0x81,)) + _encode_bcd(digits)
    if len(value) > MAX_SMSC_OCTETS:
        raise ValueError(f"SMSC address {smsc!r} is too long")
    return bytes((len(value),)) + value


def _encode_originator(sender: str) -> bytes:
    """``+digits`` international, ``digits`` national, anything else alphanumeric (§9.1.2.5)."""
    if not sender:
        raise ValueError("the sender is empty")
    body = sender[1:] if sender.startswith("+") else sender
    if body.isdigit() and body.isascii():
        if len(body) > MAX_ADDRESS_DIGITS:
            raise ValueError(f"sender {sender!r} has more than {MAX_ADDRESS_DIGITS} digits")
        toa = 0x91 if sender.startswith("+") else 0xA1
        return bytes((len(body), toa)) + _encode_bcd(body)
    septets = encode_septets(sender)
    semi_octets = (len(septets) * 7 + 3) // 4
    if semi_octets > MAX_ADDRESS_DIGITS:
        raise ValueError(f"alphanumeric sender {sender!r} is longer than 11 characters")
    return bytes((semi_octets, 0xD0)) + pack_septets(septets)


def _swap(value: int) -> int:
    return (value // 10) | ((value % 10) << 4)


def _encode_timestamp(when: datetime.datetime) -> bytes:
    offset = when.utcoffset()
    if offset is None:
        raise ValueError("the service centre time must carry a time zone")
    minutes = int(offset.total_seconds()) // 60
    if minutes % 15 or abs(minutes) > 79 * 15:
        raise ValueError(f"time zone offset {offset} is not a whole number of quarter hours")
    if not 2000 <= when.year <= 2099:
        raise ValueError(f"year {when.year} cannot be carried in TP-SCTS")
    quarters = abs(minutes) // 15
    zone = _swap(quarters) | (0x08 if minutes < 0 else 0)
    fields = (when.year % 100, when.month, when.day, when.hour, when.minute, when.second)
    return bytes(_swap(value) for value in fields) + bytes((zone,))


def _encode_udh(concat: Concat) -> bytes:
    if concat.ref_bits == 16:
        if not 0 <= concat.ref <= 0xFFFF:
            raise ValueError(f"16-bit reference {concat.ref} is out of range")
        element = bytes((IEI_CONCAT_16, 4, concat.ref >> 8, concat.ref & 0xFF))
    else:
        if not 0 <= concat.ref <= 0xFF:
            raise ValueError(f"8-bit reference {concat.ref} is out of range")
        element = bytes((IEI_CONCAT_8, 3, concat.ref))
    if not 1 <= concat.part <= concat.total <= 255:
        raise ValueError(f"part {concat.part} of {concat.total} is out of range")
    element += bytes((concat.total, concat.part))
    return bytes((len(element),)) + element


def encode_deliver_raw(
    sender: str,
    data: bytes,
    *,
    encoding: Encoding,
    smsc_time: datetime.datetime,
    smsc: str | None = "+48601000310",
    concat: Concat | None = None,
) -> bytes:
    """Build a PDU-mode SMS-DELIVER around a payload already in its units.

    ``data`` is septet values for ``gsm7`` and octets otherwise — what :attr:`SmsDeliver.data`
    holds — so a caller can cut a payload anywhere, even inside an escape pair or a surrogate pair.
    Raises ``ValueError`` when a field cannot be represented.
    """
    udh = _encode_udh(concat) if concat is not None else b""
    if encoding == "gsm7":
        header_septets = (len(udh) * 8 + 6) // 7
        udl = header_septets + len(data)
        if udl > MAX_UD_SEPTETS:
            raise ValueError(f"{udl} septets exceed the {MAX_UD_SEPTETS} of one message")
        ud = udh + pack_septets(data, header_septets * 7 - len(udh) * 8)
    else:
        udl = len(udh) + len(data)
        if udl > MAX_UD_OCTETS:
            raise ValueError(f"{udl} octets exceed the {MAX_UD_OCTETS} of one message")
        ud = udh + data
    first = 0x04 | (0x40 if udh else 0)  # SMS-DELIVER, no more messages, TP-UDHI if a header
    return (
        _encode_smsc(smsc)
        + bytes((first,))
        + _encode_originator(sender)
        + bytes((0x00, _DCS[encoding]))
        + _encode_timestamp(smsc_time)
        + bytes((udl,))
        + ud
    )


def _payload(text: str | bytes, encoding: Encoding) -> bytes:
    if encoding == "8bit":
        if not isinstance(text, bytes):
            raise ValueError("8-bit messages carry bytes, not text")
        return text
    if not isinstance(text, str):
        raise ValueError(f"{encoding} messages carry text, not bytes")
    return encode_septets(text) if encoding == "gsm7" else text.encode("utf-16-be")


def encode_deliver(
    sender: str,
    text: str | bytes,
    *,
    encoding: Encoding,
    smsc_time: datetime.datetime,
    smsc: str | None = "+48601000310",
    concat: Concat | None = None,
) -> bytes:
    """Build a PDU-mode SMS-DELIVER (SMSC address + TPDU) as a modem would store it.

    ``text`` is ``str`` for ``gsm7`` / ``ucs2`` and ``bytes`` for ``8bit``. A ``+`` sender is
    international, a digit string national, anything else alphanumeric. ``smsc_time`` must be
    aware. Raises ``ValueError`` (``Gsm7EncodeError`` for characters outside GSM-7) when the
    message cannot be represented or does not fit one PDU.
    """
    return encode_deliver_raw(
        sender,
        _payload(text, encoding),
        encoding=encoding,
        smsc_time=smsc_time,
        smsc=smsc,
        concat=concat,
    )


def tpdu_length(pdu: bytes) -> int:
    """TS 27.005 §3.4.3 ``<length>`` of ``+CMGR`` / ``+CMGL``: octets after the SMSC address."""
    return len(pdu) - 1 - pdu[0]


def _part_capacity(encoding: Encoding, ref_bits: int) -> int:
    """Payload units one part holds next to its concatenation header (6 or 7 octets)."""
    udh_octets = 6 if ref_bits == 8 else 7
    if encoding == "gsm7":
        return MAX_UD_SEPTETS - (udh_octets * 8 + 6) // 7
    if encoding == "ucs2":
        return (MAX_UD_OCTETS - udh_octets) // 2 * 2
    return MAX_UD_OCTETS - udh_octets


def _units(text: str | bytes, encoding: Encoding) -> list[bytes]:
    """The payload cut into indivisible pieces: a character (escape or surrogate pair) or a byte."""
    if encoding == "8bit":
        return [bytes((byte,)) for byte in _payload(text, encoding)]
    if not isinstance(text, str):
        raise ValueError(f"{encoding} messages carry text, not bytes")
    if encoding == "gsm7":
        return [encode_septets(char) for char in text]
    return [char.encode("utf-16-be") for char in text]


def split_for_concat(
    text: str | bytes,
    encoding: Encoding,
    ref: int,
    *,
    ref_bits: Literal[8, 16] = 8,
    parts: int | None = None,
) -> list[tuple[Concat, bytes]]:
    """Cut a message into concatenated parts, as a sending phone does (TS 23.040 §9.2.3.24.1).

    Returns ``(concat, payload)`` pairs for :func:`encode_deliver_raw`; payloads are in that
    function's units and never split a character (escape or surrogate pair). Without ``parts``
    each part is filled to capacity (a single part if it all fits); with ``parts`` the message is
    spread evenly over exactly that many. Raises ``ValueError`` when that cannot be done.
    """
    units = _units(text, encoding)
    capacity = _part_capacity(encoding, ref_bits)
    chunks: list[bytearray] = [bytearray()]
    if parts is None:
        for unit in units:
            if len(chunks[-1]) + len(unit) > capacity:
                chunks.append(bytearray())
            chunks[-1] += unit
    else:
        if not 1 <= parts <= 255 or len(units) < parts:
            raise ValueError(f"{len(units)} characters cannot be spread over {parts} parts")
        total_size = sum(len(unit) for unit in units)
        done = 0
        for index, unit in enumerate(units):
            current = chunks[-1]
            parts_left = parts - len(chunks)
            starved = len(units) - index == parts_left  # every later part needs a character
            due = done >= total_size * len(chunks) / parts
            overflow = len(current) + len(unit) > capacity
            if current and parts_left and (starved or due or overflow):
                chunks.append(bytearray())
            elif overflow:
                raise ValueError(f"the message does not fit {parts} parts of {capacity} units")
            chunks[-1] += unit
            done += len(unit)
    if len(chunks) > 255:
        raise ValueError(f"the message needs {len(chunks)} parts, more than 255")
    return [
        (Concat(ref, len(chunks), number, ref_bits), bytes(chunk))
        for number, chunk in enumerate(chunks, start=1)
    ]
