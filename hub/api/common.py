"""Types and helpers every resource module shares: pagination, versions, timestamps."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

import msgspec

MAX_LIMIT = 500
DEFAULT_LIMIT = 50

T = TypeVar("T")


class PageQuery(msgspec.Struct, forbid_unknown_fields=True):
    """`limit` above MAX_LIMIT is capped, not refused; a negative offset is refused."""

    limit: Annotated[int, msgspec.Meta(ge=1)] = DEFAULT_LIMIT
    offset: Annotated[int, msgspec.Meta(ge=0)] = 0

    @property
    def capped_limit(self) -> int:
        return min(self.limit, MAX_LIMIT)


class Page(msgspec.Struct, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int


class VersionBody(msgspec.Struct, forbid_unknown_fields=True):
    """A state change that names the version the client saw."""

    version: Annotated[int, msgspec.Meta(ge=1)]


NonEmpty = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Text = Annotated[str, msgspec.Meta(max_length=4000)]


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def record(row: Any) -> dict[str, Any]:
    """An asyncpg row as a JSON-ready dict (datetimes as ISO strings)."""
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in dict(row).items()}
