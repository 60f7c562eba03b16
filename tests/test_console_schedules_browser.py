"""Auto-arm schedules, open/close supervision, stored user codes, holidays and the morning report
in the console (issue 13), in headless Chromium against the hub's real HTTP app, auth and live
stream on the test database.

An ADMIN, on the panel's administration page, adds a schedule (22:00, Mon–Fri, Europe/Warsaw),
sees it listed, edits it and deletes it; a time zone the hub does not know is refused beside its
field. A supervision window that closes before it opens is refused beside the field the hub names,
then one is added. A user code is stored from a dialog (a numeric password input, never
autofilled), listed as stored without the code anywhere on the page or in clear in the database,
wiped from the dialog's input when it closes, and removed after a confirmation. A holiday is added
for one object on the Holidays page, and the same day again is refused beside the day. An OPERATOR
sees a panel's schedule, its runs and its supervision on the Objects page read-only, with no edit
controls and no user codes, and finds a FAILED run and a supervision alarm in the morning report
on the Reports page and in its CSV export."""
from __future__ import annotations

import csv
import io
from datetime import datetime, time, timedelta, timezone
from typing import Any

import asyncpg
import pytest

from support.browser import browser_page
from support.operator_work import Scene, scene
import test_console_admin_browser as admin_browser
from test_console_admin_browser import AdminConsole, UNLABELLED, confirm, error_of, open_admin, wait_error
from test_console_browser import ADMIN_EMAIL, OPERATOR_EMAIL, add_user, log_in, shot
from test_console_reports_browser import cells, download
from test_secret_replays import _text_anywhere

pytestmark = pytest.mark.slow
admin_console = admin_browser.admin_console  # the hub's HTTP app, shared with the administration tests

WAIT_MS = 5000
WARSAW = "Europe/Warsaw"
# Eight digits: a shorter code could turn up by chance inside a random id somewhere in the database.
CODE = "90817263"
SQL_SCHEDULES = "SELECT * FROM auto_arm_schedules ORDER BY id"
SQL_SCHEDULE = """
INSERT INTO auto_arm_schedules (panel_id, partition, at_time, days, time_zone, created_by)
VALUES ($1, 1, '22:00', '{1,2,3,4,5}', $2, 'user:1') RETURNING id
"""
SQL_SUPERVISION = """
INSERT INTO partition_supervision (panel_id, partition, time_zone, days, open_from, open_until, close_by, created_by)
VALUES ($1, 1, $2, '{1,2,3,4,5}', '07:00', '09:00', '18:00', 'user:1') RETURNING id
"""
# A run as the scheduler records it (tests/test_auto_arm.py writes them the same way).
SQL_RUN = """
INSERT INTO auto_arm_runs (schedule_id, panel_id, object_id, partition, due_at, outcome, detail, created_at, decided_at)
VALUES ($1, $2, $3, 1, $4, $5, $6, $4, $4)
"""
SQL_SUPERVISION_ALARM = """
INSERT INTO supervision_alarms (supervision_id, panel_id, object_id, partition, kind, local_day, at, priority, detail,
                                raised_at)
VALUES ($1, $2, $3, 1, 'FAILED_TO_CLOSE', $4, $5, 'NORMAL', 'Partition 1 was not armed by 18:00', $5)
"""
NO_CODE = "no user code is stored for partition 1"
# How many buttons, inputs, selects and forms are inside `scope`.
CONTROLS = "(scope) => [...document.querySelectorAll(`${scope} button, ${scope} input, ${scope} select, ${scope} form`)].length"


async def show_panel(page: Any, s: Scene) -> None:
    await page.evaluate("(h) => { location.hash = h; }", f"#/admin-panel/{s.panel_id}")
    await page.wait_for_selector("#schedule-form", timeout=WAIT_MS)
    await page.wait_for_selector("#supervision-form", timeout=WAIT_MS)
    await page.wait_for_selector("#user-code-add", timeout=WAIT_MS)


async def set_days(page: Any, form: str, days: list[int]) -> None:
    for day in range(1, 8):
        await page.set_checked(f"{form} input[name=days][value='{day}']", day in days)


async def schedule_rows(page: Any, s: Scene) -> list[list[str]]:
    """The schedule table's rows (without the runs rows), their cells' text but the buttons'."""
    return await page.eval_on_selector_all(
        f"#auto-arm-{s.panel_id} > tbody > tr[data-schedule]",
        "(trs) => trs.map((t) => [...t.cells].filter((c) => !c.querySelector('button')).map((c) => c.textContent))")


