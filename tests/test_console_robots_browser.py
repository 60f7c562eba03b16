"""The console's Robots pages (issue 15) in headless Chromium, against the hub's real HTTP app, auth
and live stream on the test database. Robots report through the hub's real ingest path (edge
events from support.robots committed as an edge's batch would be); no edge runs here, so the test
marks a command SENT as the publisher does once JetStream holds it.

An OPERATOR sees the list with each robot's object, connection, state and battery, a robot not heard
from for ten minutes greyed with its time, and a status change live. The detail shows what the robot
is and can do and where it is as coordinates, then on the site plan an ADMIN chooses there, the
marker where the pose puts it and moving with the next sample. The operator takes the lease (its
holder, fencing token and expiry shown; renewed while the page is open), gives a goto with a reason
(one Idempotency-Key), and its row goes REQUESTED → SENT → ACKED → RUNNING 50 % → FINISHED with the
robot's word as the acks are ingested; cancels a dock before it is sent; asks for a max speed the
hub refuses (its reason beside the field), then one it takes, pending until the robot reports
running with it, and names the robot (its display name and tags: the hub's metadata, saved as
typed). A second operator is refused the lease by name and stops the robot without one; a MASTER
takes the lease over with a reason, and its holder is told at once. A TECHNICIAN sees the robot
read-only (the emergency stop there, disabled), a robot outside their objects as a missing one, and,
after a cut stream whose replay never reaches the page, the list read again. Screenshots land in
$VIGIL_CONSOLE_SCREENSHOTS, by default test-artifacts/console/."""
from __future__ import annotations

import json
import re
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, AsyncIterator

import aiohttp
import asyncpg
import pytest
from aiohttp import FormData

from hub.config import RobotSettings
from hub.db.outbox import write_outbox
from hub.robots import repository
from hub.secret_box import SecretBox
from shared.robots import AckStatus, RobotState
from support import robots as rb
from support.browser import StreamCut, browser_page, require_browser
from support.console_app import console_app
from support.waiting import wait_until
from test_console_admin_browser import sign_in, wait_error
from test_console_browser import ADMIN_EMAIL, OPERATOR_EMAIL, PASSWORD, add_user, log_in, shot
from test_robots_plan_api import png

pytestmark = pytest.mark.slow

LEASE_TTL_S = 12  # the page renews a lease at a third of what is left: a renewal within seconds
SECOND_EMAIL = "second@example.com"
TECHNICIAN_EMAIL = "tech@example.com"
MASTER_EMAIL = "boss@example.com"
PEOPLE = {OPERATOR_EMAIL: ("OPERATOR", "Olga Nowak"), SECOND_EMAIL: ("OPERATOR", "Piotr Lis"),
          TECHNICIAN_EMAIL: ("TECHNICIAN", "Tomasz Technik"), ADMIN_EMAIL: ("ADMIN", "Ada Admin"),
          MASTER_EMAIL: ("MASTER", "Maria Master")}
ROBOT = "RB-001"
WAIT_MS = 5000
SQL_LEASE = "SELECT id, expires_at FROM robot_leases WHERE robot_id = $1 AND released_at IS NULL"
SQL_COMMAND = "SELECT * FROM robot_commands WHERE command_type = $1 ORDER BY created_at DESC LIMIT 1"


@pytest.fixture
async def console(db: asyncpg.Pool, db_dsn: str, tmp_path: Path) -> AsyncIterator[str]:
    """The hub's HTTP app (REST API, login, live stream, console) on a free port, with short leases."""
    require_browser()
    async with console_app(db, db_dsn, tmp_path, SecretBox.generate(),
                           robots=RobotSettings(lease_ttl_s=LEASE_TTL_S)) as base:
        yield base


def row(robot: str) -> str:
    return f"#robots-body tr[data-robot='{robot}']"


def command_row(command_id: str, status: str | None = None) -> str:
    selector = f"#robot-command-list tr[data-id='{command_id}']"
    return selector if status is None else f"{selector}[data-status='{status}']"


