"""The console's History, Reports and Audit pages in headless Chromium (issue 12), against the hub's
real HTTP app and auth on the test database. Alarms raised by real ingest (and one written as
ingest writes it) are worked to CLOSED through the API as operators work them: claim, start, a
checklist tick, a dispatch entry, ack, resolve with a resolution, close. An OPERATOR finds one in
History by object, operator and resolution, sees the empty search say so, opens the alarm by its
URL with its timeline grouped by kind (who and when, in the user's zone with UTC on hover), reads
Reports (the per-day bar chart's bars and its table agree; response times per operator; how alarms
ended) and downloads the CSV and the PDF with the page's filters; the OPERATOR has no Audit page
and the API refuses it. A MASTER filters the audit log and exports it. History pages through more
alarms than a page holds. Every form field has a label; the console loads in under a second.
Screenshots land beside the admin pages' ones."""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import asyncpg
import pytest
from pypdf import PdfReader

from hub.alarms.outcomes import RESOLUTIONS
from support.browser import browser_page
from support.operator_work import scene
from test_console_admin_browser import (MASTER_EMAIL, AdminConsole, admin_console, assert_labelled,  # noqa: F401
                                        sign_in, wait_error)
from test_console_browser import OPERATOR_EMAIL, PASSWORD, add_user, log_in, shot

pytestmark = pytest.mark.slow

OLGA_EMAIL = "olga@example.com"
ZONE = "Europe/Warsaw"
# A shop's FIRE bundle in status $3, as ingest writes one (the shop's panel is not configured here).
SQL_SHOP_FIRE = """
INSERT INTO bundle_alarms (object_id, group_key, alarm_type, status, priority, first_event_at, last_event_at,
                           event_count, edge_id, source)
VALUES ($1::int8, 'object:' || $1::int8, 'FIRE', $3, 'HIGH', $2, $2, 1, 'site-1', 'shop-panel') RETURNING id
"""
# The hub's own text for a time, as the page computes it (dates.js is the one formatter).
FMT = "async ([iso, zone]) => (await import('./dates.js')).fmtTime(iso, { timeZone: zone })"


@dataclass
class Seeded:
    bank: int
    shop: int
    worked: int      # Bank BURGLARY: the operator ticked, logged a call, FALSE_ALARM, closed
    by_olga: int     # Bank BURGLARY: Olga, TEST, closed
    shop_fire: int   # Shop FIRE: the operator, TECHNICAL_FAULT, closed
    waiting: int     # Bank BURGLARY, still NEW
    operator_id: int
    olga_id: int


async def call(base: str, token: str, method: str, path: str, body: Any = None, status: int = 200) -> Any:
    """One API call with the bearer `token`; asserts the status and answers the JSON."""
    async with aiohttp.ClientSession() as http:
        resp = await http.request(method, f"{base}{path}", json=body, headers={"Authorization": f"Bearer {token}"})
        answer = await resp.json()
        assert resp.status == status, answer
        return answer


async def work(base: str, token: str, bundle: int, resolution: str, *, tick: bool = False, call_note: str = "") -> None:
    """Claim, start, (tick step 1, log a call,) ack, resolve with `resolution` and close, as an operator does."""
    alarm = await call(base, token, "POST", f"/api/v1/alarms/{bundle}/claim", {"version": 1})
    alarm = await call(base, token, "POST", f"/api/v1/alarms/{bundle}/start", {"version": alarm["version"]})
    if tick:
        await call(base, token, "POST", f"/api/v1/alarms/{bundle}/checklist/1")
    if call_note:
        await call(base, token, "POST", f"/api/v1/alarms/{bundle}/dispatch-log", {"entry": call_note}, status=201)
    alarm = await call(base, token, "POST", f"/api/v1/alarms/{bundle}/ack",
                       {"version": alarm["version"], "note": "Patrol found nothing"})
    alarm = await call(base, token, "POST", f"/api/v1/alarms/{bundle}/resolve",
                       {"version": alarm["version"], "resolution": resolution, "note": "Checked on site"})
    await call(base, token, "POST", f"/api/v1/alarms/{bundle}/close", {"version": alarm["version"]})


