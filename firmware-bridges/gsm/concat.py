"""Reassembly of concatenated SMS (3GPP TS 23.040 §9.2.3.24.1), sans-IO.

Parts are grouped by (sender, reference, total). The raw user data of the parts (septets for GSM-7,
octets for UCS2 and 8-bit) is joined in part order BEFORE decoding, so a character whose escape
pair or UTF-16 surrogate pair was cut between two parts decodes as one character. A set that is
still incomplete ``timeout`` seconds after its first part arrived is emitted by :meth:`expire`
flagged ``truncated``. The caller supplies the clock (``now``, seconds on any monotonic scale).
"""

from __future__ import annotations

import datetime
from itertools import groupby

import msgspec

from .pdu.deliver import AddressType, Encoding, SmsDeliver, decode_user_data


class Assembled(msgspec.Struct, frozen=True):
    """A whole message: a single PDU, a complete concatenated set, or what arrived of one.

    ``timestamp`` is the service centre time of the earliest part. ``ref`` and ``total`` are None
    for a message that was not concatenated. ``missing`` lists part numbers that never came; it is
    non-empty exactly when ``truncated``. ``garbled`` is set when the joined user data does not
    decode cleanly. ``parts`` are the received PDUs in part order.
    """

    sender: str
    sender_type: AddressType
    timestamp: datetime.datetime
    encoding: Encoding
    text: str
    data: bytes
    ref: int | None
    total: int | None
    missing: tuple[int, ...]
    truncated: bool
    garbled: bool
    parts: tuple[SmsDeliver, ...]


_Key = tuple[str, int, int]


class _Pending:
    __slots__ = ("first_seen", "parts")

    def __init__(self, first_seen: float) -> None:
        self.first_seen = first_seen
        self.parts: dict[int, SmsDeliver] = {}


def _assemble(parts: list[SmsDeliver], ref: int | None, total: int | None) -> Assembled:
    """Join the parts' raw user data and decode it once per run of consecutive parts.

    A run stops at a gap (missing part) or where the encoding changes: TS 23.040 lets each part
    carry its own TP-DCS, and septets cannot be joined to octets.
    """
    numbers = [part.concat.part if part.concat else 1 for part in parts]
    present = set(numbers)
    missing = tuple(n for n in range(1, (total or 1) + 1) if n not in present)
    texts: list[str] = []
    garbled = False
    # Consecutive part numbers keep a constant (number - position); a gap changes it.
    runs = groupby(
        enumerate(zip(numbers, parts)),
        key=lambda item: (item[1][0] - item[0], item[1][1].encoding),
    )
    for (_, encoding), run in runs:
        text, bad = decode_user_data(b"".join(part.data for _, (_, part) in run), encoding)
        texts.append(text)
        garbled = garbled or bad
    encodings = {part.encoding for part in parts}
    first = parts[0]
    return Assembled(
        sender=first.sender,
        sender_type=first.sender_type,
        timestamp=min(part.timestamp for part in parts),
        encoding=first.encoding if len(encodings) == 1 else "8bit",
        text="".join(texts),
        data=b"".join(part.data for part in parts),
        ref=ref,
        total=total,
        missing=missing,
        truncated=bool(missing),
        garbled=garbled,
        parts=tuple(parts),
    )


class Reassembler:
    """Collects concatenated parts and hands back whole messages.

    ``timeout`` is how long (seconds) an incomplete set waits for its missing parts;
    ``max_pending`` caps the sets held at once, so a flood of stray parts cannot grow memory: the
    oldest set is emitted truncated to make room.
    """

    def __init__(self, timeout: float = 600.0, max_pending: int = 256) -> None:
        if timeout <= 0 or max_pending < 1:
            raise ValueError("timeout must be positive and max_pending at least 1")
        self.timeout = timeout
        self.max_pending = max_pending
        self._pending: dict[_Key, _Pending] = {}

    def __len__(self) -> int:
        """The number of incomplete sets held."""
        return len(self._pending)

    def add(self, message: SmsDeliver, now: float) -> list[Assembled]:
        """Take one decoded PDU; return the messages it completes (or pushes out), oldest first.

        A PDU without a concatenation element is a whole message at once. A repeated part (the
        same number again, e.g. a message read twice) is ignored: the first copy is kept.
        """
        concat = message.concat
        if concat is None:
            return [_assemble([message], None, None)]
        key = (message.sender, concat.ref, concat.total)
        out: list[Assembled] = []
        pending = self._pending.get(key)
        if pending is None:
            if len(self._pending) >= self.max_pending:
                oldest = next(iter(self._pending))
                out.append(self._emit(oldest))
            pending = self._pending[key] = _Pending(now)
        pending.parts.setdefault(concat.part, message)
        if len(pending.parts) == concat.total:
            out.append(self._emit(key))
        return out

    def expire(self, now: float) -> list[Assembled]:
        """Emit, flagged truncated, every set whose first part came ``timeout`` or more ago."""
        stale = [key for key, pending in self._pending.items() if now - pending.first_seen >= self.timeout]
        return [self._emit(key) for key in stale]

    def flush(self) -> list[Assembled]:
        """Emit every held set as it stands (e.g. at shutdown), incomplete ones truncated."""
        return [self._emit(key) for key in list(self._pending)]

    def _emit(self, key: _Key) -> Assembled:
        pending = self._pending.pop(key)
        parts = [pending.parts[number] for number in sorted(pending.parts)]
        return _assemble(parts, key[1], key[2])