async def text(page: Any, selector: str) -> str:
    return (await page.text_content(selector) or "").strip()


async def wait_text(page: Any, selector: str, words: str) -> None:
    await page.wait_for_function("([sel, words]) => { const e = document.querySelector(sel); "
                                 "return !!e && e.textContent.includes(words); }", arg=[selector, words], timeout=WAIT_MS)


async def open_robot(page: Any, robot: str) -> None:
    await page.evaluate("(h) => { location.hash = h; }", f"#/robots/{robot}")
    await page.wait_for_selector("#view-robot:not([hidden]) #robot-facts dd", timeout=WAIT_MS)


async def mark_sent(db: asyncpg.Pool, command_id: str) -> None:
    """What the publisher does once JetStream holds the command."""
    async with db.acquire() as conn, conn.transaction():
        await write_outbox(conn, await repository.mark_sent(conn, uuid.UUID(command_id), datetime.now(timezone.utc)))


async def upload_image(base: str, object_id: int) -> int:
    """An ADMIN uploads the yard's image to the object (as its documents page would)."""
    token = (await sign_in(base, ADMIN_EMAIL, PASSWORD))["access_token"]
    async with aiohttp.ClientSession() as http:
        form = FormData()
        form.add_field("file", png(400, 200), filename="yard.png", content_type="image/png")
        async with http.post(f"{base}/api/v1/objects/{object_id}/documents", data=form,
                             headers={"Authorization": f"Bearer {token}"}) as resp:
            assert resp.status == 201, await resp.text()
            return int((await resp.json())["id"])


async def choose_plan(base: str, document_id: int) -> None:
    """An ADMIN makes the image the plan on the robot's page: 20 m × 10 m from (0, 0)."""
    async with browser_page() as page:
        await log_in(page, base, ADMIN_EMAIL)
        await open_robot(page, ROBOT)
        await page.wait_for_selector("#robot-plan-picker", timeout=WAIT_MS)
        assert not await page.is_visible("#robot-plan-form")  # folded until asked for
        await page.click("#robot-plan-picker > summary")
        form = "#robot-plan-form"
        await page.select_option(f"{form} [name=documentId]", str(document_id))
        await page.fill(f"{form} [name=widthM]", "0")
        await page.fill(f"{form} [name=heightM]", "10")
        await page.click(f"{form} button.submit")
        await wait_error(page, f"{form} [name=widthM]", "More than 0")
        await page.fill(f"{form} [name=widthM]", "20")
        await page.click(f"{form} button.submit")
        await page.wait_for_selector("#robot-plan[data-loaded='true'] #robot-marker", timeout=WAIT_MS)
        assert page.js_errors == []