async def seed(db: asyncpg.Pool, base: str) -> Seeded:
    s = await scene(db, people=False)
    await add_user(db, OPERATOR_EMAIL, "OPERATOR")
    await add_user(db, OLGA_EMAIL, "OPERATOR")
    await add_user(db, MASTER_EMAIL, "MASTER")
    await db.execute("UPDATE users SET display_name = 'Otto Operator', time_zone = $2 WHERE email = $1",
                     OPERATOR_EMAIL, ZONE)
    op = (await sign_in(base, OPERATOR_EMAIL, PASSWORD))["access_token"]
    olga = (await sign_in(base, OLGA_EMAIL, PASSWORD))["access_token"]
    now = datetime.now(timezone.utc).replace(microsecond=0)
    worked = await s.alarm(now - timedelta(minutes=40), zone=3)
    await work(base, op, worked, "FALSE_ALARM", tick=True, call_note="Called the keyholder: all fine")
    by_olga = await s.alarm(now - timedelta(minutes=30), zone=4)
    await work(base, olga, by_olga, "TEST")
    shop_fire = await db.fetchval(SQL_SHOP_FIRE, s.other_object_id, now - timedelta(minutes=20), "NEW")
    await work(base, op, shop_fire, "TECHNICAL_FAULT")
    waiting = await s.alarm(now - timedelta(minutes=5), zone=3)
    ids = {r["email"]: r["id"] for r in await db.fetch("SELECT id, email FROM users")}
    return Seeded(s.object_id, s.other_object_id, worked, by_olga, shop_fire, waiting, ids[OPERATOR_EMAIL],
                  ids[OLGA_EMAIL])


async def rows(page: Any, tbody: str) -> list[int]:
    return await page.eval_on_selector_all(f"{tbody} tr", "(trs) => trs.map((t) => Number(t.dataset.id))")


async def wait_rows(page: Any, tbody: str, ids: list[int]) -> None:
    await page.wait_for_function("([sel, ids]) => JSON.stringify([...document.querySelectorAll(`${sel} tr`)]"
                                 ".map((t) => Number(t.dataset.id))) === JSON.stringify(ids)",
                                 arg=[tbody, ids], timeout=10000)


async def cells(page: Any, table: str) -> list[list[str]]:
    return await page.eval_on_selector_all(f"{table} tbody tr", "(trs) => trs.map((t) => [...t.cells].map((c) => c.textContent))")


async def download(page: Any, link: str) -> bytes:
    """Click the export link `link` and answer the downloaded file's bytes."""
    async with page.expect_download(timeout=15000) as info:
        await page.click(link)
    done = await info.value
    assert await done.failure() is None
    return Path(await done.path()).read_bytes()


def pdf_text(body: bytes) -> str:
    """A PDF's text with all white space removed (table cells wrap anywhere)."""
    assert body.startswith(b"%PDF-")
    return "".join("".join(p.extract_text() for p in PdfReader(io.BytesIO(body)).pages).split())


