"""Report exports as PDF, beside the CSV ones (hub/api/csv_stream.py): the same query, cut at
`reports.pdf_max_rows`, rendered in a worker thread (hub/reports/pdf.py) so the event loop that
ingest shares never waits on layout. Audited as every export is: `data.exported`, with the
filters, the row count and whether the cap cut it."""
from __future__ import annotations

import asyncio
from typing import Any, Sequence

from aiohttp import web

from hub.api.app import deps
from hub.api.crud import audit
from hub.api.csv_stream import stream_csv
from hub.api.permissions import object_filter
from hub.api.routing import Call
from shared.clock import SYSTEM_CLOCK

SETTINGS_KEY = "reports"


def _filters(call: Call) -> list[tuple[str, str]]:
    """The query's filters as the reader should see them, and the caller's object scope. Paging
    does not apply to an export (nor to a CSV one)."""
    shown = [(k, v) for k, v in call.request.query.items() if k not in ("format", "limit", "offset")]
    scope = object_filter(call.user)
    if scope is not None:
        shown.append(("objects", ", ".join(map(str, scope)) + " (assigned to you)" if scope else "none assigned"))
    return shown


async def export_pdf(call: Call, filename: str, title: str, columns: Sequence[str], sql: str,
                     *args: Any) -> web.Response:
    """Run `sql` (ending in its ORDER BY) with `args` for at most the row cap, render `columns`
    of those rows as a PDF, audit the export and answer the file."""
    # Here, not at the top: reportlab is ~100 ms of every hub start, for an occasional export.
    from hub.reports.pdf import PdfReport, render_pdf

    pool, settings = deps(call).pool, deps(call).extra[SETTINGS_KEY]
    cap = settings.pdf_max_rows
    rows = await pool.fetch(f"{sql} LIMIT ${len(args) + 1}", *args, cap + 1)
    truncated = len(rows) > cap
    report = PdfReport(title, columns, [[r[c] for c in columns] for r in rows[:cap]], _filters(call),
                       SYSTEM_CLOCK.now(), f"{call.user.email} ({call.user.actor})", truncated, cap)
    pdf = await asyncio.to_thread(render_pdf, report)
    await audit(pool, call, "data.exported", "export", filename,
                {"query": dict(call.request.query), "rows": len(report.rows), "truncated": truncated})
    return web.Response(body=pdf, content_type="application/pdf",
                        headers={"Content-Disposition": f'attachment; filename="{filename}"'})


async def export_file(call: Call, stem: str, title: str, columns: Sequence[str], sql: str,
                      *args: Any) -> web.StreamResponse | None:
    """The report as the file its `format` asks for (`<stem>.csv` streamed, `<stem>.pdf` titled
    `title`), or None when it asks for JSON."""
    if call.query.format == "csv":
        return await stream_csv(call, f"{stem}.csv", columns, sql, *args)
    if call.query.format == "pdf":
        return await export_pdf(call, f"{stem}.pdf", title, columns, sql, *args)
    return None