async def no_code_on_page(page: Any) -> None:
    """The code is nowhere in the page's text, attributes or inputs."""
    found = await page.evaluate("""(code) => document.documentElement.outerHTML.includes(code)
        || [...document.querySelectorAll('input')].some((i) => i.value.includes(code))""", CODE)
    assert not found


async def test_admin_keeps_auto_arm_supervision_user_codes_and_holidays(admin_console: AdminConsole,
                                                                        db: asyncpg.Pool) -> None:
    base = admin_console.base
    s = await scene(db, people=False)
    await add_user(db, ADMIN_EMAIL, "ADMIN")

    async with browser_page() as page:
        await log_in(page, base, ADMIN_EMAIL)
        await show_panel(page, s)
        for card in ("#panel-auto-arm-card", "#panel-supervision-card", "#panel-user-codes-card"):
            assert await page.evaluate(UNLABELLED, card) == [], card
        assert await page.text_content(f"#auto-arm-{s.panel_id}") == "No auto-arm schedules."

        # Add: 22:00 on Monday to Friday in Warsaw.
        form = "#schedule-form"
        await page.select_option(f"{form} [name=partition]", "1")
        await page.fill(f"{form} [name=at_time]", "22:00")
        await set_days(page, form, [1, 2, 3, 4, 5])
        await page.fill(f"{form} [name=time_zone]", WARSAW)
        await page.click(f"{form} button.submit")
        await page.wait_for_selector(f"#auto-arm-{s.panel_id} tr[data-schedule]", timeout=WAIT_MS)
        [row] = await schedule_rows(page, s)
        assert row[:7] == ["Partition 1 Parter", "22:00", "Mon–Fri", WARSAW, "0", "no", "yes"]
        assert row[8] == "—"  # no run yet
        [stored] = await db.fetch(SQL_SCHEDULES)
        assert (stored["partition"], stored["at_time"], stored["days"], stored["time_zone"], stored["enabled"]) == \
            (1, time(22, 0), [1, 2, 3, 4, 5], WARSAW, True)

        # A time zone the hub does not know: refused beside its field, nothing stored.
        await page.select_option(f"{form} [name=partition]", "1")
        await page.fill(f"{form} [name=at_time]", "06:00")
        await page.fill(f"{form} [name=time_zone]", "Mars/Olympus")
        await page.click(f"{form} button.submit")
        await wait_error(page, f"{form} [name=time_zone]", "not an IANA time zone")
        assert await error_of(page, f"{form} [name=at_time]") == ""
        assert len(await db.fetch(SQL_SCHEDULES)) == 1
        await shot(page, "schedules-bad-zone", full_page=True)

        # Edit: 21:30, forced on a violated zone, Saturday too.
        sid = stored["id"]
        await page.click(f"tr[data-schedule='{sid}'] button.edit")
        form = f"#schedule-form[data-editing='{sid}']"
        await page.wait_for_selector(form, timeout=WAIT_MS)
        assert await page.input_value(f"{form} [name=at_time]") == "22:00"
        await page.fill(f"{form} [name=at_time]", "21:30")
        await page.check(f"{form} [name=force_on_violation]")
        await page.check(f"{form} input[name=days][value='6']")
        await page.click(f"{form} button.submit")
        await page.wait_for_selector(f"tr[data-schedule='{sid}'][data-version='2']", timeout=WAIT_MS)
        [row] = await schedule_rows(page, s)
        assert row[:7] == ["Partition 1 Parter", "21:30", "Mon–Sat", WARSAW, "0", "yes", "yes"]
        [stored] = await db.fetch(SQL_SCHEDULES)
        assert (stored["at_time"], stored["days"], stored["force_on_violation"], stored["version"]) == \
            (time(21, 30), [1, 2, 3, 4, 5, 6], True, 2)

        # Delete, after a confirmation naming it.
        await page.click(f"tr[data-schedule='{sid}'] button.delete")
        await confirm(page, "Partition 1 Parter at 21:30")
        await page.wait_for_selector(f"tr[data-schedule='{sid}']", state="detached", timeout=WAIT_MS)
        assert await db.fetch(SQL_SCHEDULES) == []

        # Supervision: a window closing before it opens is refused beside the field the hub names.
        form = "#supervision-form"
        await page.select_option(f"{form} [name=partition]", "1")
        await page.fill(f"{form} [name=time_zone]", WARSAW)
        await page.fill(f"{form} [name=open_from]", "07:00")
        await page.fill(f"{form} [name=open_until]", "06:30")
        await page.fill(f"{form} [name=close_by]", "18:00")
        await page.click(f"{form} button.submit")
        await wait_error(page, f"{form} [name=open_until]", "later than open_from")
        await page.fill(f"{form} [name=open_until]", "09:00")
        await page.click(f"{form} button.submit")
        await page.wait_for_selector(f"#supervision-{s.panel_id} tr[data-supervision]", timeout=WAIT_MS)
        assert (await cells(page, f"#supervision-{s.panel_id}"))[0][:6] == \
            ["Partition 1 Parter", "Mon–Fri", "07:00–09:00", "18:00", WARSAW, "yes"]
        sup = await db.fetchrow("SELECT * FROM partition_supervision")
        assert (sup["open_from"], sup["open_until"], sup["close_by"]) == (time(7), time(9), time(18))

        # A stored user code: the dialog's input is a numeric password, never autofilled.
        assert await page.text_content(f"#user-codes-{s.panel_id}") == "No code is stored."
        await page.click("#user-code-add")
        await page.wait_for_selector("#user-code-dialog[open]", timeout=WAIT_MS)
        assert await page.evaluate(UNLABELLED, "#user-code-dialog") == []
        code = "#user-code-dialog input[name=code]"
        assert [await page.get_attribute(code, a) for a in ("type", "inputmode", "autocomplete")] == \
            ["password", "numeric", "off"]
        assert await page.input_value("#user-code-dialog [name=partition]") == "0"  # the whole panel
        await page.fill(code, "12ab")
        await page.click("#user-code-form button.submit")
        await wait_error(page, code, "4 to 8 digits")
        await page.fill(code, CODE)
        await page.click("#user-code-form button.submit")
        await page.wait_for_selector("#user-code-dialog", state="detached", timeout=WAIT_MS)
        await page.wait_for_selector(f"#user-codes-{s.panel_id} tr[data-partition='0']", timeout=WAIT_MS)
        [row] = await cells(page, f"#user-codes-{s.panel_id}")
        assert row[:2] == ["Whole panel", ADMIN_EMAIL]
        await no_code_on_page(page)
        assert await db.fetchval("SELECT count(*) FROM panel_user_codes WHERE panel_id = $1 AND partition = 0",
                                 s.panel_id) == 1
        assert await _text_anywhere(db, CODE) == []

        # Typed into Replace and cancelled: the input is wiped as the dialog closes, nothing is sent.
        updated = await db.fetchval("SELECT updated_at FROM panel_user_codes WHERE panel_id = $1", s.panel_id)
        await page.click(f"#user-codes-{s.panel_id} tr[data-partition='0'] button.replace")
        await page.wait_for_selector("#user-code-dialog[open]", timeout=WAIT_MS)
        typed = await page.query_selector(code)
        await typed.fill("55554444")
        await page.click("#user-code-dialog button.cancel")
        await page.wait_for_selector("#user-code-dialog", state="detached", timeout=WAIT_MS)
        assert await typed.evaluate("(i) => i.value") == ""
        assert await db.fetchval("SELECT updated_at FROM panel_user_codes WHERE panel_id = $1", s.panel_id) == updated

        # Removed after a confirmation naming it.
        await page.click(f"#user-codes-{s.panel_id} tr[data-partition='0'] button.delete")
        await confirm(page, "Whole panel")
        await page.wait_for_selector(f"#user-codes-{s.panel_id} tr[data-partition='0']", state="detached",
                                     timeout=WAIT_MS)
        assert await db.fetchval("SELECT count(*) FROM panel_user_codes") == 0
        assert "null" not in (await page.text_content("#admin-panel-body") or "")
        await shot(page, "schedules-admin-panel", full_page=True)

        # On the Objects page the supervision is shown read-only, with a link to change it here.
        await page.evaluate("(h) => { location.hash = h; }", f"#/objects/{s.object_id}")
        await page.wait_for_selector(f"#object-schedules tr[data-supervision='{sup['id']}']", timeout=WAIT_MS)
        assert await page.get_attribute("#object-schedules a.edit-schedules", "href") == f"#/admin-panel/{s.panel_id}"
        assert await page.evaluate(CONTROLS, "#object-schedules") == 0

        # A holiday for the Bank only; the same day again is refused beside the day.
        await open_admin(page, "nav-admin-holidays", "view-admin-holidays")
        await page.wait_for_selector("#holiday-form", timeout=WAIT_MS)
        assert await page.evaluate(UNLABELLED, "#view-admin-holidays") == []
        assert await page.text_content("#holidays-table") == "No holidays yet."
        for attempt in range(2):
            await page.fill("#holiday-form [name=day]", "2026-12-25")
            await page.fill("#holiday-form [name=name]", "Christmas Day")
            await page.select_option("#holiday-form [name=object_id]", str(s.object_id))
            await page.click("#holiday-form button.submit")
            if attempt == 0:
                await page.wait_for_selector("#holidays-table tr[data-holiday]", timeout=WAIT_MS)
        await wait_error(page, "#holiday-form [name=day]", "already exists")
        assert [r[:4] for r in await cells(page, "#holidays-table")] == \
            [["2026-12-25", "Christmas Day", "Bank", ADMIN_EMAIL]]
        [holiday] = await db.fetch("SELECT object_id, day, name FROM holidays")
        assert (holiday["object_id"], holiday["day"].isoformat(), holiday["name"]) == \
            (s.object_id, "2026-12-25", "Christmas Day")
        await shot(page, "schedules-holidays", full_page=True)
        assert page.js_errors == []


