"""The console's operator and supervisor views in headless Chromium (issue 12), against the hub's
real HTTP app, auth, live stream and housekeeping (escalation) on the test database, with alarms
raised by real ingest. An operator claims the top alarm with one key, starts it, ticks checklist
steps (each shows when and who), logs a call to a contact (click-to-call link, outcome), reads
the events in words and the panel's zones by name, acknowledges and resolves with a resolution
picked from the hub's list, and a closed alarm stays under "show resolved". A log entry written on
one console shows in another's open detail live, leaving what is typed there alone. A MASTER
takes over an alarm while the operator's page is open and the operator sees it leave their hands
live, then reassigns it. An alarm left NEW escalates: highlighted, a louder siren, a supervisor notice. A cut
stream disables the action buttons until it is back. The time zone setting changes every shown
time, with UTC on hover. Every form field has a label. Screenshots land in
$VIGIL_CONSOLE_SCREENSHOTS, by default test-artifacts/console/."""
from __future__ import annotations

import asyncio
import re
from datetime import datetime, timedelta, timezone
from typing import Any, AsyncIterator
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from hub.housekeeping import run_housekeeping
from support.browser import browser_page
from support.operator_work import scene
import test_console_admin_browser as admin_browser
from test_console_admin_browser import UNLABELLED, AdminConsole, error_of, wait_error
from test_console_browser import COUNT_TONES, OPERATOR_EMAIL, add_alarm, add_user, log_in, shot

pytestmark = pytest.mark.slow
admin_console = admin_browser.admin_console  # the hub's HTTP app, shared with the administration tests

MASTER_EMAIL = "boss@example.com"
SECOND_EMAIL = "second@example.com"
HUB_ZONE = "UTC"  # console.time_zone in admin_console's hub
BROWSER_ZONE = "America/New_York"  # the browser's own, which the console must not use
ESCALATE_HIGH_S = 2  # HIGH alarms escalate after this; CRITICAL ones never here
HMS = re.compile(r"\d\d:\d\d:\d\d")


@pytest.fixture
async def console(admin_console: AdminConsole, db: asyncpg.Pool) -> AsyncIterator[str]:
    """The hub's HTTP app (test_console_admin_browser's), with the housekeeping sweep escalating
    HIGH alarms after ESCALATE_HIGH_S; the base URL."""
    stop = asyncio.Event()
    housekeeping = asyncio.create_task(run_housekeeping(
        db, stop, sweep_interval_s=0.2, escalate_after={"HIGH": timedelta(seconds=ESCALATE_HIGH_S)}))
    try:
        yield admin_console.base
    finally:
        stop.set()
        await asyncio.wait_for(housekeeping, 10)


async def person(db: asyncpg.Pool, email: str, role: str, name: str) -> int:
    """A user who signs in with test_console_browser.PASSWORD, known by `name`; their id."""
    await add_user(db, email, role)
    return await db.fetchval("UPDATE users SET display_name = $2 WHERE email = $1 RETURNING id", email, name)


async def text(page: Any, selector: str) -> str:
    return await page.text_content(selector) or ""


async def wait_text(page: Any, selector: str, wanted: str, timeout: float = 5000) -> None:
    """Wait until the element `selector` holds `wanted` in its text."""
    await page.wait_for_function(
        "([sel, wanted]) => { const e = document.querySelector(sel); return !!e && e.textContent.includes(wanted); }",
        arg=[selector, wanted], timeout=timeout)


async def assert_labelled(page: Any, scope: str) -> None:
    """`scope` has form fields (a textarea counts) and every one has a label."""
    assert await page.locator(f"{scope} :is(input, select, textarea)").count() > 0, f"no fields in {scope}"
    assert await page.evaluate(UNLABELLED, scope) == [], f"fields without a label in {scope}"


