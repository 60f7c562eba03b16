"""Panel commands in the console (issue 13) in headless Chromium, against the hub's real HTTP app,
auth and live stream on the test database. No edge runs here: the test writes what the edge's
`cmd.result` does at the hub (hub.commands.repository.apply_results and its live updates in one
transaction, as ingest does) and what the publisher does when JetStream has a command (SENT).

An ADMIN arms partition 1 from the object's panel view: the dialog names the site and the
partition, asks for a reason and a user code (a password field, numeric, never autofilled), and
says in words that no code is stored; an answer lost on the way back is retried with the same
Idempotency-Key and gives one command. The partition shows ARMING until the result; a NACK
reverts it and leaves a notice with the panel's reason; a forced arm is ACKed and the partition
follows the panel's state. A DISARMING survives a page reload (read from the open commands). An
OPERATOR sees the transitional state, the command list and the outcome, and no command buttons.
Screenshots land in $VIGIL_CONSOLE_SCREENSHOTS, by default test-artifacts/console/."""
from __future__ import annotations

import json
import re
import uuid
from datetime import datetime, timezone
from typing import Any

import asyncpg
import pytest

from hub.commands.publisher import SQL_SENT
from hub.commands.repository import ResultEvent, apply_results, command_update
from hub.db.outbox import OutboxItem, write_outbox
from shared.commands import CommandResult, Outcome
from support.browser import StreamCut, browser_page
from support.operator_work import Scene, scene
from support.waiting import wait_until
import test_console_admin_browser as admin_browser
from test_console_admin_browser import UNLABELLED, AdminConsole, wait_error
from test_console_browser import ADMIN_EMAIL, OPERATOR_EMAIL, add_user, log_in, shot

pytestmark = pytest.mark.slow
admin_console = admin_browser.admin_console  # the hub's HTTP app, shared with the administration tests

UUID4 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
DISARMED = {"armed": False, "mode": None, "alarm": False}
ARMED = {"armed": True, "mode": 0, "alarm": False}
VIOLATED = "cannot arm: a zone is violated (Zone 3 Biuro); force arming is possible"
NO_ANSWER = "no answer from the panel in time: it may or may not have been carried out"
SQL_STATE = """
INSERT INTO panel_state (panel_id, element, number, state, ord, updated_at) VALUES ($1, 'partition', 1, $2::jsonb, 0, $3)
ON CONFLICT (panel_id, element, number) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at
"""
SQL_COMMANDS = "SELECT * FROM satel_commands ORDER BY created_at"
WAIT_MS = 5000


async def site(db: asyncpg.Pool) -> Scene:
    """Bank's panel (partition 1 Parter, zones 3 Biuro and 4 Hol) with output 2 Syrena, its link
    up and partition 1 disarmed."""
    s = await scene(db, people=False)
    await db.execute("INSERT INTO outputs (panel_id, number, name) VALUES ($1, 2, 'Syrena')", s.panel_id)
    await db.execute("UPDATE panels SET link_status = 'CONNECTED', model = 'INTEGRA 64' WHERE id = $1", s.panel_id)
    await db.execute(SQL_STATE, s.panel_id, json.dumps(DISARMED), datetime.now(timezone.utc))
    return s


async def settle(db: asyncpg.Pool, s: Scene, command_id: str, outcome: Outcome, reason: str,
                 partition: dict[str, Any] | None = None) -> None:
    """What the edge's `cmd.result` for `command_id` does at the hub: the command settled and its
    live update, with (`partition`) the partition's new state from the same batch, in one transaction."""
    now = datetime.now(timezone.utc)
    row = await db.fetchrow("SELECT type, requested_by FROM satel_commands WHERE id = $1", uuid.UUID(command_id))
    body = CommandResult(command_id=command_id, panel="panel-1", type=row["type"], source="MANUAL",
                         who=row["requested_by"], outcome=outcome, code=None, reason=reason)
    async with db.acquire() as conn, conn.transaction():
        items = await apply_results(conn, [ResultEvent(s.site.edge_id, str(uuid.uuid4()), now, body)], now)
        assert len(items) == 1, items
        if partition is not None:
            await conn.execute(SQL_STATE, s.panel_id, json.dumps(partition), now)
            items.append(OutboxItem("panel.state", s.object_id, {"panel_id": s.panel_id, "changes": [
                {"element": "partition", "number": 1, "state": partition, "at": now.isoformat()}]}))
        await write_outbox(conn, items)


