"""PDF exports of the reports and the audit log, read back with pypdf: the file opens, its text
holds the rows' values with their Polish letters, the title, the filters and "Page n of N"; a
report past the row cap says so; each export is audited like a CSV one; the caller's object scope
holds; and rendering never stalls the event loop."""
from __future__ import annotations

import asyncio
import io
import time
from datetime import datetime, timezone
from typing import AsyncIterator

import asyncpg
import fontpkg
import pytest
from aiohttp.test_utils import TestClient
from pypdf import PdfReader
from reportlab.pdfbase.ttfonts import TTFont

from hub.api.server import build_http
from hub.config import ReportSettings
from hub.reports.pdf import PdfReport, cell_text, fit_widths, render_pdf
from hub.secret_box import SecretBox
from support.api import HeaderAuthenticator, as_role, json_of, start_client

POLISH = "ąćęłńóśźżĄĆĘŁŃÓŚŹŻ"
CAP = 40
MASTER = as_role("MASTER", 1)
OPERATOR = as_role("OPERATOR", 3)
ALPHA = "Sklep Żabka Łódź"
BRAVO = "Bank Świętokrzyska"
OPERATOR_EMAIL = "łucja.żurawska@arc.example"

SQL_BUNDLES = """
INSERT INTO bundle_alarms (object_id, group_key, alarm_type, priority, first_event_at, last_event_at, event_count,
                           edge_id, source)
SELECT $1::int8, 'object:' || $1::int8, 'BURGLARY', 'CRITICAL', $2::timestamptz + make_interval(secs => n), $2::timestamptz + make_interval(secs => n), 1,
       'e', 'p'
FROM generate_series(1, $3) n
RETURNING id
"""
SQL_EXPORTS = "SELECT actor, target_id, details::text AS details FROM audit_log WHERE action = 'data.exported' ORDER BY id"


@pytest.fixture
async def client(db: asyncpg.Pool) -> AsyncIterator[TestClient]:
    c = await start_client(build_http(db, HeaderAuthenticator(), [], SecretBox.generate(),
                                      reports=ReportSettings(pdf_max_rows=CAP)))
    yield c
    await c.close()


async def _objects(db: asyncpg.Pool) -> tuple[int, int]:
    await db.execute("INSERT INTO users (id, email, role, password_hash, created_at, updated_at) "
                     "VALUES (3, $1, 'OPERATOR', 'x', now(), now())", OPERATOR_EMAIL)
    a = await db.fetchval("INSERT INTO objects (name) VALUES ($1) RETURNING id", ALPHA)
    b = await db.fetchval("INSERT INTO objects (name) VALUES ($1) RETURNING id", BRAVO)
    return a, b


async def _bundles(db: asyncpg.Pool, object_id: int, count: int) -> list[int]:
    start = datetime(2026, 3, 1, 8, 0, tzinfo=timezone.utc)
    return [r["id"] for r in await db.fetch(SQL_BUNDLES, object_id, start, count)]


async def _pdf(client: TestClient, url: str, headers: dict[str, str]) -> tuple[PdfReader, str]:
    """The PDF at `url`, and its text with all white space removed (table cells wrap anywhere)."""
    resp = await client.get(url, headers=headers)
    body = await resp.read()
    assert resp.status == 200, body[:500]
    assert resp.content_type == "application/pdf" and body.startswith(b"%PDF-")
    assert resp.headers["Content-Disposition"].startswith("attachment; filename=")
    reader = PdfReader(io.BytesIO(body))
    return reader, "".join("".join(page.extract_text() for page in reader.pages).split())


def _squeezed(text: str) -> str:
    return "".join(text.split())