async def test_an_operator_searches_history_opens_a_past_alarm_and_exports_reports(admin_console: AdminConsole,
                                                                                  db: asyncpg.Pool) -> None:
    base = admin_console.base
    seeded = await seed(db, base)
    async with browser_page() as page:
        await log_in(page, base, OPERATOR_EMAIL)
        assert await page.locator("#nav-history").is_visible() and await page.locator("#nav-reports").is_visible()
        assert await page.locator("#nav-audit").is_hidden()

        # History opens on the closed alarms, newest first.
        await page.click("#nav-history")
        await wait_rows(page, "#history-body", [seeded.shop_fire, seeded.by_olga, seeded.worked])
        await assert_labelled(page, "#view-history")
        assert await page.text_content("#history-count") == "(3)"
        # Times read in the user's zone, with UTC on hover.
        first = await db.fetchval("SELECT first_event_at FROM bundle_alarms WHERE id = $1", seeded.worked)
        cell = page.locator(f"#history-body tr[data-id='{seeded.worked}'] time")
        assert await cell.text_content() == await page.evaluate(FMT, [first.isoformat(), ZONE])
        assert await cell.get_attribute("title") == await page.evaluate(FMT, [first.isoformat(), "UTC"]) + " UTC"
        await shot(page, "history", full_page=True)

        # A time typed in the user's zone (Warsaw) is that zone's wall clock: from a minute before the
        # shop's fire, which is the only later closed alarm.
        shop_at = await db.fetchval("SELECT first_event_at FROM bundle_alarms WHERE id = $1", seeded.shop_fire)
        wall = shop_at.astimezone(ZoneInfo(ZONE)) - timedelta(minutes=1)
        await page.fill("#history-form [name=since]", wall.strftime("%Y-%m-%d %H:%M"))
        await page.click("#history-form button.submit")
        await wait_rows(page, "#history-body", [seeded.shop_fire])
        # A value that is no time is refused beside its field, and nothing is sent.
        for bad, reason in (("2026-13-01", "As YYYY-MM-DD HH:MM"), ("2026-02-30 10:00", "No such date or time")):
            await page.fill("#history-form [name=since]", bad)
            await page.click("#history-form button.submit")
            await wait_error(page, "#history-form [name=since]", reason)
            assert await rows(page, "#history-body") == [seeded.shop_fire]
        await page.fill("#history-form [name=since]", "")

        # Found by object, operator and resolution.
        form = "#history-form"
        await page.select_option(f"{form} [name=object_id]", str(seeded.bank))
        await page.select_option(f"{form} [name=operator]", str(seeded.operator_id))
        await page.select_option(f"{form} [name=resolution]", "FALSE_ALARM")
        await page.click(f"{form} button.submit")
        await wait_rows(page, "#history-body", [seeded.worked])
        assert await page.locator("#history-empty").is_hidden()
        # Olga's alarm is not the operator's; an open one is not closed.
        await page.select_option(f"{form} [name=resolution]", "")
        await page.click(f"{form} button.submit")
        await wait_rows(page, "#history-body", [seeded.worked])
        await page.select_option(f"{form} [name=operator]", "")
        await page.select_option(f"{form} [name=status]", "")
        await page.click(f"{form} button.submit")
        await wait_rows(page, "#history-body", [seeded.waiting, seeded.by_olga, seeded.worked])

        # An empty search says so.
        await page.select_option(f"{form} [name=resolution]", "CONFIRMED_FIRE_BRIGADE")
        await page.click(f"{form} button.submit")
        await page.wait_for_selector("#history-empty:not([hidden])", timeout=10000)
        assert await rows(page, "#history-body") == []
        assert "No alarms match" in (await page.text_content("#history-empty") or "")
        await shot(page, "history-empty", full_page=True)

        # A past alarm opens from its row, at its own URL, with its timeline grouped by kind.
        await page.select_option(f"{form} [name=resolution]", "FALSE_ALARM")
        await page.click(f"{form} button.submit")
        await wait_rows(page, "#history-body", [seeded.worked])
        await page.click(f"#history-body tr[data-id='{seeded.worked}'] td:nth-child(3)")
        await page.wait_for_selector("#view-history-alarm:not([hidden]) .card.timeline[data-kind=transition] tbody tr",
                                     timeout=10000)
        assert page.url.endswith(f"#/history/{seeded.worked}")
        timeline = {kind: await cells(page, f".card.timeline[data-kind={kind}] table")
                    for kind in ("event", "transition", "checklist", "dispatch")}
        assert [r[2] for r in timeline["event"]] == ["Zone 3 Biuro: alarm", "Partition 1 Parter: alarm"]
        assert [r[2] for r in timeline["transition"]] == [
            "Claimed by Otto Operator", "Started by Otto Operator", "Acknowledged by Otto Operator: Patrol found nothing",
            f"Resolved by Otto Operator: {RESOLUTIONS['FALSE_ALARM']} — Checked on site", "Closed by Otto Operator"]
        assert {r[1] for r in timeline["transition"]} == {"Otto Operator"} and {r[1] for r in timeline["event"]} == {"—"}
        ticked = await db.fetchval("SELECT done_at FROM bundle_checklist WHERE bundle_id = $1 AND step = 1", seeded.worked)
        assert timeline["checklist"] == [[await page.evaluate(FMT, [ticked.isoformat(), ZONE]), "Otto Operator",
                                          "☑ 1. Verify the cameras"],
                                         ["—", "—", "☐ 2. Call the keyholder"], ["—", "—", "☐ 3. Send a patrol"]]
        assert [r[1:] for r in timeline["dispatch"]] == [["Otto Operator", "Called the keyholder: all fine"]]
        claimed = await db.fetchval("SELECT at FROM audit_log WHERE action = 'alarm.claim' AND target_id = $1",
                                    str(seeded.worked))
        when = page.locator(".card.timeline[data-kind=transition] tbody tr:first-child time")
        assert await when.text_content() == await page.evaluate(FMT, [claimed.isoformat(), ZONE])
        assert await when.get_attribute("title") == await page.evaluate(FMT, [claimed.isoformat(), "UTC"]) + " UTC"
        done = await page.eval_on_selector_all(".card.timeline[data-kind=checklist] tbody tr", "(trs) => trs.map((t) => t.dataset.done)")
        assert done == ["yes", "no", "no"]
        fields = await page.text_content("#history-alarm-fields") or ""
        assert RESOLUTIONS["FALSE_ALARM"] in fields and "Checked on site" in fields and "CLOSED" in fields
        await shot(page, "history-alarm", full_page=True)

        # The link opens it straight from a fresh load, in under a second.
        await page.reload()
        await page.wait_for_selector("#view-history-alarm:not([hidden]) .card.timeline[data-kind=transition] tbody tr",
                                     timeout=10000)
        timing = await page.evaluate("""() => { const n = performance.getEntriesByType('navigation')[0];
            return n.loadEventEnd - n.startTime; }""")
        assert 0 < timing < 1000, timing

        # Reports: the per-day bars and the table beside them carry the same numbers.
        await page.click("#nav-reports")
        await page.wait_for_selector("#reports-per-day-chart svg rect.bar", timeout=10000)
        await assert_labelled(page, "#view-reports")
        bars = await page.eval_on_selector_all("#reports-per-day-chart rect.bar", "(rs) => rs.map((r) => Number(r.dataset.value))")
        table = [int(r[1]) for r in await cells(page, "#reports-per-day-table")]
        assert bars == table and sum(bars) == 4, (bars, table)
        labels = await page.eval_on_selector_all("#reports-per-day-chart text.axis-label", "(ts) => ts.map((t) => t.textContent)")
        assert labels == ["Day", "Alarms"]
        assert await page.locator("#reports-per-day-chart text.x-tick").count() == len(bars)
        response = await cells(page, "#reports-response-table")
        assert [(r[0], r[1]) for r in response] == [(OPERATOR_EMAIL, "2"), (OLGA_EMAIL, "1")]
        assert all(value != "—" for r in response for value in r)
        assert await page.locator("#reports-response-chart rect.bar").count() == 8  # 2 operators × p50/p90 × claim/ack
        series = await page.eval_on_selector_all("#reports-response-chart rect.bar", "(rs) => rs.map((r) => r.dataset.series)")
        assert sorted(set(series)) == ["Ack p50", "Ack p90", "Claim p50", "Claim p90"]
        ended = {r[0]: int(r[1]) for r in await cells(page, "#reports-resolutions-table")}
        assert ended == {**{label: 0 for label in RESOLUTIONS.values()}, RESOLUTIONS["FALSE_ALARM"]: 1,
                         RESOLUTIONS["TEST"]: 1, RESOLUTIONS["TECHNICAL_FAULT"]: 1, "Not resolved yet": 1}
        await shot(page, "reports", full_page=True)

        # The exports carry the page's filters: one object's alarms only.
        await page.select_option("#reports-form [name=object_id]", str(seeded.shop))
        await page.click("#reports-form button.submit")
        await page.wait_for_function("() => [...document.querySelectorAll('#reports-per-day-chart rect.bar')]"
                                     ".reduce((s, r) => s + Number(r.dataset.value), 0) === 1", timeout=10000)
        csv_link = "a.export-csv[href^='/api/v1/reports/alarms?']"
        href = await page.get_attribute(csv_link, "href") or ""
        assert f"object_id={seeded.shop}" in href and "since=" in href and "until=" in href and "time_zone" not in href
        header, *lines = list(csv.reader(io.StringIO((await download(page, csv_link)).decode())))
        assert [(r[header.index("id")], r[header.index("object_name")], r[header.index("resolution")]) for r in lines] == [
            (str(seeded.shop_fire), "Shop", "TECHNICAL_FAULT")]
        text = pdf_text(await download(page, "a.export-pdf[href^='/api/v1/reports/alarms?']"))
        assert "Alarmhistory" in text and "TECHNICAL_FAULT" in text and "Shop" in text and "FALSE_ALARM" not in text
        assert f"object_id={seeded.shop}" in text
        text = pdf_text(await download(page, "a.export-pdf[href^='/api/v1/reports/response-times?']"))
        assert f"user:{seeded.operator_id}{OPERATOR_EMAIL}1" in text and OLGA_EMAIL not in text
        exports = await db.fetch("SELECT target_id FROM audit_log WHERE action = 'data.exported' ORDER BY id")
        assert [e["target_id"] for e in exports] == ["alarm-history.csv", "alarm-history.pdf", "response-times.pdf"]

        # No Audit page for an operator, and the hub refuses the log.
        await page.evaluate("location.hash = '#/audit'")
        await page.wait_for_selector("#view-queue:not([hidden])", timeout=5000)
        assert await page.locator("#view-audit").is_hidden()
        op = (await sign_in(base, OPERATOR_EMAIL, PASSWORD))["access_token"]
        refused = await call(base, op, "GET", "/api/v1/audit", status=403)
        assert refused["error"]["code"] == "forbidden"
        assert page.js_errors == []