async def open_dialog(page: Any, button: str, dialog: str) -> None:
    """Click `button`, wait for the dialog `dialog` to open, and check that its fields are labelled."""
    await page.click(button)
    await page.wait_for_selector(f"{dialog}[open]", timeout=5000)
    await assert_labelled(page, dialog)


async def live_buttons_disabled(page: Any, scope: str) -> list[bool]:
    return await page.eval_on_selector_all(f"{scope} button[data-live]", "(bs) => bs.map((b) => b.disabled)")


async def test_operator_works_an_alarm_by_keyboard_checklist_call_and_resolution(console: str,
                                                                                 db: asyncpg.Pool) -> None:
    base = console
    s = await scene(db, people=False)
    operator = await person(db, OPERATOR_EMAIL, "OPERATOR", "Olga Operator")
    async with browser_page() as page:
        await log_in(page, base, OPERATOR_EMAIL)
        assert await text(page, "#queue-empty") == "No open alarms."
        assert "claims the top alarm" in await text(page, "#queue-keys")

        alarm_id = await s.alarm(at=datetime.now(timezone.utc))
        row = f"#queue-body tr[data-id='{alarm_id}']"
        await page.wait_for_selector(row, timeout=5000)
        await shot(page, "operator-queue")
        # One key claims the top alarm; the arrows move between rows with a visible focus.
        await page.keyboard.press("c")
        await page.wait_for_selector(f"{row}[data-status='CLAIMING']", timeout=5000)
        assert "Olga Operator" in await text(page, f"{row} td.holder")
        await page.keyboard.press("ArrowDown")
        focus = await page.evaluate("() => { const e = document.activeElement; const s = getComputedStyle(e);"
                                    " return {id: e.dataset.id, style: s.outlineStyle, width: s.outlineWidth}; }")
        assert focus["id"] == str(alarm_id) and focus["style"] != "none" and focus["width"] != "0px", focus
        await page.keyboard.press("Enter")
        await page.wait_for_selector("#view-alarm:not([hidden])", timeout=5000)
        await page.click("#alarm-actions button.act-start")
        await wait_text(page, "#alarm-fields", "IN_PROGRESS")

        # The procedure as a checklist: a ticked step says when and who.
        await page.wait_for_selector("#alarm-checklist li[data-step='3'] button.tick", timeout=5000)
        assert [t.strip() for t in await page.locator("#alarm-checklist .step-text").all_text_contents()] == [
            "Verify the cameras", "Call the keyholder", "Send a patrol"]
        for step in (1, 2):
            await page.click(f"#alarm-checklist li[data-step='{step}'] button.tick")
            await page.wait_for_selector(f"#alarm-checklist li[data-step='{step}'] .step-done", timeout=5000)
        done = await text(page, "#alarm-checklist li[data-step='1'] .step-done")
        assert "Olga Operator" in done and HMS.search(done), done
        assert (await page.get_attribute("#alarm-checklist li[data-step='1'] time", "title") or "").endswith(" UTC")
        assert await page.locator("#alarm-checklist li[data-step='3'] button.tick").count() == 1
        ticked = await db.fetch("SELECT step, done_by FROM bundle_checklist WHERE bundle_id = $1 AND done_at IS NOT NULL "
                                "ORDER BY step", alarm_id)
        assert [(r["step"], r["done_by"]) for r in ticked] == [(1, f"user:{operator}"), (2, f"user:{operator}")]

        # Events in words with the zone's name, and the panel's state table names it too.
        await wait_text(page, "#alarm-events", "Zone 3 Biuro: alarm")
        assert "{" not in await text(page, "#alarm-events")
        await wait_text(page, f"#panel-{s.panel_id} .elements", "Zone 3 Biuro")

        # Contacts in call order with click-to-call; a call's outcome goes to the dispatch log.
        contacts = page.locator("#alarm-contacts tr")
        assert await contacts.count() == 2
        assert "Jan Kowalski" in await contacts.nth(0).text_content()
        assert await page.get_attribute("#alarm-contacts a.call", "href") == "tel:+48600100200"
        assert "no number" in await contacts.nth(1).text_content()
        await page.click("#call-form button.log-call")  # nothing chosen: said so, nothing sent
        await wait_text(page, "#call-form .error", "Choose the contact")
        await page.select_option("#call-contact_id", str(s.contacts[0]))
        await page.select_option("#call-outcome", "NO_ANSWER")
        await page.click("#call-form button.log-call")
        await wait_text(page, "#alarm-log", "Call to Jan Kowalski (+48 600 100 200): no answer")
        log = await text(page, "#alarm-log")
        assert "Olga Operator" in log and "user:" not in log, log
        call = await db.fetchrow("SELECT contact_id, outcome, author FROM dispatch_log WHERE bundle_id = $1", alarm_id)
        assert (call["contact_id"], call["outcome"]) == (s.contacts[0], "NO_ANSWER")
        await assert_labelled(page, "#view-alarm")
        await shot(page, "operator-alarm-detail", full_page=True)

        # Acknowledge with a note (a labelled field), then resolve with a picked resolution.
        await open_dialog(page, "#alarm-actions button.act-ack", "#note-dialog")
        await page.fill("#note-text", "Keyholder unreachable, patrol sent")
        await page.click("#note-ok")
        await wait_text(page, "#alarm-fields", "ACK")
        await open_dialog(page, "#alarm-actions button.act-resolve", "#resolve-dialog")
        options = await page.eval_on_selector_all("#resolve-dialog select[name=resolution] option",
                                                  "(os) => os.map((o) => o.value)")
        assert options[0] == "" and {"FALSE_ALARM", "CONFIRMED_INTRUSION_POLICE", "OTHER"} <= set(options)
        await page.click("#resolve-form button.submit")  # no resolution chosen: refused beside the field
        await wait_error(page, "#resolve-dialog select[name=resolution]", "Choose one")
        assert await db.fetchval("SELECT status FROM bundle_alarms WHERE id = $1", alarm_id) == "ACK"
        await page.select_option("#resolve-dialog select[name=resolution]", "FALSE_ALARM")
        assert await error_of(page, "#resolve-dialog select[name=resolution]") == ""  # a choice clears the refusal
        await page.fill("#resolve-dialog textarea[name=note]", "Door left ajar by the cleaner")
        await shot(page, "operator-resolve-dialog")
        await page.click("#resolve-form button.submit")
        await page.wait_for_selector("#resolve-dialog", state="detached", timeout=5000)
        await wait_text(page, "#alarm-fields", "False alarm (no cause found) — Door left ajar by the cleaner")
        bundle = await db.fetchrow("SELECT status, resolution, resolution_note FROM bundle_alarms WHERE id = $1", alarm_id)
        assert tuple(bundle) == ("RESOLVED", "FALSE_ALARM", "Door left ajar by the cleaner")

        # Closed, it leaves the queue, and "show resolved" still lists it.
        await page.click("#alarm-actions button.act-close")
        await wait_text(page, "#alarm-fields", "CLOSED")
        await page.click("#alarm-back")
        await page.wait_for_selector(row, state="detached", timeout=5000)
        assert await text(page, "#queue-empty") == "No open alarms."
        await page.check("#show-resolved")
        await page.wait_for_selector(f"{row}[data-status='CLOSED']", timeout=5000)
        await page.reload()  # the closed alarm comes back from REST too once the box is ticked
        await page.wait_for_selector("#conn[data-state=up]", timeout=10000)
        timing = await page.evaluate("""() => { const n = performance.getEntriesByType('navigation')[0];
            return n.loadEventEnd - n.startTime; }""")
        assert 0 < timing < 1000, timing
        await page.wait_for_selector(row, state="detached", timeout=5000)
        await page.check("#show-resolved")
        await page.wait_for_selector(f"{row}[data-status='CLOSED']", timeout=5000)

        # An empty search says so.
        await page.click("#nav-objects")
        await page.fill("#object-search", "no such object")
        await wait_text(page, "#object-list", "No objects match “no such object”.")
        await assert_labelled(page, "#view-objects")
        assert page.js_errors == []