async def test_alarm_history_pdf_has_the_rows_filters_and_page_numbers(client: TestClient, db: asyncpg.Pool) -> None:
    a, b = await _objects(db)
    ids = await _bundles(db, a, 3)
    await _bundles(db, b, 2)
    claim = await client.post(f"/api/v1/alarms/{ids[0]}/claim", json={"version": 1}, headers=OPERATOR)
    assert claim.status == 200
    reader, text = await _pdf(client, f"/api/v1/reports/alarms?format=pdf&object_id={a}&since=2026-03-01T00:00:00Z",
                              OPERATOR)
    assert reader.metadata.title == "Alarm history"
    assert _squeezed("Alarm history") in text and _squeezed(f"Filters: object_id = {a}; since = 2026-03-01T00:00:00Z") in text
    assert text.count(_squeezed(ALPHA)) == 3 and _squeezed(BRAVO) not in text
    assert _squeezed(OPERATOR_EMAIL) in text and "2026-03-0108:00:01" in text  # first event, UTC, to the second
    assert "3rows." in text and f"Page1of{len(reader.pages)}" in text
    [export] = await db.fetch(SQL_EXPORTS)
    assert export["actor"] == "user:3" and export["target_id"] == "alarm-history.pdf"
    assert '"format": "pdf"' in export["details"] and '"rows": 3' in export["details"]
    assert '"truncated": false' in export["details"]


async def test_response_times_pdf_names_the_operator(client: TestClient, db: asyncpg.Pool) -> None:
    a, _ = await _objects(db)
    for bundle in await _bundles(db, a, 2):
        assert (await client.post(f"/api/v1/alarms/{bundle}/claim", json={"version": 1}, headers=OPERATOR)).status == 200
    reader, text = await _pdf(client, "/api/v1/reports/response-times?format=pdf", OPERATOR)
    assert _squeezed("Operator response times") in text and "Filters:none" in text
    assert _squeezed(f"user:3 {OPERATOR_EMAIL} 2") in text and "Page1of1" in text
    assert len(reader.pages) == 1


async def test_resolutions_pdf_counts_every_code(client: TestClient, db: asyncpg.Pool) -> None:
    a, _ = await _objects(db)
    await _bundles(db, a, 2)
    _, text = await _pdf(client, "/api/v1/reports/resolutions?format=pdf", OPERATOR)
    assert _squeezed("Alarm resolutions") in text and "FALSE_ALARM" in text and _squeezed("Not resolved yet 2") in text
    [export] = await db.fetch(SQL_EXPORTS)
    assert export["target_id"] == "resolutions.pdf"


async def test_audit_log_pdf_is_masters_and_carries_the_filters(client: TestClient, db: asyncpg.Pool) -> None:
    a, _ = await _objects(db)
    for bundle in await _bundles(db, a, 2):
        await client.post(f"/api/v1/alarms/{bundle}/claim", json={"version": 1}, headers=OPERATOR)
    forbidden = await client.get("/api/v1/audit?format=pdf", headers=as_role("ADMIN", 2))
    assert forbidden.status == 403 and (await json_of(forbidden))["error"]["code"] == "forbidden"
    _, text = await _pdf(client, "/api/v1/audit?format=pdf&action=alarm.claim&limit=1", MASTER)
    assert _squeezed("Audit log") in text and "Filters:action=alarm.claim" in text and "limit" not in text
    assert text.count("alarm.claim") == 3 and "2rows." in text  # the filter line and two rows
    exports = await db.fetch(SQL_EXPORTS)
    assert [(e["actor"], e["target_id"]) for e in exports] == [("user:1", "audit-log.pdf")]


async def test_a_report_past_the_cap_says_so_and_keeps_the_first_rows(client: TestClient, db: asyncpg.Pool) -> None:
    a, _ = await _objects(db)
    ids = await _bundles(db, a, CAP + 5)
    reader, text = await _pdf(client, "/api/v1/reports/alarms?format=pdf", OPERATOR)
    assert _squeezed(f"Row limit reached: only the first {CAP} rows are shown") in text
    assert len(reader.pages) >= 2 and f"Page2of{len(reader.pages)}" in text
    first_column = [line.split()[0] for page in reader.pages for line in page.extract_text().splitlines() if line]
    assert str(ids[CAP - 1]) in first_column and str(ids[CAP]) not in first_column
    [export] = await db.fetch(SQL_EXPORTS)
    assert f'"rows": {CAP}' in export["details"] and '"truncated": true' in export["details"]