async def test_a_master_filters_and_exports_the_audit_log(admin_console: AdminConsole, db: asyncpg.Pool) -> None:
    base = admin_console.base
    seeded = await seed(db, base)
    async with browser_page() as page:
        await log_in(page, base, MASTER_EMAIL)
        await page.click("#nav-audit")
        await page.wait_for_selector("#audit-body tr", timeout=10000)
        await assert_labelled(page, "#view-audit")

        form = "#audit-form"
        await page.fill(f"{form} [name=action]", "alarm.resolve")
        await page.click(f"{form} button.submit")
        resolves = [r["id"] for r in await db.fetch("SELECT id FROM audit_log WHERE action = 'alarm.resolve' ORDER BY id DESC")]
        await wait_rows(page, "#audit-body", resolves)
        await page.fill(f"{form} [name=actor]", f"user:{seeded.operator_id}")
        await page.click(f"{form} button.submit")
        mine = [r["id"] for r in await db.fetch("SELECT id FROM audit_log WHERE action = 'alarm.resolve' AND actor = $1 "
                                                "ORDER BY id DESC", f"user:{seeded.operator_id}")]
        assert len(mine) == 2
        await wait_rows(page, "#audit-body", mine)
        assert OPERATOR_EMAIL in (await page.text_content("#audit-body") or "")  # the actor, as people know them
        await shot(page, "audit", full_page=True)

        header, *lines = list(csv.reader(io.StringIO((await download(page, "#audit-exports a.export-csv")).decode())))
        assert sorted(int(r[header.index("id")]) for r in lines) == sorted(mine)
        assert {r[header.index("action")] for r in lines} == {"alarm.resolve"}
        text = pdf_text(await download(page, "#audit-exports a.export-pdf"))
        assert "Auditlog" in text and f"actor=user:{seeded.operator_id}" in text and "2rows." in text

        # Times typed as the hub's default zone (UTC: the master chose none).
        first = await db.fetchval("SELECT min(at) FROM audit_log WHERE action = 'alarm.resolve'")
        await page.fill(f"{form} [name=until]", first.strftime("%Y-%m-%d %H:%M"))
        await page.click(f"{form} button.submit")
        await page.wait_for_selector("#audit-empty:not([hidden])", timeout=10000)
        await page.fill(f"{form} [name=until]", "")
        await page.fill(f"{form} [name=since]", first.strftime("%Y-%m-%d %H:%M"))
        await page.click(f"{form} button.submit")
        await wait_rows(page, "#audit-body", mine)

        # An empty filter says so.
        await page.fill(f"{form} [name=action]", "nothing.here")
        await page.click(f"{form} button.submit")
        await page.wait_for_selector("#audit-empty:not([hidden])", timeout=10000)
        assert await rows(page, "#audit-body") == []
        exports = await db.fetch("SELECT actor, target_id FROM audit_log WHERE action = 'data.exported' ORDER BY id")
        master = await db.fetchval("SELECT id FROM users WHERE email = $1", MASTER_EMAIL)
        assert [(e["actor"], e["target_id"]) for e in exports] == [(f"user:{master}", "audit-log.csv"),
                                                                   (f"user:{master}", "audit-log.pdf")]
        assert page.js_errors == []


async def test_history_pages_through_many_alarms(admin_console: AdminConsole, db: asyncpg.Pool) -> None:
    await add_user(db, OPERATOR_EMAIL, "OPERATOR")
    shop = await db.fetchval("INSERT INTO objects (name) VALUES ('Shop') RETURNING id")
    start = datetime.now(timezone.utc) - timedelta(days=2)
    ids = [await db.fetchval(SQL_SHOP_FIRE, shop, start + timedelta(minutes=i), "CLOSED") for i in range(53)]
    newest_first = ids[::-1]
    async with browser_page() as page:
        await log_in(page, admin_console.base, OPERATOR_EMAIL)
        await page.click("#nav-history")
        await wait_rows(page, "#history-body", newest_first[:50])
        assert await page.text_content("#history-range") == "1–50 of 53"
        assert await page.is_disabled("#history-prev")
        await page.click("#history-next")
        await wait_rows(page, "#history-body", newest_first[50:])
        assert await page.text_content("#history-range") == "51–53 of 53"
        assert await page.is_disabled("#history-next")
        await page.click("#history-prev")
        await wait_rows(page, "#history-body", newest_first[:50])
        assert page.js_errors == []
