"""User codes: 8 bytes of decimal digits as hex nibbles, padded with F (``1234`` → ``12 34 FF…``)."""

from __future__ import annotations

import msgspec

CODE_BYTES = 8
_MAX_DIGITS = 8


def _check_digits(value: str, what: str, minimum: int) -> None:
    if not (minimum <= len(value) <= _MAX_DIGITS and value.isascii() and value.isdigit()):
        raise ValueError(f"{what} must be {minimum}–{_MAX_DIGITS} decimal digits")


class UserCode(msgspec.Struct, frozen=True):
    """A user code exactly as sent: 8 bytes, the prefix digits (if any) then the code digits.

    Build one with :meth:`from_digits`; :attr:`digits` reads it back. ``repr`` never shows the
    digits, so codes do not leak into logs.
    """

    raw: bytes

    def __post_init__(self) -> None:
        if len(self.raw) != CODE_BYTES:
            raise ValueError(f"a user code is {CODE_BYTES} bytes, got {len(self.raw)}")

    @classmethod
    def from_digits(cls, code: str, prefix: str = "") -> UserCode:
        """Encode ``code`` (1–8 digits) behind an optional ``prefix`` (0–8 digits).

        Raises ValueError for anything else (letters, spaces, too many digits, empty code).
        """
        _check_digits(code, "user code", 1)
        if prefix:
            _check_digits(prefix, "code prefix", 1)
        nibbles = (prefix + code).ljust(CODE_BYTES * 2, "F")
        return cls(bytes.fromhex(nibbles))

    @property
    def digits(self) -> str | None:
        """The digits sent (prefix and code together), or None if the bytes are not a valid code."""
        text = self.raw.hex().upper()
        digits = text.rstrip("F")
        if not digits or not digits.isdigit():
            return None
        return digits

    def __repr__(self) -> str:
        return "UserCode(<redacted>)"
