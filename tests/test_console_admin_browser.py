"""The console's administration pages in headless Chromium (issue 12), against the hub's real HTTP
app, auth and live stream on the test database. An ADMIN creates an object with two contacts
(reordered) and a procedure with ordered steps, stores a recorder secret, adds a panel with its
integration key (write-only: shown as set, cleared, set again), partitions, zones and outputs,
creates a user with a temporary password (which signs in) and object assignments, forces a
password change, deactivates the user, and imports a CSV whose bad row is reported; bad values
are refused next to their field, by the page and by the hub. A MASTER cannot remove the last
MASTER; an OPERATOR has no administration. Every form field on each page has a label; dates are
24 h and never month-first; the console loads in under a second. Screenshots land in
$VIGIL_CONSOLE_SCREENSHOTS, by default test-artifacts/console/."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator

import aiohttp
import asyncpg
import pytest

from hub.api.panels_api import integration_key_aad
from hub.config import DocumentSettings
from hub.secret_box import SecretBox
from support.browser import browser_page, require_browser
from support.console_app import console_app
from support.waiting import wait_until
from test_console_browser import ADMIN_EMAIL, OPERATOR_EMAIL, PASSWORD, add_user, log_in, shot

pytestmark = pytest.mark.slow

MASTER_EMAIL = "boss@example.com"
# Every input, select and textarea on screen that has neither a <label> nor an aria-label.
UNLABELLED = """(scope) => [...document.querySelectorAll(`${scope} input, ${scope} select, ${scope} textarea`)]
  .filter((e) => e.type !== "hidden" && !(e.labels && e.labels.length) && !e.getAttribute("aria-label"))
  .map((e) => e.id || e.name || e.outerHTML.slice(0, 80))"""
GOOD_CSV = "name,address,type,lat,lon\nDepot East,1 Rail Road,WAREHOUSE,50.1,19.9\nShop West,2 Main St,SHOP,,\n"
DOCUMENT_CAP = 1024 * 1024  # documents.max_bytes here: 1 MB, so "too big" is quick to send
# A small PDF that passes the hub's content check (hub/documents.py: judged by its first bytes).
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n" + bytes(range(256)) * 8
BAD_CSV = "name,address,type,lat,lon\nDepot North,3 Rail Road,WAREHOUSE,50.1,19.9\nShop South,4 Main St,SHOP,north,\n"


@dataclass
class AdminConsole:
    base: str
    box: SecretBox  # the hub's, to open what it sealed


@pytest.fixture
async def admin_console(db: asyncpg.Pool, db_dsn: str, tmp_path: Path) -> AsyncIterator[AdminConsole]:
    """The hub's HTTP app (REST API, login, live stream, console) on a free port."""
    require_browser()
    box = SecretBox.generate()
    async with console_app(db, db_dsn, tmp_path, box, documents=DocumentSettings(max_bytes=DOCUMENT_CAP)) as base:
        yield AdminConsole(base, box)


async def open_admin(page: Any, entry: str, view: str) -> None:
    """Choose `entry` from the Administration menu and wait for its page."""
    await page.click("#nav-admin > summary")
    await page.click(f"#{entry}")
    await page.wait_for_selector(f"#{view}:not([hidden])", timeout=5000)


async def assert_labelled(page: Any, scope: str) -> None:
    assert await page.locator(f"{scope} input, {scope} select").count() > 0, f"no fields in {scope}"
    assert await page.evaluate(UNLABELLED, scope) == [], f"fields without a label in {scope}"


async def error_of(page: Any, field: str) -> str:
    """The error shown next to the field `field` (a CSS selector of its input)."""
    return await page.eval_on_selector(field, "(e) => document.getElementById(e.getAttribute('aria-describedby')).textContent")


async def wait_error(page: Any, field: str, text: str) -> None:
    await page.wait_for_function(
        """([sel, text]) => { const e = document.querySelector(sel);
             return e && document.getElementById(e.getAttribute('aria-describedby')).textContent.includes(text); }""",
        arg=[field, text], timeout=5000)


async def fill(page: Any, form: str, **values: str) -> None:
    """Type `values` into the fields of `form` (a CSS selector) named by the keys."""
    for name, value in values.items():
        await page.fill(f"{form} [name={name}]", value)


