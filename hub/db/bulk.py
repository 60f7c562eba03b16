"""Bulk parameters for set-based SQL: a batch's rows travel as one JSON array, unpacked by
`json_to_recordset` in the statement. One text parameter instead of a dozen typed arrays, because
asyncpg's per-element array encoding cost more than the SQL itself at ingest rates."""
from __future__ import annotations

from typing import Any, Iterable

import msgspec

_encoder = msgspec.json.Encoder()


def rows_json(rows: Iterable[dict[str, Any]]) -> str:
    """Encode rows (dicts; msgspec.Raw values are embedded as JSON as they are) for $n::json."""
    return _encoder.encode(list(rows)).decode()
