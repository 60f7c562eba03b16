"""Bitmaps of zones, outputs, partitions and commands: item n is bit (n-1) % 8 of byte (n-1) // 8."""

from __future__ import annotations

from collections.abc import Iterable

#: Bytes in a partition bitmap (partitions 1..32).
PARTITION_BYTES = 4
#: Bytes in a zone or output bitmap: 16 for 1..128, 32 for 1..256 (INTEGRA 256 PLUS).
NARROW_BYTES = 16
WIDE_BYTES = 32


def encode_bitmap(items: Iterable[int], size: int, *, what: str = "item") -> bytes:
    """Encode 1-based item numbers as a ``size``-byte LSB-first bitmap.

    Raises ValueError for a number outside ``1..size*8``.
    """
    value = 0
    limit = size * 8
    for item in items:
        if not isinstance(item, int) or not 1 <= item <= limit:
            raise ValueError(f"{what} {item!r} is outside 1..{limit}")
        value |= 1 << (item - 1)
    return value.to_bytes(size, "little")


def decode_bitmap(data: bytes, *, first: int = 1) -> frozenset[int]:
    """Decode an LSB-first bitmap into the set of item numbers whose bit is set.

    ``first`` is the number of bit 0 (1 for zones/outputs/partitions, 0 for command codes).
    """
    value = int.from_bytes(data, "little")
    items = []
    while value:
        lowest = value & -value
        items.append(lowest.bit_length() - 1 + first)
        value ^= lowest
    return frozenset(items)


def zone_bytes(wide: bool) -> int:
    """Bitmap size for zones or outputs: 32 bytes when ``wide`` (256 items), else 16."""
    return WIDE_BYTES if wide else NARROW_BYTES