async def mark_sent(db: asyncpg.Pool, command_id: str) -> None:
    """What the publisher does once JetStream holds the command."""
    async with db.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(SQL_SENT, uuid.UUID(command_id), datetime.now(timezone.utc))
        await write_outbox(conn, [command_update(row)])


async def text(page: Any, selector: str) -> str:
    return (await page.text_content(selector) or "").strip()


async def show_object(page: Any, s: Scene) -> None:
    await page.evaluate("(h) => { location.hash = h; }", f"#/objects/{s.object_id}")
    await page.wait_for_selector(f"#panel-{s.panel_id} .command-list, #panel-{s.panel_id} .command-empty",
                                 timeout=WAIT_MS)


def part(s: Scene, transitional: str | None = None) -> str:
    """Partition 1's row; with `transitional` ("" for none), only while it shows that."""
    row = f"#panel-{s.panel_id} tr[data-element='partition'][data-number='1']"
    return row if transitional is None else f"{row}[data-transitional='{transitional}']"


async def give(page: Any, s: Scene, button: str, reason: str, code: str, force: bool = False) -> None:
    """Press `button` on partition 1, fill the dialog and send it; wait until it has closed."""
    await page.click(f"{part(s)} button.{button}")
    await page.wait_for_selector("#command-dialog[open]", timeout=WAIT_MS)
    await page.fill("#command-dialog textarea[name=reason]", reason)
    await page.fill("#command-dialog input[name=user_code]", code)
    if force:
        await page.check("#command-dialog input[name=force]")
    await page.click("#command-form button.submit")
    await page.wait_for_selector("#command-dialog", state="detached", timeout=WAIT_MS)


async def newest_command(db: asyncpg.Pool) -> asyncpg.Record:
    return (await db.fetch(SQL_COMMANDS))[-1]