async def test_an_operator_sees_schedules_read_only_and_the_morning_report(admin_console: AdminConsole,
                                                                           db: asyncpg.Pool) -> None:
    base = admin_console.base
    s = await scene(db, people=False)
    await add_user(db, OPERATOR_EMAIL, "OPERATOR")
    schedule = await db.fetchval(SQL_SCHEDULE, s.panel_id, WARSAW)
    supervision = await db.fetchval(SQL_SUPERVISION, s.panel_id, WARSAW)
    due = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=3)
    await db.execute(SQL_RUN, schedule, s.panel_id, s.object_id, due - timedelta(days=1), "ARMED", "")
    await db.execute(SQL_RUN, schedule, s.panel_id, s.object_id, due, "FAILED", NO_CODE)
    await db.execute(SQL_SUPERVISION_ALARM, supervision, s.panel_id, s.object_id, due.date(), due + timedelta(minutes=5))

    async with browser_page() as page:
        await log_in(page, base, OPERATOR_EMAIL)
        await page.evaluate("(h) => { location.hash = h; }", f"#/objects/{s.object_id}")
        block = f"#object-schedules .panel-schedules[data-panel='{s.panel_id}']"
        await page.wait_for_selector(f"{block} #auto-arm-{s.panel_id} tr[data-schedule='{schedule}']", timeout=WAIT_MS)
        await page.wait_for_selector(f"{block} #supervision-{s.panel_id} tr[data-supervision='{supervision}']",
                                     timeout=WAIT_MS)
        assert "null" not in (await page.text_content("#object-schedules") or "")
        [row] = await schedule_rows(page, s)
        assert row[:7] == ["Partition 1 Parter", "22:00", "Mon–Fri", WARSAW, "0", "no", "yes"]
        assert row[8] == "FAILED"  # the newest run
        runs = await page.eval_on_selector_all(f"{block} tr[data-runs-of='{schedule}'] tr[data-run]",
                                               "(trs) => trs.map((t) => [t.dataset.outcome, t.cells[2].textContent])")
        assert runs == [["FAILED", NO_CODE], ["ARMED", ""]]
        assert (await cells(page, f"#supervision-{s.panel_id}"))[0] == \
            ["Partition 1 Parter", "Mon–Fri", "07:00–09:00", "18:00", WARSAW, "yes"]
        # Read-only: nothing to press or type, no link to change them, no user codes.
        assert await page.evaluate(CONTROLS, "#object-schedules") == 0
        assert await page.locator("#object-schedules a.edit-schedules").count() == 0
        assert await page.locator(f"#user-codes-{s.panel_id}, #user-code-add, #schedule-form, #supervision-form").count() == 0
        await shot(page, "schedules-operator", full_page=True)

        # The morning report: the FAILED run and the supervision alarm, not the ARMED run.
        await page.click("#nav-reports")
        await page.wait_for_selector("#reports-auto-arm-table", timeout=WAIT_MS)
        rows = await cells(page, "#reports-auto-arm-table")
        assert [r[1:] for r in rows] == [
            ["Auto-arm failed", "—", "Bank", f"Panel #{s.panel_id}, partition 1", NO_CODE, "—"],
            ["Failed to close", "NORMAL", "Bank", f"Panel #{s.panel_id}, partition 1",
             "Partition 1 was not armed by 18:00", "—"]]
        totals = await page.text_content("#reports-auto-arm .auto-arm-totals")
        assert totals == "Auto-arm failed: 1 · Failed to close: 1"
        header, *lines = list(csv.reader(io.StringIO(
            (await download(page, "#reports-auto-arm a.export-csv")).decode())))
        assert [dict(zip(header, line))["what"] for line in lines] == ["FAILED", "FAILED_TO_CLOSE"]
        assert dict(zip(header, lines[0]))["detail"] == NO_CODE
        await shot(page, "schedules-morning-report", full_page=True)
        assert page.js_errors == []