async def test_operators_follow_and_command_a_robot_and_a_technician_only_watches(
        console: str, db: asyncpg.Pool) -> None:
    base = console
    site, object_id = await rb.robot_site(db, "site-r", "Warehouse")
    await site.ingest(rb.identity(site, ROBOT, firmware="2.4.1", name="Gate patrol"),
                      rb.capability(site, ROBOT, commands=["goto", "patrol", "dock", "pause", "resume", "reset", "estop",
                                                          "cancel"]),
                      rb.status(site, ROBOT, RobotState.IDLE, 81.5), rb.connection(site, ROBOT, "ONLINE"),
                      rb.telemetry(site, ROBOT, 5.0, 2.5, battery=81.5))
    heard = datetime.now(timezone.utc) - timedelta(minutes=10)  # RB-OLD fell silent ten minutes ago
    await site.ingest(rb.status(site, "RB-OLD", RobotState.PATROLLING, 40.0, at=heard),
                      rb.connection(site, "RB-OLD", "ONLINE", at=heard))
    office, _ = await rb.robot_site(db, "site-o", "Office")  # not the technician's object
    await office.ingest(rb.status(office, "RB-OFFICE"), rb.connection(office, "RB-OFFICE", "ONLINE"))
    for email, (role, name) in PEOPLE.items():
        await add_user(db, email, role)
        await db.execute("UPDATE users SET display_name = $2 WHERE email = $1", email, name)
    await db.execute("INSERT INTO user_object_assignments (user_id, object_id) SELECT id, $2 FROM users WHERE email = $1",
                     TECHNICIAN_EMAIL, object_id)
    keys: list[str | None] = []

    async with browser_page() as page:
        page.on("request", lambda r: keys.append(r.headers.get("idempotency-key"))
                if r.method == "POST" and r.url.endswith(f"/robots/{ROBOT}/commands") else None)
        await log_in(page, base, OPERATOR_EMAIL)
        assert await page.locator("#nav-robots").is_visible()
        await page.click("#nav-robots")
        await page.wait_for_selector(row(ROBOT), timeout=WAIT_MS)
        assert await page.get_attribute(row(ROBOT), "data-stale") == "false"
        assert (await text(page, f"{row(ROBOT)} td.state"), await text(page, f"{row(ROBOT)} td.battery"),
                await text(page, f"{row(ROBOT)} td.connection"), await text(page, f"{row(ROBOT)} td:nth-child(2)")) == \
            ("IDLE", "81.5 %", "ONLINE", "Warehouse")
        assert re.fullmatch(r"\d+ s ago · .+", await text(page, f"{row(ROBOT)} td.last-seen"))
        # Ten minutes of silence: greyed, its state said to be as of when it was heard.
        assert await page.get_attribute(row("RB-OLD"), "data-stale") == "true"
        assert (await text(page, f"{row('RB-OLD')} td.state")).startswith("PATROLLING as of ")
        assert "10 min ago" in await text(page, f"{row('RB-OLD')} td.last-seen")
        # Live: a new status shows without a reload.
        await site.ingest(rb.status(site, ROBOT, RobotState.MOVING, 77.0))
        await page.wait_for_selector(f"{row(ROBOT)}[data-state='MOVING']", timeout=WAIT_MS)
        assert await text(page, f"{row(ROBOT)} td.battery") == "77 %"
        await shot(page, "robots-list")

        # The detail: identity, capability, the position as coordinates (no plan yet), the samples.
        await page.click(f"{row(ROBOT)} td.robot-name")
        await page.wait_for_selector("#view-robot:not([hidden]) #robot-facts dd", timeout=WAIT_MS)
        await wait_text(page, "#robot-identity", "SN-RB-001")
        identity = await text(page, "#robot-identity")
        assert all(w in identity for w in ("Acme", "Patrol-2", "2.4.1", "Gate patrol", "goto, patrol, dock",
                                           "maxSpeedMps (number 0.1–2 m/s)", "every 5 s")), identity
        await wait_text(page, "#robot-pose", "x 5.00 m, y 2.50 m, heading 29° (0.50 rad)")
        assert "No site plan for Warehouse" in await text(page, "#robot-position")
        await page.wait_for_selector("#robot-battery-chart polyline[data-count='1']", state="attached",
                                     timeout=WAIT_MS)
        assert await page.is_enabled("#robot-estop")

        # An ADMIN chooses the plan: this page draws it with the marker where the pose puts it, y up.
        await choose_plan(base, await upload_image(base, object_id))
        assert (await db.fetchrow("SELECT width_m, height_m, origin_x_m, origin_y_m FROM robot_site_plans")) == \
            (20, 10, 0, 0)
        marker = "#robot-plan[data-loaded='true'] #robot-marker"
        await page.wait_for_selector(f"{marker}[data-px='150.0'][data-py='225.0']", timeout=WAIT_MS)
        await site.ingest(rb.telemetry(site, ROBOT, 15.0, 7.5, battery=76.5))
        await page.wait_for_selector(f"{marker}[data-px='450.0'][data-py='75.0']", timeout=WAIT_MS)
        await page.wait_for_selector("#robot-battery-chart polyline[data-count='2']", state="attached",
                                     timeout=WAIT_MS)
        assert await text(page, "#robot-facts .robot-battery") == "76.5 %"

        # The lease: taken, shown with its token and expiry, and renewed while the page is open.
        await page.click("#robot-lease button.take-lease")
        await page.wait_for_selector("#robot-lease[data-mine='true']", timeout=WAIT_MS)
        lease_state = await text(page, "#robot-lease .lease-state")
        assert "Held by Olga Nowak (you)" in lease_state and "fencing token 1" in lease_state, lease_state
        assert re.search(r"expires in \d+ s", lease_state), lease_state
        taken = await db.fetchrow(SQL_LEASE, ROBOT)

        # A goto with a reason: refused without one before anything is sent, then given once.
        form = "#robot-command-form"
        await page.select_option(f"{form} [name=commandType]", "goto")
        await page.fill(f"{form} [name=x]", "4")
        await page.fill(f"{form} [name=y]", "6")
        await page.click(f"{form} button.submit")
        await wait_error(page, f"{form} [name=reason]", "Required")
        assert keys == []
        await page.fill(f"{form} [name=reason]", "Check the north gate")
        await page.click(f"{form} button.submit")
        await wait_until(lambda: db.fetchrow(SQL_COMMAND, "goto"), what="the goto command")
        goto = await db.fetchrow(SQL_COMMAND, "goto")
        command_id = str(goto["id"])
        assert (json.loads(goto["args"]), goto["reason"], goto["fencing_token"], goto["lease_id"], goto["requested_name"]) \
            == ({"x": 4, "y": 6, "theta": None}, "Check the north gate", 1, taken["id"], "Olga Nowak")
        assert len(keys) == 1 and keys[0] and len(keys[0]) == 32, keys
        await page.wait_for_selector(command_row(command_id, "REQUESTED"), timeout=WAIT_MS)
        assert "Go to x 4, y 6" in await text(page, command_row(command_id))
        # Its status follows the publisher and the robot's word, live.
        await mark_sent(db, command_id)
        await page.wait_for_selector(command_row(command_id, "SENT"), timeout=WAIT_MS)
        await site.ingest(rb.ack(site, ROBOT, command_id, AckStatus.WAITING))
        await page.wait_for_selector(command_row(command_id, "ACKED"), timeout=WAIT_MS)
        await site.ingest(rb.ack(site, ROBOT, command_id, AckStatus.RUNNING, progress=0.5))
        await page.wait_for_selector(command_row(command_id, "RUNNING"), timeout=WAIT_MS)
        assert await text(page, f"{command_row(command_id)} td.command-ack") == "RUNNING 50 %"
        await site.ingest(rb.ack(site, ROBOT, command_id, AckStatus.FINISHED, detail="arrived at the north gate"))
        await page.wait_for_selector(command_row(command_id, "FINISHED"), timeout=WAIT_MS)
        assert await text(page, f"{command_row(command_id)} td.command-ack") == "FINISHED: arrived at the north gate"
        assert await page.locator(f"{command_row(command_id)} button.cancel-command").count() == 0
        # An open command is cancelled from its row; one not yet sent never goes.
        await page.select_option(f"{form} [name=commandType]", "dock")
        await page.fill(f"{form} [name=reason]", "Charge before the night round")
        await page.click(f"{form} button.submit")
        await wait_until(lambda: db.fetchrow(SQL_COMMAND, "dock"), what="the dock command")
        dock_id = str((await db.fetchrow(SQL_COMMAND, "dock"))["id"])
        await page.click(f"{command_row(dock_id, 'REQUESTED')} button.cancel-command")
        await page.wait_for_selector(command_row(dock_id, "CANCELLED"), timeout=WAIT_MS)
        assert await db.fetchval("SELECT count(*) FROM robot_command_outbox WHERE command_id = $1", uuid.UUID(dock_id)) == 0
        assert len(keys) == 2 and keys[0] != keys[1], keys

        # Desired settings: the hub's refusal beside the field, then pending until the robot runs with them.
        settings = "#robot-settings-form"
        await page.fill(f"{settings} [name=maxSpeedMps]", "20")
        await page.click(f"{settings} button.submit")
        await wait_error(page, f"{settings} [name=maxSpeedMps]", "<= 10")
        await page.fill(f"{settings} [name=maxSpeedMps]", "1.5")
        await page.click(f"{settings} button.submit")
        pending = "#robot-settings-table tr[data-setting='maxSpeedMps']"
        await page.wait_for_selector(f"{pending}[data-pending='true']", timeout=WAIT_MS)
        assert (await text(page, f"{pending} td.desired"), await text(page, f"{pending} td.reported")) == ("1.5 m/s", "—")
        await site.ingest(rb.settings_reported(site, ROBOT, {"maxSpeedMps": 1.5}))
        await page.wait_for_selector(f"{pending}[data-pending='false']", timeout=WAIT_MS)
        assert await text(page, f"{pending} td.reported") == "1.5 m/s"
        assert await text(page, "#robot-settings .settings-summary") == "The robot runs with the desired settings."
        await shot(page, "robot-detail", full_page=True)

        # The hub's own metadata: a display name and tags, never what the robot reports.
        await page.fill("#robot-metadata-form [name=displayName]", "Gate patrol 1")
        await page.fill("#robot-metadata-form [name=tags]", "north, gate")
        await page.click("#robot-metadata-form button.submit")
        await wait_text(page, "#robot-title", f"Gate patrol 1 ({ROBOT})")
        assert tuple(await db.fetchrow("SELECT display_name, tags FROM robots WHERE robot_id = $1", ROBOT)) == \
            ("Gate patrol 1", ["north", "gate"])

        # The page renewed the lease meanwhile: the same lease and token, a later expiry.
        await wait_until(lambda: db.fetchval("SELECT expires_at > $2 FROM robot_leases WHERE id = $1", taken["id"],
                                             taken["expires_at"]), timeout=LEASE_TTL_S, what="the lease renewed")

        async with browser_page() as other:
            await log_in(other, base, SECOND_EMAIL)
            await open_robot(other, ROBOT)
            await other.wait_for_selector("#robot-lease[data-holder='Olga Nowak'][data-mine='false']", timeout=WAIT_MS)
            # Not theirs: the command form says so without asking the hub, the hub names the holder.
            await other.select_option("#robot-command-form [name=commandType]", "dock")
            await other.fill("#robot-command-form [name=reason]", "Battery low")
            await other.click("#robot-command-form button.submit")
            await wait_text(other, "#robot-command-form .form-error", "Take the lease first")
            await other.click("#robot-lease button.take-lease")
            await wait_text(other, "#robot-lease .lease-error", "Olga Nowak holds this robot's lease until ")
            # Stopping needs no lease: one click and a confirmation.
            await other.click("#robot-estop")
            await other.wait_for_selector("#confirm-dialog[open]", timeout=WAIT_MS)
            assert (await text(other, "#confirm-text")).startswith(
                f"Emergency stop Gate patrol 1 ({ROBOT}) at Warehouse? It stops at once")
            await other.click("#confirm-ok")
            await wait_until(lambda: db.fetchrow(SQL_COMMAND, "estop"), what="the emergency stop")
            estop = await db.fetchrow(SQL_COMMAND, "estop")
            assert (estop["lease_id"], estop["fencing_token"], estop["requested_name"]) == (None, None, "Piotr Lis")
            await other.wait_for_selector(command_row(str(estop["id"]), "REQUESTED"), timeout=WAIT_MS)
            await page.wait_for_selector(command_row(str(estop["id"]), "REQUESTED"), timeout=WAIT_MS)
            await shot(other, "robot-second-operator")
            assert await other.locator("#robot-lease button.take-over").count() == 0  # only a MASTER takes over
            assert other.js_errors == []

        async with browser_page() as boss:
            # A MASTER takes the lease over, saying why; its holder is told at once.
            await log_in(boss, base, MASTER_EMAIL)
            await open_robot(boss, ROBOT)
            await boss.wait_for_selector("#robot-lease[data-holder='Olga Nowak']", timeout=WAIT_MS)
            await boss.click("#robot-lease button.take-over")
            await boss.wait_for_selector("#robot-reason-dialog[open]", timeout=WAIT_MS)
            await boss.click("#robot-reason-dialog button.submit")
            await wait_error(boss, "#robot-reason-dialog [name=reason]", "Required")
            await boss.fill("#robot-reason-dialog [name=reason]", "Olga's shift ended")
            await boss.click("#robot-reason-dialog button.submit")
            await boss.wait_for_selector("#robot-reason-dialog", state="detached", timeout=WAIT_MS)
            await boss.wait_for_selector("#robot-lease[data-mine='true']", timeout=WAIT_MS)
            assert "fencing token 2" in await text(boss, "#robot-lease .lease-state")
            assert boss.js_errors == []
        notice = f"#notices .notice[data-notice='lease'][data-robot='{ROBOT}']"
        await page.wait_for_selector(notice, timeout=WAIT_MS)
        assert await text(page, f"{notice} .notice-text") == \
            f"Your lease on Gate patrol 1 ({ROBOT}) was taken over by Maria Master: Olga's shift ended"
        await page.wait_for_selector("#robot-lease[data-holder='Maria Master'][data-mine='false']", timeout=WAIT_MS)
        assert await db.fetchval("SELECT ended_how FROM robot_leases WHERE id = $1", taken["id"]) == "FORCED"
        assert page.js_errors == []

    async with browser_page() as page:
        stream = StreamCut(lambda message: "robot." in message)
        await stream.install(page)
        await log_in(page, base, TECHNICIAN_EMAIL)
        await page.click("#nav-robots")
        await page.wait_for_selector(row(ROBOT), timeout=WAIT_MS)
        assert await page.eval_on_selector_all("#robots-body tr", "(rs) => rs.map((r) => r.dataset.robot)") == \
            [ROBOT, "RB-OLD"]
        assert await page.locator("#robots-body button").count() == 0
        await open_robot(page, ROBOT)
        # Read-only: everything shown, nothing to command with but a disabled emergency stop.
        await page.wait_for_selector("#robot-plan[data-loaded='true'] #robot-marker[data-px='450.0']", timeout=WAIT_MS)
        await page.wait_for_selector(command_row(command_id, "FINISHED"), timeout=WAIT_MS)
        assert await page.is_disabled("#robot-estop")
        for hidden in ("#robot-lease button", "#robot-command-form", "#robot-settings-form", "#robot-metadata-form",
                       "#robot-plan-picker", "button.cancel-command"):
            assert await page.locator(hidden).count() == 0, hidden
        await shot(page, "robot-technician", full_page=True)
        await page.evaluate("() => { location.hash = '#/robots/RB-OFFICE'; }")
        await wait_text(page, "#robot-error", "No robot RB-OFFICE, or not one of your objects'.")

        # The stream is cut, a status changes meanwhile and its replay never reaches the page: the
        # list is read again once the stream is back.
        await page.click("#robot-back")
        await page.wait_for_selector(f"{row(ROBOT)}[data-state='MOVING']", timeout=WAIT_MS)

        await stream.cut(page)
        await site.ingest(rb.status(site, ROBOT, RobotState.DOCKING, 75.0))
        await stream.restore(page)
        await page.wait_for_selector(f"{row(ROBOT)}[data-state='DOCKING']", timeout=WAIT_MS)
        await wait_until(lambda: any("DOCKING" in m for m in stream.dropped), timeout=10,
                         what="the replay, kept from the page")
        assert page.js_errors == []