async def test_assigned_roles_get_only_their_objects_in_the_pdf(client: TestClient, db: asyncpg.Pool) -> None:
    a, b = await _objects(db)
    await _bundles(db, a, 1)
    await _bundles(db, b, 1)
    technician = as_role("TECHNICIAN", 9, [a])
    _, text = await _pdf(client, "/api/v1/reports/alarms?format=pdf", technician)
    assert _squeezed(ALPHA) in text and _squeezed(BRAVO) not in text
    assert _squeezed(f"objects = {a} (assigned to you)") in text
    _, text = await _pdf(client, f"/api/v1/reports/alarms?format=pdf&object_id={b}", technician)
    assert "0rows." in text and _squeezed(BRAVO) not in text
    assert (await client.get("/api/v1/reports/alarms?format=pdf", headers=as_role("FIELD_WORKER", 8, [a]))).status == 403
    bad = await client.get("/api/v1/reports/alarms?format=docx", headers=OPERATOR)
    assert bad.status == 422 and (await json_of(bad))["error"]["details"]["field"] == "format"


async def test_rendering_runs_beside_the_event_loop(db: asyncpg.Pool) -> None:
    """While a large PDF renders, the event loop keeps turning: the longest gap between its ticks
    stays far below the time the export takes."""
    client = await start_client(build_http(db, HeaderAuthenticator(), [], SecretBox.generate(),
                                           reports=ReportSettings(pdf_max_rows=3000)))
    try:
        a, _ = await _objects(db)
        await _bundles(db, a, 3000)
        longest, done = 0.0, asyncio.Event()

        async def ticker() -> None:
            nonlocal longest
            last = time.monotonic()
            while not done.is_set():
                await asyncio.sleep(0.01)
                now = time.monotonic()
                longest, last = max(longest, now - last), now

        ticking = asyncio.create_task(ticker())
        started = time.monotonic()
        resp = await client.get("/api/v1/reports/alarms?format=pdf", headers=OPERATOR)
        took = time.monotonic() - started
        done.set()
        await ticking
        assert resp.status == 200 and len(await resp.read()) > 100_000
        assert took > 0.4, f"the export took {took:.2f} s: too fast to tell anything"  # ticks are 10 ms apart
        assert longest < took / 3, f"the loop stalled {longest:.2f} s during a {took:.2f} s export"
    finally:
        await client.close()


def test_the_font_has_every_polish_letter() -> None:
    """The glyphs themselves, not only the text layer: a missing glyph prints as a box while text
    extraction still finds the letter."""
    font = TTFont("probe", str(fontpkg.path("Noto Sans")))
    missing = [ch for ch in POLISH + "—…·" if ord(ch) not in font.face.charToGlyph]
    assert missing == []


def test_long_cells_are_cut_so_no_row_outgrows_a_page() -> None:
    now = datetime(2026, 3, 1, tzinfo=timezone.utc)
    report = PdfReport("Audit log", ("id", "details"), [[1, "ż" * 20_000], [2, "short"]], [], now, "m", False, 10)
    reader = PdfReader(io.BytesIO(render_pdf(report)))
    text = "".join(page.extract_text() for page in reader.pages)
    assert "cut short" in text and "…" in text and "short" in text and len(reader.pages) == 1


def test_cells_and_widths() -> None:
    assert cell_text(None) == "" and cell_text(12.345) == "12.3" and cell_text(7) == "7"
    assert cell_text(datetime(2026, 3, 1, 10, 0, 5, 999, tzinfo=timezone.utc)) == "2026-03-01 10:00:05"
    assert fit_widths([10, 20], 100) == [10, 20]
    assert fit_widths([10, 200, 300], 110) == [10, 50, 50]
    assert sum(fit_widths([40, 60, 500, 900], 400)) == pytest.approx(400)