async def test_a_master_takes_over_live_while_the_operator_watches_then_reassigns(console: str,
                                                                                db: asyncpg.Pool) -> None:
    base = console
    s = await scene(db, people=False)
    operator = await person(db, OPERATOR_EMAIL, "OPERATOR", "Olga Operator")
    master = await person(db, MASTER_EMAIL, "MASTER", "Maria Master")
    second = await person(db, SECOND_EMAIL, "OPERATOR", "Piotr Second")
    alarm_id = await s.alarm(at=datetime.now(timezone.utc))
    async with browser_page() as op_page, browser_page() as boss_page:
        await log_in(op_page, base, OPERATOR_EMAIL)
        row = f"#queue-body tr[data-id='{alarm_id}']"
        await op_page.click(f"{row} button.act-claim")
        await op_page.click(f"{row}[data-status='CLAIMING'] button.act-start")
        await op_page.wait_for_selector(f"{row}[data-status='IN_PROGRESS']", timeout=5000)
        await op_page.click(f"{row} td.status")
        await op_page.wait_for_selector("#alarm-actions button.act-ack", timeout=5000)
        assert await op_page.locator("#alarm-actions button.act-take-over").count() == 0  # an OPERATOR does not supervise

        await log_in(boss_page, base, MASTER_EMAIL)
        await boss_page.wait_for_selector(f"{row}[data-status='IN_PROGRESS']", timeout=5000)
        assert await boss_page.locator(f"{row} button").count() == 0  # another's alarm: nothing to do from the row
        await boss_page.click(f"{row} td.status")

        # An entry logged on the master's console reaches the operator's open detail live; only
        # the log redraws there, so the call note the operator is typing stays.
        await op_page.fill("#call-entry", "half-typed note")
        await boss_page.fill("#log-entry", "Police informed by phone")
        await boss_page.click("#log-form button[type=submit]")
        await wait_text(op_page, "#alarm-log", "Police informed by phone")
        assert "Maria Master" in await text(op_page, "#alarm-log")
        assert await op_page.input_value("#call-entry") == "half-typed note"
        await op_page.fill("#call-entry", "")
        await open_dialog(boss_page, "#alarm-actions button.act-take-over", "#take-over-dialog")
        assert "Held by Olga Operator" in await text(boss_page, "#take-over-dialog")
        await boss_page.click("#take-over-form button.submit")  # no reason: refused beside the field
        await wait_error(boss_page, "#take-over-dialog textarea[name=reason]", "Required")
        assert await db.fetchval("SELECT claimed_by FROM bundle_alarms WHERE id = $1", alarm_id) == f"user:{operator}"
        await boss_page.fill("#take-over-dialog textarea[name=reason]", "Operator went off shift")
        await shot(boss_page, "supervisor-take-over-dialog")
        await boss_page.click("#take-over-form button.submit")
        await boss_page.wait_for_selector("#alarm-actions button.act-ack", timeout=5000)

        # The operator's page, untouched: a notice, and the alarm's actions leave their hands.
        notice = "#notices .notice[data-notice='take-over']"
        await op_page.wait_for_selector(notice, timeout=5000)
        assert f"Alarm #{alarm_id}" in await text(op_page, notice)
        assert "was taken over by Maria Master: Operator went off shift" in await text(op_page, notice)
        await op_page.wait_for_selector("#alarm-actions button.act-ack", state="detached", timeout=5000)
        assert await op_page.locator("#alarm-checklist button.tick").count() == 0
        await wait_text(op_page, "#alarm-fields", "Maria Master")
        await shot(op_page, "operator-taken-over")
        await op_page.click("#alarm-back")
        await wait_text(op_page, f"{row} td.holder", "Maria Master")
        assert await op_page.locator(f"{row} button").count() == 0
        move = await db.fetchrow("SELECT actor, details FROM audit_log WHERE action = 'alarm.take_over'")
        assert move["actor"] == f"user:{master}"
        assert '"reason": "Operator went off shift"' in move["details"] and f'"previous": "user:{operator}"' in move["details"]

        # Reassigned: the choice lists those who work alarms, not the holder.
        await boss_page.click("#alarm-actions button.act-take-over")
        await boss_page.wait_for_selector("#take-over-dialog[open]", timeout=5000)
        choices = await boss_page.eval_on_selector_all("#take-over-dialog select[name=to_user_id] option",
                                                       "(os) => os.map((o) => [o.value, o.textContent])")
        assert [str(second), "Piotr Second (OPERATOR)"] in choices and [str(operator), "Olga Operator (OPERATOR)"] in choices
        assert all(value != str(master) for value, _ in choices)
        await boss_page.select_option("#take-over-dialog select[name=to_user_id]", str(second))
        assert await text(boss_page, "#take-over-form button.submit") == "Reassign"
        await boss_page.fill("#take-over-dialog textarea[name=reason]", "Piotr knows the site")
        await boss_page.click("#take-over-form button.submit")
        await wait_text(boss_page, "#alarm-fields", "Piotr Second")
        assert await db.fetchval("SELECT claimed_by FROM bundle_alarms WHERE id = $1", alarm_id) == f"user:{second}"
        assert await boss_page.locator("#alarm-actions button.act-ack").count() == 0
        assert op_page.js_errors == [] and boss_page.js_errors == []


