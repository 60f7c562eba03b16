"""The GSM 7-bit default alphabet, its extension table and septet packing (3GPP TS 23.038 §6).

Text is carried as a sequence of septets (values 0..127). A character of the extension table is
two septets: the escape ``0x1B`` followed by its code in the extension table (TS 23.038 §6.2.1.1).
Septets are packed into octets least significant bit first (TS 23.038 §6.1.2.1.1).
"""

from __future__ import annotations

#: TS 23.038 §6.2.1: the default alphabet, indexed by septet value. 0x1B is the escape to the
#: extension table; it is decoded by the table below, never shown on its own.
DEFAULT_ALPHABET = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
ESCAPE = 0x1B

#: TS 23.038 §6.2.1.1: the characters of the default extension table, by septet after the escape.
EXTENSION_TABLE = {
    0x0A: "\f",
    0x14: "^",
    0x28: "{",
    0x29: "}",
    0x2F: "\\",
    0x3C: "[",
    0x3D: "~",
    0x3E: "]",
    0x40: "|",
    0x65: "€",
}

_ENCODE = {char: (code,) for code, char in enumerate(DEFAULT_ALPHABET) if code != ESCAPE}
_ENCODE.update({char: (ESCAPE, code) for code, char in EXTENSION_TABLE.items()})

# septet value (after the high bit is cleared) -> character, for str.translate
_DECODE = {code: DEFAULT_ALPHABET[code & 0x7F] for code in range(256)}


class Gsm7EncodeError(ValueError):
    """A character has no representation in the GSM 7-bit default alphabet or its extension."""


def is_gsm7(text: str) -> bool:
    """Whether every character of ``text`` is in the default alphabet or its extension table."""
    return all(char in _ENCODE for char in text)


def char_septets(char: str) -> tuple[int, ...]:
    """The one or two septets that stand for one character (escape + code for extension ones)."""
    try:
        return _ENCODE[char]
    except KeyError:
        raise Gsm7EncodeError(f"character {char!r} is not in the GSM 7-bit alphabet") from None


def encode_septets(text: str) -> bytes:
    """Text to septet values (one byte per septet), extension characters as escape pairs."""
    return bytes(septet for char in text for septet in char_septets(char))


def decode_septets(septets: bytes) -> str:
    """Septet values to text (a byte's high bit is ignored).

    An escape followed by a code missing from the extension table shows the default-alphabet
    character of that code (TS 23.038 §6.2.1.1 note); an escape with nothing after it (a truncated
    message) shows a space, which is what the escape is shown as when no table applies.
    """
    if ESCAPE not in septets and ESCAPE | 0x80 not in septets:
        # Fast path for the usual message: one table lookup per septet, done in C.
        return septets.decode("latin-1").translate(_DECODE)
    alphabet = DEFAULT_ALPHABET
    out: list[str] = []
    index = 0
    count = len(septets)
    while index < count:
        septet = septets[index] & 0x7F
        index += 1
        if septet != ESCAPE:
            out.append(alphabet[septet])
            continue
        if index == count:
            out.append(" ")
            break
        code = septets[index] & 0x7F
        index += 1
        extended = EXTENSION_TABLE.get(code)
        if extended is not None:
            out.append(extended)
        elif code == ESCAPE:
            # 0x1B 0x1B escapes to a further national table (TS 23.038 §6.2.1.1) we do not carry.
            out.append(" ")
        else:
            out.append(alphabet[code])
    return "".join(out)


def pack_septets(septets: bytes, fill_bits: int = 0) -> bytes:
    """Pack septets into octets, LSB first, after ``fill_bits`` zero bits (TS 23.040 §9.2.3.24).

    The fill bits align the first character to a septet boundary after a user data header.
    """
    accumulator = 0
    bits = fill_bits
    out = bytearray()
    for septet in septets:
        accumulator |= (septet & 0x7F) << bits
        bits += 7
        while bits >= 8:
            out.append(accumulator & 0xFF)
            accumulator >>= 8
            bits -= 8
    if bits:
        out.append(accumulator & 0xFF)
    return bytes(out)


def unpack_septets(octets: bytes, count: int, fill_bits: int = 0) -> bytes:
    """Unpack ``count`` septets from packed octets, skipping ``fill_bits`` leading bits.

    The caller checks that ``octets`` holds enough bits; missing high bits read as zero.
    """
    value = int.from_bytes(octets, "little") >> fill_bits
    return bytes((value >> (7 * index)) & 0x7F for index in range(count))
