"""Field checks shared by the request and answer types: clear ValueErrors, and set coercion."""

from __future__ import annotations

from collections.abc import Iterable

import msgspec


def check_range(what: str, value: object, lowest: int, highest: int) -> None:
    """Raise ValueError unless ``value`` is an int in ``lowest..highest``."""
    if isinstance(value, bool) or not isinstance(value, int) or not lowest <= value <= highest:
        raise ValueError(f"{what} {value!r} is outside {lowest}..{highest}")


def check_items(what: str, items: Iterable[int], lowest: int, highest: int) -> None:
    """Raise ValueError unless every item is an int in ``lowest..highest``."""
    for item in items:
        check_range(what, item, lowest, highest)


def freeze_set(struct: msgspec.Struct, field: str) -> frozenset[int]:
    """Store ``struct.<field>`` as a frozenset, so callers may pass any iterable of ints.

    Frozen structs must stay hashable; a plain set or list would break that.
    """
    value = getattr(struct, field)
    if not isinstance(value, frozenset):
        value = frozenset(value)
        msgspec.structs.force_setattr(struct, field, value)
    return value


def check_text(what: str, value: str, size: int, encoding: str) -> bytes:
    """Encode ``value`` and check it fits in ``size`` bytes; returns the encoded bytes."""
    try:
        encoded = value.encode(encoding)
    except UnicodeEncodeError as exc:
        raise ValueError(f"{what} {value!r} cannot be encoded as {encoding}") from exc
    if len(encoded) > size:
        raise ValueError(f"{what} {value!r} is longer than {size} bytes")
    return encoded