async def test_admin_arms_a_partition_sees_it_arming_then_refused_or_done_and_an_operator_only_watches(
        admin_console: AdminConsole, db: asyncpg.Pool) -> None:
    base = admin_console.base
    s = await site(db)
    await add_user(db, ADMIN_EMAIL, "ADMIN")
    await add_user(db, OPERATOR_EMAIL, "OPERATOR")
    admin_id = await db.fetchval("SELECT id FROM users WHERE email = $1", ADMIN_EMAIL)
    commands = f"#commands-{s.panel_id}"
    keys: list[str | None] = []

    async with browser_page() as page:
        page.on("request", lambda r: keys.append(r.headers.get("idempotency-key"))
                if r.method == "POST" and r.url.endswith(f"/panels/{s.panel_id}/commands") else None)
        await log_in(page, base, ADMIN_EMAIL)
        await show_object(page, s)
        await page.wait_for_selector(f"{part(s)} button.cmd-arm", timeout=WAIT_MS)
        assert await text(page, f"{part(s)} td.state") == "normal"
        buttons = await page.eval_on_selector_all(
            f"#panel-{s.panel_id} tbody tr", "(rows) => rows.map((r) => [r.cells[0].textContent, "
            "[...r.querySelectorAll('button.cmd')].map((b) => b.textContent)])")
        assert buttons == [["Partition 1 Parter", ["Arm", "Disarm", "Clear alarm"]],
                           ["Zone 3 Biuro", ["Bypass", "Unbypass"]], ["Zone 4 Hol", ["Bypass", "Unbypass"]],
                           ["Output 2 Syrena", ["On", "Off"]]]
        assert await text(page, f"#panel-{s.panel_id} .command-empty") == "No commands yet"

        # The confirmation names the site and the partition; its fields are labelled.
        await page.click(f"{part(s)} button.cmd-arm")
        await page.wait_for_selector("#command-dialog[open]", timeout=WAIT_MS)
        assert await text(page, "#command-dialog-title") == "Arm Partition 1 Parter — Bank"
        facts = await text(page, "#command-dialog dl.command-facts")
        assert "Bank" in facts and "Partition 1 Parter" in facts and "INTEGRA 64" in facts, facts
        assert await page.evaluate(UNLABELLED, "#command-dialog") == []
        await shot(page, "commands-dialog")
        code = "#command-dialog input[name=user_code]"
        assert await page.eval_on_selector(code, "(e) => [e.type, e.getAttribute('inputmode'), "
                                                 "e.getAttribute('autocomplete')]") == ["password", "numeric", "off"]
        assert await page.eval_on_selector_all("#command-dialog select[name=mode] option",
                                               "(os) => os.map((o) => o.value)") == ["0", "1", "2", "3"]

        # Refused before sending: no reason, a code that is not 4-8 digits.
        await page.click("#command-form button.submit")
        await wait_error(page, "#command-dialog textarea[name=reason]", "Required")
        await page.fill("#command-dialog textarea[name=reason]", "Closing time")
        await page.fill(code, "12a")
        await page.click("#command-form button.submit")
        await wait_error(page, code, "4 to 8 digits")
        assert keys == []

        # No code typed and none stored: the hub's refusal, in words, beside the code.
        await page.fill(code, "")
        await page.click("#command-form button.submit")
        await wait_error(page, code, "No code is stored for this partition: type the user code")
        assert await db.fetchval("SELECT count(*) FROM satel_commands") == 0

        # The hub's answer is lost on its way back: pressing again sends the same key and the hub
        # gives the command once.
        lost: list[Any] = []

        async def lose_answer(route: Any) -> None:
            if route.request.method == "POST" and not lost:
                lost.append(await route.fetch())
                await route.abort()
            else:
                await route.continue_()

        await page.route(f"**/api/v1/panels/{s.panel_id}/commands", lose_answer)
        await page.fill(code, "1234")
        await page.click("#command-form button.submit")
        await page.wait_for_function(
            "() => document.querySelector('#command-form .form-error').textContent.includes('cannot be reached')",
            timeout=WAIT_MS)
        assert lost and lost[0].status == 202
        await page.unroute(f"**/api/v1/panels/{s.panel_id}/commands")
        await page.click("#command-form button.submit")
        await page.wait_for_selector("#command-dialog", state="detached", timeout=WAIT_MS)
        assert len(keys) == 3 and all(k and UUID4.fullmatch(k) for k in keys), keys
        assert keys[0] != keys[1] == keys[2], keys  # a refused request's key is not reused
        rows = await db.fetch(SQL_COMMANDS)
        assert len(rows) == 1
        arm = rows[0]
        assert (arm["type"], list(arm["partitions"]), arm["mode"], arm["force"], arm["code_from"], arm["requested_by"],
                arm["reason"], arm["status"]) == ("arm", [1], 0, False, "TYPED", f"user:{admin_id}", "Closing time",
                                                  "PENDING")
        assert await page.locator("input[name=user_code]").count() == 0  # the typed code left with the dialog

        # ARMING until the result; the list shows the command live.
        arm_id = str(arm["id"])
        await page.wait_for_selector(part(s, "ARMING"), timeout=WAIT_MS)
        assert await text(page, f"{part(s)} td.state") == "ARMING"
        await page.wait_for_selector(f"{commands} tr[data-id='{arm_id}'][data-status='PENDING']", timeout=WAIT_MS)
        listed = await text(page, f"{commands} tr[data-id='{arm_id}']")
        assert "Closing time" in listed and "Arm Partition 1 Parter, mode 0" in listed and ADMIN_EMAIL in listed
        await shot(page, "commands-arming", full_page=True)

        # NACK: back to the real state, and a notice that stays, with the panel's reason.
        await settle(db, s, arm_id, Outcome.NACK, VIOLATED)
        await page.wait_for_selector(part(s, ""), timeout=WAIT_MS)
        assert await text(page, f"{part(s)} td.state") == "normal"
        notice = f"#notices .notice[data-command='{arm_id}']"
        await page.wait_for_selector(notice, timeout=WAIT_MS)
        assert await text(page, f"{notice} .notice-text") == \
            f"Arm Partition 1 Parter, mode 0 at Bank was refused: {VIOLATED}"
        await page.wait_for_selector(f"{commands} tr[data-id='{arm_id}'][data-status='NACK']", timeout=WAIT_MS)
        assert VIOLATED in await text(page, f"{commands} tr[data-id='{arm_id}'] td.command-result")
        await shot(page, "commands-refused", full_page=True)

        # Forced: SENT still shows ARMING; the ACK ends it and the partition follows the panel.
        await give(page, s, "cmd-arm", "Closing time, the Biuro door is known broken", "1234", force=True)
        forced = await newest_command(db)
        forced_id = str(forced["id"])
        assert forced_id != arm_id and forced["force"] is True
        await page.wait_for_selector(part(s, "ARMING"), timeout=WAIT_MS)
        await mark_sent(db, forced_id)
        await page.wait_for_selector(f"{commands} tr[data-id='{forced_id}'][data-status='SENT']", timeout=WAIT_MS)
        assert await page.locator(part(s, "ARMING")).count() == 1
        await settle(db, s, forced_id, Outcome.ACK, "done", partition=ARMED)
        await page.wait_for_selector(part(s, ""), timeout=WAIT_MS)
        await page.wait_for_function("(sel) => document.querySelector(sel).textContent.includes('armed')",
                                     arg=f"{part(s)} td.state", timeout=WAIT_MS)
        assert set((await text(page, f"{part(s)} td.state")).split(", ")) == {"armed", "mode 0"}
        await page.wait_for_selector(f"{commands} tr[data-id='{forced_id}'][data-status='ACK']", timeout=WAIT_MS)
        assert "forced" in await text(page, f"{commands} tr[data-id='{forced_id}']")
        await page.wait_for_function("() => document.querySelector('#toast').textContent.includes(': done')",
                                     timeout=WAIT_MS)
        assert await page.locator(f"#notices .notice[data-command='{forced_id}']").count() == 0

        # A revoked edge: the hub's refusal under the form, and nothing given.
        await db.execute("UPDATE edges SET revoked_at = now() WHERE edge_id = $1", s.site.edge_id)
        await page.click(f"{part(s)} button.cmd-clear-alarm")
        await page.wait_for_selector("#command-dialog[open]", timeout=WAIT_MS)
        assert await text(page, "#command-dialog-title") == "Clear the alarm of Partition 1 Parter — Bank"
        await page.fill("#command-dialog textarea[name=reason]", "Alarm memory")
        await page.fill("#command-dialog input[name=user_code]", "1234")
        await page.click("#command-form button.submit")
        await page.wait_for_function(
            "() => document.querySelector('#command-form .form-error').textContent.includes('is revoked')",
            timeout=WAIT_MS)
        await page.click("#command-form button.cancel")
        await page.wait_for_selector("#command-dialog", state="detached", timeout=WAIT_MS)
        assert await db.fetchval("SELECT count(*) FROM satel_commands") == 2
        await db.execute("UPDATE edges SET revoked_at = NULL WHERE edge_id = $1", s.site.edge_id)

        # An open disarm is shown again after a reload: read from the panel's open commands.
        await give(page, s, "cmd-disarm", "Cleaning crew", "1234")
        disarm_id = str((await newest_command(db))["id"])
        await page.wait_for_selector(part(s, "DISARMING"), timeout=WAIT_MS)
        await page.reload()
        await page.wait_for_selector("#conn[data-state=up]", timeout=10000)
        await page.wait_for_selector(part(s, "DISARMING"), timeout=WAIT_MS)
        assert page.js_errors == []

    async with browser_page() as page:
        stream = StreamCut(lambda message: "command.updated" in message)
        await stream.install(page)
        await log_in(page, base, OPERATOR_EMAIL)
        await show_object(page, s)
        # The operator sees the open disarm and the commands, and has no button to give one.
        await page.wait_for_selector(part(s, "DISARMING"), timeout=WAIT_MS)
        assert await page.locator(f"#panel-{s.panel_id} button.cmd").count() == 0
        assert await page.locator(f"#panel-{s.panel_id} td.cmd-actions").count() == 0
        assert await page.eval_on_selector_all(f"{commands} tbody tr", "(rs) => rs.map((r) => r.dataset.status)") == \
            ["PENDING", "ACK", "NACK"]
        await shot(page, "commands-operator", full_page=True)
        # The edge's word comes while the stream is cut, and its replay never reaches the page: the
        # console reads the open command again once the stream is back, no longer DISARMING, the
        # state as it was, and tells why.
        await stream.cut(page)
        await settle(db, s, disarm_id, Outcome.TIMEOUT, NO_ANSWER)
        assert await page.locator(part(s, "DISARMING")).count() == 1
        await stream.restore(page)
        await page.wait_for_selector(part(s, ""), timeout=WAIT_MS)
        assert set((await text(page, f"{part(s)} td.state")).split(", ")) == {"armed", "mode 0"}
        notice = f"#notices .notice[data-command='{disarm_id}']"
        await page.wait_for_selector(notice, timeout=WAIT_MS)
        assert NO_ANSWER in await text(page, notice)
        await page.wait_for_selector(f"{commands} tr[data-id='{disarm_id}'][data-status='TIMEOUT']", timeout=WAIT_MS)
        await wait_until(lambda: any(disarm_id in m and "TIMEOUT" in m for m in stream.dropped), timeout=10,
                         what="the replayed result, kept from the page")
        assert page.js_errors == []