async def user_shown(page: Any, db: asyncpg.Pool, user_id: int) -> None:
    """Wait until the user pane shows `user_id` at its stored version (redrawn after a change)."""
    version = await db.fetchval("SELECT version FROM users WHERE id = $1", user_id)
    await page.wait_for_selector(f"#user-pane [data-user='{user_id}'][data-version='{version}']", timeout=5000)


async def confirm(page: Any, names: str) -> None:
    await page.wait_for_selector("#confirm-dialog[open]", timeout=5000)
    assert names in (await page.text_content("#confirm-text") or "")
    await page.click("#confirm-ok")


async def sign_in(base: str, email: str, password: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http:
        resp = await http.post(f"{base}/api/v1/auth/login", json={"email": email, "password": password})
        assert resp.status == 200, await resp.text()
        return await resp.json()


async def test_admin_builds_an_object_with_its_panel_users_and_an_import(admin_console: AdminConsole,
                                                                         db: asyncpg.Pool) -> None:
    base = admin_console.base
    await add_user(db, ADMIN_EMAIL, "ADMIN")
    await db.execute("INSERT INTO edges (edge_id) VALUES ('site-1')")

    async with browser_page() as page:
        await log_in(page, base, ADMIN_EMAIL)
        assert await page.locator("#nav-admin").is_visible()
        await open_admin(page, "nav-admin-objects", "view-admin-objects")

        # A bad value is refused next to its field before anything is sent.
        await page.click("#admin-object-new")
        await page.wait_for_selector("#object-form", timeout=5000)
        await assert_labelled(page, "#view-admin-objects")
        await page.fill("#object-form [name=lat]", "123")
        await page.click("#object-form button.submit")
        await wait_error(page, "#object-form [name=lat]", "Between -90 and 90")
        assert await error_of(page, "#object-form [name=name]") == "Required"
        assert await page.get_attribute("#object-form [name=lat]", "aria-invalid") == "true"
        await shot(page, "admin-object-errors", full_page=True)
        assert await db.fetchval("SELECT count(*) FROM objects") == 0

        # Create: the values are stored as typed, and markup stays text.
        await fill(page, "#object-form", name="Bank <b>Vault</b>", address="5 Vault Road", type="BANK", lat="52.2297",
                   lon="21.0122")
        await page.click("#object-form button.submit")
        await page.wait_for_selector("#admin-object-contacts", timeout=5000)
        obj = await db.fetchrow("SELECT * FROM objects")
        assert (obj["name"], obj["address"], obj["type"], obj["lat"], obj["lon"]) == \
            ("Bank <b>Vault</b>", "5 Vault Road", "BANK", 52.2297, 21.0122)
        assert await page.locator("#admin-object-list b").count() == 0
        assert "Bank <b>Vault</b>" in (await page.text_content("#admin-object-list") or "")

        # Two contacts, then the second moved to the top of the call list.
        for name, role, phone, availability in (("Anna Nowak", "owner", "+48 600 100 200", "any time"),
                                                ("Piotr Kowalski", "manager", "+48 600 300 400", "weekdays 8-16")):
            await fill(page, "#contact-new", name=name, role=role, phone=phone, availability=availability)
            await page.click("#contact-new button.submit")
            await page.wait_for_function(f"() => [...document.querySelectorAll('#contacts-table [data-contact] [name=name]')]"
                                         f".some((i) => i.value === {name!r})", timeout=5000)
        await page.click("button[aria-label='Move Piotr Kowalski up']")
        await wait_until(lambda: db.fetchval("SELECT array_agg(name ORDER BY call_order) = ARRAY['Piotr Kowalski', 'Anna Nowak'] "
                                             "FROM object_contacts"), what="the new call order")
        await page.wait_for_function("() => document.querySelector('#contacts-table [data-contact] [name=name]').value "
                                     "=== 'Piotr Kowalski'", timeout=5000)
        contacts = await db.fetch("SELECT name, role, phone, availability, call_order FROM object_contacts "
                                  "ORDER BY call_order")
        assert [tuple(c) for c in contacts] == [("Piotr Kowalski", "manager", "+48 600 300 400", "weekdays 8-16", 1),
                                                ("Anna Nowak", "owner", "+48 600 100 200", "any time", 2)]

        # A procedure with ordered steps: the second step is moved first before saving.
        await page.select_option("#procedure-new [name=alarm_type]", "BURGLARY")
        await page.fill("#procedure-new input[aria-label='New procedure step 1']", "Call the first contact")
        await page.click("#procedure-new button.add-step")
        await page.fill("#procedure-new input[aria-label='New procedure step 2']", "Send the patrol")
        await page.click("#procedure-new button[aria-label='Move step 2 up']")
        await page.click("#procedure-new button.submit")
        await page.wait_for_selector("form[data-procedure=BURGLARY]", timeout=5000)
        assert await db.fetchval("SELECT steps FROM object_procedures WHERE alarm_type = 'BURGLARY'") == \
            "1. Send the patrol\n2. Call the first contact"
        assert await page.input_value("form[data-procedure=BURGLARY] input[aria-label='BURGLARY step 1']") == "Send the patrol"

        # A recorder secret: stored sealed, listed by label only.
        await fill(page, "#secret-form", label="NVR hall", username="viewer", secret="recorder-pass-77")
        await page.click("#secret-form button.submit")
        await page.wait_for_selector("#secret-list li:has-text('NVR hall')", timeout=5000)
        sealed = await db.fetchval("SELECT secret_enc FROM object_secrets")
        assert b"recorder-pass-77" not in bytes(sealed)
        assert "recorder-pass-77" not in await page.content()
        assert await page.locator("#admin-object-documents #document-form").count() == 1
        await assert_labelled(page, "#view-admin-objects")
        await shot(page, "admin-object", full_page=True)

        # A panel owned by edge site-1, with partitions, zones and outputs.
        await page.click("#panel-add")
        await page.wait_for_selector("#view-admin-panel:not([hidden]) #panel-form", timeout=5000)
        await assert_labelled(page, "#view-admin-panel")
        assert await page.text_content("#panel-key-state") == "not set"
        await page.select_option("#panel-form [name=edge_id]", "site-1")
        await fill(page, "#panel-form", source="panel-1", model="INTEGRA 64", port="70000", integration_key="zażółć")
        await page.click("#panel-form button.submit")
        await wait_error(page, "#panel-form [name=port]", "Between 1 and 65535")
        await wait_error(page, "#panel-form [name=integration_key]", "ASCII characters only")
        await fill(page, "#panel-form", port="7094", integration_key="Qx7-Panel!9z")
        await page.click("#panel-form button.submit")
        await page.wait_for_selector("#partitions-table", timeout=5000)
        panel = await db.fetchrow("SELECT * FROM panels")
        assert (panel["object_id"], panel["edge_id"], panel["source"], panel["model"], panel["port"]) == \
            (obj["id"], "site-1", "panel-1", "INTEGRA 64", 7094)
        assert await page.is_disabled("#panel-form [name=edge_id]")  # fixed once the panel exists
        # The integration key: sealed by the hub, shown only as "set", never on the page.
        assert await page.text_content("#panel-key-state") == "set"
        assert await page.get_attribute("#panel-form [name=integration_key]", "type") == "password"
        key_aad = integration_key_aad(panel["id"])
        assert admin_console.box.decrypt(bytes(panel["integration_key_enc"]), key_aad) == b"Qx7-Panel!9z"
        assert "Qx7-Panel!9z" not in await page.content()
        await page.click("#panel-key-clear")
        await confirm(page, f"panel #{panel['id']}")
        await page.wait_for_selector("#panel-key-state[data-set='false']", timeout=5000)
        assert await page.text_content("#panel-key-state") == "not set"
        assert await db.fetchval("SELECT integration_key_enc FROM panels") is None
        await page.fill("#panel-form [name=integration_key]", "n3w-key")
        await page.click("#panel-form button.submit")
        await page.wait_for_selector("#panel-key-state[data-set='true']", timeout=5000)
        sealed = await db.fetchval("SELECT integration_key_enc FROM panels")
        assert admin_console.box.decrypt(bytes(sealed), key_aad) == b"n3w-key"
        assert await page.input_value("#panel-form [name=integration_key]") == ""  # redrawn empty

        for number, name in ((1, "Ground floor"), (2, "Office")):
            await fill(page, "#partitions-new", number=str(number), name=name)
            await page.click("#partitions-new button.submit")
            await page.wait_for_selector(f"#partitions-table tr[data-number='{number}']", timeout=5000)
        for number, name, partition, override in ((1, "Front door", "1", "CRITICAL"), (2, "PIR hall", "2", "")):
            await fill(page, "#zones-new", number=str(number), name=name)
            await page.select_option("#zones-new [name=partition_number]", partition)
            await page.select_option("#zones-new [name=priority_override]", override)
            await page.click("#zones-new button.submit")
            await page.wait_for_selector(f"#zones-table tr[data-number='{number}']", timeout=5000)
        await fill(page, "#outputs-new", number="1", name="Siren")
        await page.click("#outputs-new button.submit")
        await page.wait_for_selector("#outputs-table tr[data-number='1']", timeout=5000)

        # Edited in place: zone 2 renamed and given an override.
        await page.fill("#zones-table tr[data-number='2'] [name=name]", "PIR corridor")
        await page.select_option("#zones-table tr[data-number='2'] [name=priority_override]", "HIGH")
        await page.click("#zones-table tr[data-number='2'] button.submit")
        await page.wait_for_selector("#zones-table tr[data-number='2'][data-version='2']", timeout=5000)  # redrawn
        zones = await db.fetch("SELECT number, name, partition_number, priority_override::text AS o FROM zones ORDER BY number")
        assert [tuple(z) for z in zones] == [(1, "Front door", 1, '{"*": "CRITICAL"}'), (2, "PIR corridor", 2, '{"*": "HIGH"}')]
        assert [tuple(r) for r in await db.fetch("SELECT number, name FROM partitions ORDER BY number")] == \
            [(1, "Ground floor"), (2, "Office")]
        assert [tuple(r) for r in await db.fetch("SELECT number, name FROM outputs")] == [(1, "Siren")]

        # The hub's refusal lands next to the field too (a zone number taken), as does the page's
        # own check of the partition numbers the panel table stores (1..32).
        await page.fill("#zones-new [name=number]", "1")
        await page.click("#zones-new button.submit")
        await wait_error(page, "#zones-new [name=number]", "already exists")
        await page.fill("#partitions-new [name=number]", "33")
        await page.click("#partitions-new button.submit")
        await wait_error(page, "#partitions-new [name=number]", "Between 1 and 32")
        assert await db.fetchval("SELECT count(*) FROM zones") == 2
        await assert_labelled(page, "#view-admin-panel")
        await shot(page, "admin-panel", full_page=True)

        # Users: a TECHNICIAN with a temporary password (shown once) and an assigned object.
        await open_admin(page, "nav-admin-users", "view-admin-users")
        await page.click("#user-new")
        await page.wait_for_selector("#user-form", timeout=5000)
        assert await page.is_disabled("#user-form [name=object_ids]")  # until the role has assignments
        assert await page.locator("#user-form [name=role] option[value=MASTER]").count() == 0  # an ADMIN makes no MASTER
        await page.fill("#user-form [name=email]", "not-an-email")
        await page.click("#user-form button.submit")
        await wait_error(page, "#user-form [name=email]", "not an email address")
        await wait_error(page, "#user-form [name=role]", "Choose one")
        await page.fill("#user-form [name=email]", ADMIN_EMAIL)
        await page.select_option("#user-form [name=role]", "OPERATOR")
        await page.click("#user-form button.submit")
        await wait_error(page, "#user-form [name=email]", "exists")  # the hub's 409, beside the email
        await fill(page, "#user-form", email="tech@example.com", display_name="Tomasz Tech")
        await page.select_option("#user-form [name=role]", "TECHNICIAN")
        await page.select_option("#user-form [name=object_ids]", [str(obj["id"])])
        await assert_labelled(page, "#view-admin-users")
        await page.click("#user-form button.submit")
        await page.wait_for_selector("#user-once .once-secret", timeout=5000)
        temporary = await page.text_content("#user-once .once-secret") or ""
        assert len(temporary) == 20
        tech = await db.fetchrow("SELECT * FROM users WHERE email = 'tech@example.com'")
        assert (tech["role"], tech["display_name"], tech["must_change_password"], tech["active"]) == \
            ("TECHNICIAN", "Tomasz Tech", True, True)
        assert await db.fetchval("SELECT array_agg(object_id) FROM user_object_assignments WHERE user_id = $1",
                                 tech["id"]) == [obj["id"]]
        assert (await sign_in(base, "tech@example.com", temporary))["password_change_required"] is True
        await user_shown(page, db, tech["id"])
        await shot(page, "admin-users", full_page=True)
        await page.click("#user-once button.done-once")
        assert temporary not in await page.content()

        # Force a password change: a new temporary password, shown once, that signs in.
        await page.click("#user-force-password")
        await confirm(page, "tech@example.com")
        await page.wait_for_selector("#user-once .once-secret", timeout=5000)
        reset = await page.text_content("#user-once .once-secret") or ""
        assert reset and reset != temporary
        assert (await sign_in(base, "tech@example.com", reset))["password_change_required"] is True
        await page.click("#user-once button.done-once")
        await user_shown(page, db, tech["id"])

        # An administrator sets the user's time zone, and back to the hub's default (null).
        await page.select_option("#user-form [name=time_zone]", "Europe/Warsaw")
        await page.click("#user-form button.submit")
        await wait_until(lambda: db.fetchval("SELECT time_zone = 'Europe/Warsaw' FROM users WHERE id = $1", tech["id"]),
                         what="the time zone saved")
        await user_shown(page, db, tech["id"])
        assert await page.input_value("#user-form [name=time_zone]") == "Europe/Warsaw"
        await page.select_option("#user-form [name=time_zone]", "")
        await page.click("#user-form button.submit")
        await wait_until(lambda: db.fetchval("SELECT time_zone IS NULL FROM users WHERE id = $1", tech["id"]),
                         what="back to the hub's default")
        await user_shown(page, db, tech["id"])

        # Deactivate, after a confirmation naming the user.
        await page.click("#user-toggle-active")
        await confirm(page, "tech@example.com")
        await wait_until(lambda: db.fetchval("SELECT NOT active FROM users WHERE id = $1", tech["id"]), what="deactivation")
        await page.wait_for_selector("#user-toggle-active:has-text('Reactivate')", timeout=5000)
        await page.wait_for_selector(f"#users-body tr[data-user='{tech['id']}'].inactive", timeout=5000)
        await assert_labelled(page, "#view-admin-users")

        # Import: a file with one bad row imports nothing and names the row; a good one imports.
        await open_admin(page, "nav-admin-import", "view-admin-import")
        await assert_labelled(page, "#view-admin-import")
        await page.click("#import-form button.submit")
        await wait_error(page, "#import-form [name=file]", "Choose a file")
        await page.set_input_files("#import-form [name=file]", files=[{"name": "objects.txt", "mimeType": "text/plain", "buffer": b"x"}])
        await page.click("#import-form button.submit")
        await wait_error(page, "#import-form [name=file]", ".csv or .xlsx")
        objects_before = await db.fetchval("SELECT count(*) FROM objects")
        await page.set_input_files("#import-form [name=file]", files=[{"name": "objects.csv", "mimeType": "text/csv",
                                                                       "buffer": BAD_CSV.encode()}])
        await page.click("#import-form button.submit")
        await page.wait_for_selector("#import-errors tr[data-row='3']", timeout=5000)
        cells = await page.eval_on_selector_all("#import-errors tbody tr td", "(tds) => tds.map((t) => t.textContent)")
        assert cells[:2] == ["3", "lat"] and "float" in cells[2], cells
        assert await page.locator("#import-errors tbody tr").count() == 1
        assert "nothing was imported" in (await page.text_content("#import-form .form-error") or "")
        assert await db.fetchval("SELECT count(*) FROM objects") == objects_before
        await shot(page, "admin-import-errors", full_page=True)
        await page.set_input_files("#import-form [name=file]", files=[{"name": "objects.csv", "mimeType": "text/csv",
                                                                       "buffer": GOOD_CSV.encode()}])
        await page.click("#import-form button.submit")
        await page.wait_for_selector("#import-ok", timeout=5000)
        assert "Imported 2 objects" in (await page.text_content("#import-ok") or "")
        assert await db.fetchval("SELECT count(*) FROM objects") == objects_before + 2
        await shot(page, "admin-import", full_page=True)

        # The Edges page sits in the same menu.
        await open_admin(page, "nav-edges", "view-edges")
        await page.wait_for_selector("#edges-body tr[data-edge='site-1']", timeout=5000)
        await shot(page, "admin-edges", full_page=True)

        # Dates: the browser's locale, 24 h, never month-first (Chromium here runs en-US).
        shown = await page.evaluate("""async () => { const m = await import('./dates.js');
            return [m.fmtTime('2026-03-04T15:05:06Z', { timeZone: 'UTC' }), m.fmtTime('2026-03-04T15:05:06Z', { part: 'hm', timeZone: 'UTC' })]; }""")
        assert shown == ["2026-03-04 15:05:06", "15:05"], shown

        # The console still loads in under a second, straight into an admin page.
        await page.evaluate(f"location.hash = '#/admin-objects/{obj['id']}'")
        await page.wait_for_selector("#admin-object-contacts", timeout=5000)
        await page.reload()
        await page.wait_for_selector("#view-admin-objects:not([hidden]) #admin-object-contacts", timeout=5000)
        timing = await page.evaluate("""() => { const n = performance.getEntriesByType('navigation')[0];
            return n.loadEventEnd - n.startTime; }""")
        assert 0 < timing < 1000, timing
        assert page.js_errors == []


async def test_the_last_master_stays_and_an_admin_cannot_touch_a_master(admin_console: AdminConsole,
                                                                      db: asyncpg.Pool) -> None:
    await add_user(db, MASTER_EMAIL, "MASTER")
    await add_user(db, ADMIN_EMAIL, "ADMIN")
    master_id = await db.fetchval("SELECT id FROM users WHERE email = $1", MASTER_EMAIL)
    async with browser_page() as page:
        await log_in(page, admin_console.base, MASTER_EMAIL)
        await open_admin(page, "nav-admin-users", "view-admin-users")
        await page.click(f"#users-body tr[data-user='{master_id}'] a")
        await page.wait_for_selector(f"#user-pane [data-user='{master_id}']", timeout=5000)
        await page.click("#user-toggle-active")
        await confirm(page, MASTER_EMAIL)
        await page.wait_for_function("() => document.querySelector('#user-action-error').textContent.includes('last active MASTER')",
                                     timeout=5000)
        await page.select_option("#user-form [name=role]", "ADMIN")
        await page.click("#user-form button.submit")
        await wait_error(page, "#user-form [name=role]", "last active MASTER")
        assert tuple(await db.fetchrow("SELECT role, active FROM users WHERE id = $1", master_id)) == ("MASTER", True)
        await shot(page, "admin-users-last-master", full_page=True)
        assert page.js_errors == []

    async with browser_page() as page:
        await log_in(page, admin_console.base, ADMIN_EMAIL)
        await open_admin(page, "nav-admin-users", "view-admin-users")
        await page.click(f"#users-body tr[data-user='{master_id}'] a")
        await page.wait_for_selector(f"#user-pane [data-user='{master_id}']", timeout=5000)
        for control in ("#user-form [name=role]", "#user-form button.submit", "#user-toggle-active", "#user-force-password"):
            assert await page.is_disabled(control), control
        assert page.js_errors == []


async def test_an_operator_has_no_administration(admin_console: AdminConsole, db: asyncpg.Pool) -> None:
    await add_user(db, OPERATOR_EMAIL, "OPERATOR")
    async with browser_page() as page:
        await log_in(page, admin_console.base, OPERATOR_EMAIL)
        assert await page.locator("#nav-admin").is_hidden()
        for route in ("admin-objects", "admin-users", "admin-import", "admin-panel/1"):
            await page.evaluate(f"location.hash = '#/{route}'")
            await page.wait_for_function(f"() => location.hash === '#/{route}'", timeout=5000)
            await page.wait_for_selector("#view-queue:not([hidden])", timeout=5000)
            assert await page.locator("[id^=view-admin]:not([hidden])").count() == 0
        assert page.js_errors == []


async def download_bytes(page: Any, button: str) -> tuple[str, bytes]:
    """Click a Download button and wait for the browser's download: its file name and bytes."""
    async with page.expect_download(timeout=10000) as started:
        await page.click(button)
    download = await started.value
    return download.suggested_filename, Path(await download.path()).read_bytes()


async def test_documents_are_uploaded_downloaded_and_deleted_and_a_contact_is_deleted(admin_console: AdminConsole,
                                                                                       db: asyncpg.Pool) -> None:
    """An ADMIN uploads a document to an object (no file, an .svg and too big a file are refused
    beside the field), downloads it byte for byte, deletes a contact; an OPERATOR lists the
    document and downloads it; the ADMIN deletes it."""
    base = admin_console.base
    await add_user(db, ADMIN_EMAIL, "ADMIN")
    await add_user(db, OPERATOR_EMAIL, "OPERATOR")
    object_id = await db.fetchval("INSERT INTO objects (name) VALUES ('Depot') RETURNING id")
    await db.execute("INSERT INTO object_contacts (object_id, name, phone, call_order) "
                     "VALUES ($1, 'Anna Nowak', '+48 600 100 200', 1), ($1, 'Piotr Kowalski', '', 2)", object_id)
    listed = "#document-list tr[data-document]:has-text('plan.pdf')"

    async with browser_page() as page:
        await log_in(page, base, ADMIN_EMAIL)
        await page.evaluate(f"location.hash = '#/admin-objects/{object_id}'")
        await page.wait_for_selector("#document-form", timeout=5000)
        await page.wait_for_selector("#admin-object-documents p.muted:has-text('No documents')", timeout=5000)
        assert await page.get_attribute("#document-form [name=file]", "accept") == ".pdf,.png,.jpg,.jpeg,.webp"
        await assert_labelled(page, "#admin-object-documents")

        # Nothing chosen, then an SVG (refused by the hub whatever it claims), then too big a file:
        # each refusal beside the file field, and nothing stored.
        await page.click("#document-form button.submit")
        await wait_error(page, "#document-form [name=file]", "Choose a file")
        await page.set_input_files("#document-form [name=file]", files=[{
            "name": "plan.svg", "mimeType": "image/svg+xml",
            "buffer": b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'}])
        await page.click("#document-form button.submit")
        await wait_error(page, "#document-form [name=file]", "SVG and HTML files are refused")
        await page.set_input_files("#document-form [name=file]", files=[{
            "name": "huge.pdf", "mimeType": "application/pdf", "buffer": PDF + bytes(DOCUMENT_CAP)}])
        await page.click("#document-form button.submit")
        await wait_error(page, "#document-form [name=file]", "Too big: a document may be at most 1 MB")
        assert await db.fetchval("SELECT count(*) FROM object_documents") == 0

        # A PDF with a title: listed with its type, size, uploader and time.
        await page.set_input_files("#document-form [name=file]", files=[{
            "name": "plan.pdf", "mimeType": "application/pdf", "buffer": PDF}])
        await page.fill("#document-form [name=title]", "Ground floor <b>plan</b>")
        await page.click("#document-form button.submit")
        await page.wait_for_selector(listed, timeout=5000)
        doc = await db.fetchrow("SELECT id, title, filename, media_type, content FROM object_documents")
        assert (doc["title"], doc["filename"], doc["media_type"], bytes(doc["content"])) == \
            ("Ground floor <b>plan</b>", "plan.pdf", "application/pdf", PDF)
        cells = await page.eval_on_selector_all(f"{listed} td", "(tds) => tds.map((t) => t.textContent)")
        assert cells[:5] == ["Ground floor <b>plan</b>", "plan.pdf", "PDF", "2 KB", ADMIN_EMAIL], cells
        assert await page.locator(f"{listed} time[title$='UTC']").count() == 1
        assert await page.input_value("#document-form [name=title]") == ""  # the form is ready for the next one
        assert await download_bytes(page, "#document-list button[aria-label='Download plan.pdf']") == ("plan.pdf", PDF)
        await shot(page, "admin-object-documents", full_page=True)

        # A contact leaves the call list after a confirmation naming them.
        await page.click("#contacts-table button[aria-label='Delete contact Anna Nowak']")
        await confirm(page, "Anna Nowak")
        await wait_until(lambda: db.fetchval("SELECT array_agg(name) = ARRAY['Piotr Kowalski'] FROM object_contacts"),
                         what="the contact deleted")
        await page.wait_for_function("() => [...document.querySelectorAll('#contacts-table [data-contact] [name=name]')]"
                                     ".map((i) => i.value).join() === 'Piotr Kowalski'", timeout=5000)
        assert page.js_errors == []

    # An operator lists the object's documents and downloads one, and may not delete it.
    async with browser_page() as page:
        await log_in(page, base, OPERATOR_EMAIL)
        await page.evaluate(f"location.hash = '#/objects/{object_id}'")
        await page.wait_for_selector("#object-document-list tr[data-document]:has-text('plan.pdf')", timeout=5000)
        assert await page.locator("#object-document-list button.delete").count() == 0
        assert await download_bytes(page, "#object-document-list button[aria-label='Download plan.pdf']") == \
            ("plan.pdf", PDF)
        await shot(page, "operator-object-documents", full_page=True)
        assert page.js_errors == []

    # Deleted after a confirmation naming the file.
    async with browser_page() as page:
        await log_in(page, base, ADMIN_EMAIL)
        await page.evaluate(f"location.hash = '#/admin-objects/{object_id}'")
        await page.click(f"{listed} button[aria-label='Delete plan.pdf']")
        await confirm(page, "plan.pdf")
        await page.wait_for_selector("#admin-object-documents p.muted:has-text('No documents')", timeout=5000)
        assert await db.fetchval("SELECT count(*) FROM object_documents") == 0
        assert await db.fetchval("SELECT count(*) FROM audit_log WHERE action = 'document.delete' "
                                 "AND target_id = $1", str(doc["id"])) == 1
        assert page.js_errors == []


async def test_an_admin_puts_the_centre_in_maintenance_and_every_console_shows_it(admin_console: AdminConsole,
                                                                                   db: asyncpg.Pool) -> None:
    """The admin starts maintenance from the header with a reason; an operator's console shows
    the banner with it and its change is refused with the reason said; ending it clears both."""
    await add_user(db, ADMIN_EMAIL, "ADMIN")
    await add_user(db, OPERATOR_EMAIL, "OPERATOR")
    async with browser_page() as admin, browser_page() as operator:
        await log_in(admin, admin_console.base, ADMIN_EMAIL)
        await log_in(operator, admin_console.base, OPERATOR_EMAIL)
        assert await operator.locator("#mode-toggle").is_hidden()  # operators do not switch it
        await admin.wait_for_selector("#mode-toggle:not([hidden])", timeout=5000)
        assert await admin.locator("#system-mode").is_hidden()  # NORMAL: nothing to say
        await admin.click("#mode-toggle")
        await admin.wait_for_selector("#mode-dialog[open]", timeout=5000)
        await admin.fill("#mode-reason", "database upgrade until 04:00")
        await admin.click("#mode-start")
        await admin.wait_for_selector("#mode-banner:not([hidden])", timeout=5000)
        assert "database upgrade until 04:00" in (await admin.text_content("#mode-banner") or "")
        assert await admin.text_content("#system-mode") == "MAINTENANCE"
        await shot(admin, "maintenance")

        # The operator's console learns it at its next look (every 15 s; a reload looks at once).
        await operator.reload()
        await operator.wait_for_selector("#view-queue:not([hidden])", timeout=5000)
        await operator.wait_for_selector("#mode-banner:not([hidden])", timeout=5000)
        assert "database upgrade until 04:00" in (await operator.text_content("#mode-banner") or "")
        # A change through the API is refused, saying why, and changes nothing.
        tokens = await sign_in(admin_console.base, ADMIN_EMAIL, PASSWORD)
        async with aiohttp.ClientSession() as http:
            resp = await http.post(f"{admin_console.base}/api/v1/objects", json={"name": "Depot"},
                                   headers={"Authorization": f"Bearer {tokens['access_token']}"})
            refused = await resp.json()
        assert resp.status == 503 and refused["error"]["code"] == "maintenance", refused
        assert await db.fetchval("SELECT count(*) FROM objects WHERE name = 'Depot'") == 0

        await admin.click("#mode-toggle")
        await confirm(admin, "End maintenance")
        await admin.wait_for_selector("#mode-banner", state="hidden", timeout=5000)
        assert await db.fetchval("SELECT maintenance FROM system_mode") is False
        assert admin.js_errors == [] and operator.js_errors == []