async def test_escalation_a_cut_stream_and_the_time_zone_setting(console: str, db: asyncpg.Pool) -> None:
    base = console
    object_id = await db.fetchval("INSERT INTO objects (name, address) VALUES ('Depot', '9 Yard Lane') RETURNING id")
    await person(db, MASTER_EMAIL, "MASTER", "Maria Master")
    async with browser_page() as page:
        await page.add_init_script(COUNT_TONES)
        sockets: list[Any] = []

        def relay(ws: Any) -> None:
            """Pass the live stream through, keeping its socket so the test can cut it."""
            ws.connect_to_server()
            sockets.append(ws)

        await page.route_web_socket(re.compile(r".*/api/v1/ws\b.*"), relay)
        cdp = await page.context.new_cdp_session(page)
        await cdp.send("Emulation.setTimezoneOverride", {"timezoneId": BROWSER_ZONE})
        assert await page.evaluate("Intl.DateTimeFormat().resolvedOptions().timeZone") == BROWSER_ZONE
        await log_in(page, base, MASTER_EMAIL)

        # A HIGH alarm left NEW escalates: highlighted, the louder siren, a notice for a supervisor.
        alarm_id, _ = await add_alarm(db, object_id, priority="HIGH", alarm_type="BURGLARY")
        row = f"#queue-body tr[data-id='{alarm_id}']"
        await page.wait_for_selector(row, timeout=5000)
        assert "escalated" not in (await page.get_attribute(row, "class") or "")
        assert await page.evaluate("window.__tones") == 0  # HIGH does not sound before it escalates
        await page.wait_for_selector(f"{row}.escalated .escalated-tag", timeout=10000)
        await page.wait_for_function("() => document.body.dataset.siren === 'escalated' && window.__tones > 0",
                                     timeout=5000)
        notice = "#notices .notice[data-notice='escalated']"
        await wait_text(page, notice, f"Escalated: HIGH BURGLARY at Depot still unclaimed after {ESCALATE_HIGH_S} s")
        assert await db.fetchval("SELECT escalated_at IS NOT NULL FROM bundle_alarms WHERE id = $1", alarm_id)
        await shot(page, "supervisor-escalated")
        await page.click(f"{notice} button.notice-open")
        await page.wait_for_selector("#view-alarm:not([hidden]) #alarm-actions button.act-claim", timeout=5000)
        assert await live_buttons_disabled(page, "#view-alarm") == [False, False]  # claim, and Add to the log

        # The stream is cut: the action buttons are disabled until it is back.
        async def refuse(route: Any) -> None:
            await route.abort()

        await page.route("**/api/v1/auth/ws-ticket", refuse)
        await sockets[-1].close()
        await page.wait_for_selector("#banner:not([hidden])", timeout=10000)
        assert await live_buttons_disabled(page, "#view-alarm") == [True, True]
        assert await live_buttons_disabled(page, "#queue-body") == [True]
        await shot(page, "supervisor-stream-down")
        await page.unroute("**/api/v1/auth/ws-ticket", refuse)
        await page.wait_for_selector("#banner", state="hidden", timeout=30000)
        await page.wait_for_function("() => [...document.querySelectorAll('button[data-live]')].every((b) => !b.disabled)",
                                     timeout=5000)
        await page.click("#alarm-actions button.act-claim")
        await wait_text(page, "#alarm-fields", "CLAIMING")
        await page.wait_for_function("() => !document.body.classList.contains('sounding')", timeout=5000)

        # Times in the hub's zone by default, in the chosen zone once set, UTC on hover.
        first = await db.fetchval("SELECT first_event_at FROM bundle_alarms WHERE id = $1", alarm_id)

        def shown_in(zone: str) -> str:
            return first.astimezone(ZoneInfo(zone)).strftime("%H:%M:%S")

        first_time = "#alarm-fields dd time"
        assert shown_in(HUB_ZONE) in await text(page, first_time)
        utc_title = f"{first.astimezone(timezone.utc).strftime('%H:%M:%S')} UTC"
        assert (await page.get_attribute(first_time, "title") or "").endswith(utc_title)
        await open_dialog(page, "#settings", "#settings-dialog")
        assert await page.input_value("#settings-dialog select[name=time_zone]") == ""
        await page.select_option("#settings-dialog select[name=time_zone]", "Asia/Tokyo")
        await shot(page, "settings-dialog")
        await page.click("#settings-form button.submit")
        await page.wait_for_selector("#settings-dialog", state="detached", timeout=5000)
        await wait_text(page, first_time, shown_in("Asia/Tokyo"))
        assert (await page.get_attribute(first_time, "title") or "").endswith(utc_title)
        assert await db.fetchval("SELECT time_zone FROM users WHERE email = $1", MASTER_EMAIL) == "Asia/Tokyo"
        # A zone the hub does not know is refused beside the field, and nothing changes.
        await page.click("#settings")
        await page.wait_for_selector("#settings-dialog[open]", timeout=5000)
        await page.eval_on_selector("#settings-dialog select[name=time_zone]",
                                    "(s) => { s.add(new Option('Mars/Olympus', 'Mars/Olympus')); s.value = 'Mars/Olympus'; }")
        await page.click("#settings-form button.submit")
        await wait_error(page, "#settings-dialog select[name=time_zone]", "not an IANA time zone name")
        assert "Mars/Olympus" in await error_of(page, "#settings-dialog select[name=time_zone]")
        assert await db.fetchval("SELECT time_zone FROM users WHERE email = $1", MASTER_EMAIL) == "Asia/Tokyo"
        await page.select_option("#settings-dialog select[name=time_zone]", "")  # back to the hub's
        await page.click("#settings-form button.submit")
        await page.wait_for_selector("#settings-dialog", state="detached", timeout=5000)
        await wait_text(page, first_time, shown_in(HUB_ZONE))
        assert await db.fetchval("SELECT time_zone FROM users WHERE email = $1", MASTER_EMAIL) is None
        assert page.js_errors == []
