"""Streaming a query's rows to the client as CSV, a chunk at a time, from a server-side cursor, so
a year of history never sits in the hub's memory. Every export is audited: who took which data
out, with which filters."""
from __future__ import annotations

import csv
import io
from datetime import datetime
from typing import Any, Sequence

from aiohttp import web

from hub.api.app import deps
from hub.api.crud import audit
from hub.api.routing import Call

CHUNK_ROWS = 500
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, str) and value[:1] in FORMULA_STARTS:
        # Spreadsheets would run it as a formula (CSV injection; OWASP lists tab and CR too, which
        # some spreadsheets skip before a formula); a leading quote keeps it text.
        return "'" + value
    return value


async def stream_csv(call: Call, filename: str, columns: Sequence[str], sql: str, *args: Any) -> web.StreamResponse:
    """Audit the export, then run `sql` with `args` and stream `columns` of each row as CSV."""
    request, pool = call.request, deps(call).pool
    await audit(pool, call, "data.exported", "export", filename, {"query": dict(request.query)})  # type: ignore[arg-type]
    response = web.StreamResponse(headers={
        "Content-Type": "text/csv; charset=utf-8",
        "Content-Disposition": f'attachment; filename="{filename}"',
    })
    await response.prepare(request)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns)
    async with pool.acquire() as conn, conn.transaction():
        pending = 0
        async for row in conn.cursor(sql, *args, prefetch=CHUNK_ROWS):
            writer.writerow([_cell(row[c]) for c in columns])
            pending += 1
            if pending >= CHUNK_ROWS:
                await response.write(buffer.getvalue().encode())
                buffer.seek(0)
                buffer.truncate()
                pending = 0
    await response.write(buffer.getvalue().encode())
    await response.write_eof()
    return response
