"""Working an alarm over HTTP on a real PostgreSQL (issue 12): resolutions chosen at resolve, the
procedure checklist, calls to contacts in the dispatch log, and an alarm's detail for people:
events in words with the panel's names, every "who" as {id, email, name}, click-to-call contacts."""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from hub.alarms.outcomes import CALL_OUTCOMES, RESOLUTIONS
from support.api import as_role
from support.site import T0
from support.operator_work import (ADMIN, ANN, ANN_ID, BOB, MASTER, MASTER_ID, TECH_ID, assert_error, audit, get,
                                   outbox, post, scene, walk)
from test_stream_helpers import read_ws, running_hub

TECH = as_role("TECHNICIAN", TECH_ID, [])
ANN_WHO = {"id": ANN_ID, "email": "ann@x.test", "name": "Ann Operator"}


# --- the vocabularies ------------------------------------------------------------------------------

async def test_the_pickers_vocabularies_are_served_to_any_signed_in_user(api_client: TestClient) -> None:
    for headers in (ANN, as_role("FIELD_WORKER", 9, [])):
        listed = await get(api_client, "/api/v1/meta/resolutions", headers)
        assert listed == [{"code": c, "label": label} for c, label in RESOLUTIONS.items()]
        outcomes = await get(api_client, "/api/v1/meta/call-outcomes", headers)
        assert [o["code"] for o in outcomes] == list(CALL_OUTCOMES)
    assert_error(await get(api_client, "/api/v1/meta/resolutions", {}, status=401), "unauthorized")


async def test_the_database_holds_exactly_the_documented_codes(db: asyncpg.Pool) -> None:
    s = await scene(db, people=False)
    bundle_id = await s.alarm()
    for code in RESOLUTIONS:
        await db.execute("UPDATE bundle_alarms SET resolution = $2 WHERE id = $1", bundle_id, code)
    with pytest.raises(asyncpg.CheckViolationError):
        await db.execute("UPDATE bundle_alarms SET resolution = 'ESCAPED' WHERE id = $1", bundle_id)
    for code in CALL_OUTCOMES:
        await db.execute("INSERT INTO dispatch_log (bundle_id, author, entry, contact_name, outcome) "
                         "VALUES ($1, 'user:1', 'call', 'Jan', $2)", bundle_id, code)
    with pytest.raises(asyncpg.CheckViolationError):
        await db.execute("INSERT INTO dispatch_log (bundle_id, author, entry, contact_name, outcome) "
                         "VALUES ($1, 'user:1', 'call', 'Jan', 'HUNG_UP')", bundle_id)


# --- resolutions -----------------------------------------------------------------------------------

async def test_resolve_needs_a_known_resolution_and_a_refusal_changes_nothing(api_client: TestClient,
                                                                             db: asyncpg.Pool) -> None:
    s = await scene(db)
    bundle_id = await s.alarm()
    acked = await walk(api_client, bundle_id, ANN, "claim", "start", "ack")
    path = f"/api/v1/alarms/{bundle_id}/resolve"
    before = await db.fetchrow("SELECT * FROM bundle_alarms WHERE id = $1", bundle_id)
    outbox_before = len(await outbox(db))
    for body in ({"version": acked["version"]}, {"version": acked["version"], "resolution": "ESCAPED"},
                 {"version": acked["version"], "resolution": None}, {"version": acked["version"], "resolution": 7},
                 {"version": acked["version"], "resolution": "false_alarm"}):
        assert_error(await post(api_client, path, body, ANN, status=422), "invalid", "resolution")
    # The other moves take no resolution.
    assert_error(await post(api_client, f"/api/v1/alarms/{bundle_id}/close",
                            {"version": acked["version"], "resolution": "TEST"}, ANN, status=422), "invalid")
    assert await db.fetchrow("SELECT * FROM bundle_alarms WHERE id = $1", bundle_id) == before
    assert len(await outbox(db)) == outbox_before and await audit(db, "alarm.resolve") == []

    resolved = await post(api_client, path, {"version": acked["version"], "resolution": "CONFIRMED_INTRUSION_POLICE",
                                             "note": " window smashed, patrol 7 on site "}, ANN)
    assert (resolved["status"], resolved["resolution"], resolved["resolution_note"]) == (
        "RESOLVED", "CONFIRMED_INTRUSION_POLICE", "window smashed, patrol 7 on site")
    assert resolved["resolution_label"] == RESOLUTIONS["CONFIRMED_INTRUSION_POLICE"]
    [entry] = await audit(db, "alarm.resolve")
    assert entry["actor"] == f"user:{ANN_ID}" and entry["details"]["resolution"] == "CONFIRMED_INTRUSION_POLICE"
    assert (await outbox(db))[-1]["payload"]["bundle"]["resolution"] == "CONFIRMED_INTRUSION_POLICE"
    listed = await get(api_client, "/api/v1/alarms?status=RESOLVED", ANN)
    assert [(a["id"], a["resolution"]) for a in listed["items"]] == [(bundle_id, "CONFIRMED_INTRUSION_POLICE")]
    assert (await get(api_client, f"/api/v1/alarms/{bundle_id}", ANN))["resolution_note"] == \
        "window smashed, patrol 7 on site"


# --- the checklist ---------------------------------------------------------------------------------

async def test_the_checklist_is_the_procedure_copied_at_claim_and_ticked_once(api_client: TestClient,
                                                                            db: asyncpg.Pool) -> None:
    s = await scene(db)
    bundle_id = await s.alarm()
    detail = await get(api_client, f"/api/v1/alarms/{bundle_id}", ANN)
    # Before anyone works it: the object's current procedure, nothing ticked, nothing copied.
    assert [(c["index"], c["text"], c["done_at"]) for c in detail["checklist"]] == [
        (1, "Verify the cameras", None), (2, "Call the keyholder", None), (3, "Send a patrol", None)]
    assert await db.fetchval("SELECT count(*) FROM bundle_checklist") == 0
    await walk(api_client, bundle_id, ANN, "claim")
    # A procedure edited after the claim does not rewrite this alarm's checklist.
    await db.execute("UPDATE object_procedures SET steps = 'Do something else entirely' WHERE object_id = $1",
                     s.object_id)
    tick = f"/api/v1/alarms/{bundle_id}/checklist"
    assert_error(await post(api_client, f"{tick}/2", None, ANN, status=409), "not_being_worked")  # CLAIMING
    await walk(api_client, bundle_id, ANN, "start")
    rows_before = len(await outbox(db))
    first = await post(api_client, f"{tick}/2", None, ANN)
    assert (first["index"], first["text"], first["done_by"]) == (2, "Call the keyholder", ANN_WHO)
    again = await post(api_client, f"{tick}/2", None, ANN)
    assert again == first  # the first tick's time and author stand
    [ticked] = await audit(db, "alarm.checklist_tick")
    assert (ticked["actor"], ticked["target_id"], ticked["details"]) == (
        f"user:{ANN_ID}", str(bundle_id), {"step": 2, "text": "Call the keyholder"})
    [update] = (await outbox(db))[rows_before:]
    assert update["topic"] == "alarm.updated" and update["payload"]["checklist_step"]["index"] == 2
    assert update["payload"]["checklist_step"]["done_by"] == ANN_WHO

    # Only the holder ticks, or a supervisor; ADMIN and TECHNICIAN do not work alarms at all.
    assert_error(await post(api_client, f"{tick}/1", None, BOB, status=409), "not_claimant")
    assert (await post(api_client, f"{tick}/1", None, MASTER))["done_by"]["id"] == MASTER_ID
    assert_error(await post(api_client, f"{tick}/3", None, ADMIN, status=403), "forbidden")
    assert_error(await post(api_client, f"{tick}/3", None, TECH, status=403), "forbidden")
    for missing in ("0", "4", "101", "99999999999", "x"):
        assert_error(await post(api_client, f"{tick}/{missing}", None, ANN, status=404), "not_found")
    assert_error(await post(api_client, "/api/v1/alarms/424242/checklist/1", None, ANN, status=404), "not_found")

    detail = await get(api_client, f"/api/v1/alarms/{bundle_id}", ANN)
    assert [(c["text"], c["done_by"] and c["done_by"]["id"]) for c in detail["checklist"]] == [
        ("Verify the cameras", MASTER_ID), ("Call the keyholder", ANN_ID), ("Send a patrol", None)]
    assert detail["checklist"][1]["done_at"] == first["done_at"]
    # Once resolved, the checklist is history: no more ticks.
    await walk(api_client, bundle_id, ANN, "ack", "resolve")
    assert_error(await post(api_client, f"{tick}/3", None, ANN, status=409), "not_being_worked")
    assert len(await audit(db, "alarm.checklist_tick")) == 2


async def test_an_alarm_without_a_procedure_has_no_steps_and_an_old_claim_copies_at_first_tick(
        api_client: TestClient, db: asyncpg.Pool) -> None:
    s = await scene(db)
    await db.execute("DELETE FROM object_procedures")
    bundle_id = await s.alarm()
    await walk(api_client, bundle_id, ANN, "claim", "start")
    assert (await get(api_client, f"/api/v1/alarms/{bundle_id}", ANN))["checklist"] == []
    assert_error(await post(api_client, f"/api/v1/alarms/{bundle_id}/checklist/1", None, ANN, status=404),
                 "not_found")
    # A procedure written while the alarm is worked (or a claim from before checklists existed)
    # is copied when the first step is ticked.
    await db.execute("INSERT INTO object_procedures (object_id, alarm_type, steps) VALUES ($1, 'BURGLARY', "
                     "'- Look\n- Call')", s.object_id)
    assert (await post(api_client, f"/api/v1/alarms/{bundle_id}/checklist/2", None, ANN))["text"] == "Call"
    assert await db.fetchval("SELECT count(*) FROM bundle_checklist WHERE bundle_id = $1", bundle_id) == 2
    # A bundle that ended without ever being worked has no checklist to show.
    closed = await s.alarm(T0 + timedelta(hours=1))  # past the bundling window: a bundle of its own
    await db.execute("UPDATE bundle_alarms SET status = 'CLOSED' WHERE id = $1", closed)
    assert (await get(api_client, f"/api/v1/alarms/{closed}", ANN))["checklist"] == []


# --- calls in the dispatch log ---------------------------------------------------------------------

async def test_a_call_to_a_contact_is_logged_with_its_outcome_and_the_author_by_name(
        api_client: TestClient, db: asyncpg.Pool) -> None:
    s = await scene(db)
    bundle_id = await s.alarm()
    path = f"/api/v1/alarms/{bundle_id}/dispatch-log"
    jan = s.contacts[0]
    refusals = [
        ({"contact_id": s.other_contact, "outcome": "ANSWERED"}, "contact_id"),  # another object's contact
        ({"contact_id": 987654, "outcome": "ANSWERED"}, "contact_id"),
        ({"contact_id": jan}, "outcome"),
        ({"outcome": "NO_ANSWER"}, "contact_id"),
        ({"contact_id": jan, "outcome": "HUNG_UP"}, "outcome"),
        ({"entry": "   "}, "entry"),
        ({}, "entry"),
        ({"contact_id": 0, "outcome": "BUSY"}, "contact_id"),
    ]
    rows_before = len(await outbox(db))
    for body, field in refusals:
        assert_error(await post(api_client, path, body, ANN, status=422), "invalid", field)
    assert await db.fetchval("SELECT count(*) FROM dispatch_log") == 0 and await audit(db, "dispatch_log.add") == []
    assert len(await outbox(db)) == rows_before

    call = await post(api_client, path, {"contact_id": jan, "outcome": "NO_ANSWER"}, ANN, status=201)
    assert call["entry"] == "Call to Jan Kowalski (+48 600 100 200): no answer"
    assert (call["author"], call["contact_id"], call["contact_name"], call["outcome"], call["outcome_label"]) == (
        ANN_WHO, jan, "Jan Kowalski", "NO_ANSWER", "no answer")
    noted = await post(api_client, path, {"contact_id": jan, "outcome": "ANSWERED", "entry": "Coming in 10 min"},
                       BOB, status=201)
    assert noted["entry"] == "Coming in 10 min" and noted["author"] == {"id": 4, "email": "bob@x.test", "name": None}
    plain = await post(api_client, path, {"entry": "Patrol 7 sent"}, MASTER, status=201)
    assert plain["outcome"] is None and plain["author"]["name"] == "Maria Master"
    [first, *_] = await audit(db, "dispatch_log.add")
    assert first["details"] == {"entry_id": call["id"], "contact_id": jan, "outcome": "NO_ANSWER"}
    # Every entry reaches the other consoles on the alarm: alarm.updated with the entry as answered.
    sent = (await outbox(db))[rows_before:]
    assert [(u["topic"], u["object_id"]) for u in sent] == [("alarm.updated", s.object_id)] * 3
    assert [u["payload"]["dispatch_log"] for u in sent] == [call, noted, plain]
    assert {u["payload"]["bundle"]["id"] for u in sent} == {bundle_id}
    assert sent[-1]["payload"]["bundle"]["version"] == (await get(api_client, f"/api/v1/alarms/{bundle_id}", ANN))["version"]

    # The entry keeps who was called after the contact is gone.
    await db.execute("DELETE FROM object_contacts WHERE id = $1", jan)
    log = (await get(api_client, f"/api/v1/alarms/{bundle_id}", ANN))["dispatch_log"]
    assert [(d["entry"], d["contact_id"], d["contact_name"], d["author"]["email"]) for d in log] == [
        ("Call to Jan Kowalski (+48 600 100 200): no answer", None, "Jan Kowalski", "ann@x.test"),
        ("Coming in 10 min", None, "Jan Kowalski", "bob@x.test"),
        ("Patrol 7 sent", None, None, "master@x.test")]


async def test_another_console_on_the_alarm_gets_the_entry_live(db: asyncpg.Pool, db_dsn: str,
                                                                tmp_path: Path) -> None:
    s = await scene(db, people=False)
    async with running_hub(db, db_dsn, tmp_path) as hub:
        ann = await hub.user("ann@x.test")
        bob = await hub.user("bob@x.test")
        bundle_id = await s.alarm()
        await walk(hub.client, bundle_id, ann, "claim")
        head = await db.fetchval("SELECT value FROM outbox_counter")
        ws = await hub.ws(bob, cursor=head)
        entry = await post(hub.client, f"/api/v1/alarms/{bundle_id}/dispatch-log", {"entry": "Patrol 7 sent"}, ann,
                           status=201)
        [change] = [m for m in await read_ws(ws, head + 1) if m["type"] == "change"]
        assert (change["topic"], change["object_id"]) == ("alarm.updated", s.object_id)
        assert change["payload"]["bundle"]["id"] == bundle_id
        assert change["payload"]["bundle"]["status"] == "CLAIMING"
        assert change["payload"]["dispatch_log"] == entry
        assert entry["author"]["email"] == "ann@x.test"
        await ws.close()


async def test_a_call_on_an_alarm_with_no_object_names_no_contact(api_client: TestClient, db: asyncpg.Pool) -> None:
    s = await scene(db)
    orphan = await db.fetchval(
        "INSERT INTO bundle_alarms (group_key, alarm_type, priority, first_event_at, last_event_at, edge_id, source) "
        "VALUES ('panel:site-1/loose', 'BURGLARY', 'HIGH', now(), now(), 'site-1', 'loose') RETURNING id")
    assert_error(await post(api_client, f"/api/v1/alarms/{orphan}/dispatch-log",
                            {"contact_id": s.contacts[0], "outcome": "ANSWERED"}, ANN, status=422), "invalid",
                 "contact_id")
    detail = await get(api_client, f"/api/v1/alarms/{orphan}", ANN)
    assert detail["contacts"] == [] and detail["checklist"] == []


# --- the detail, readable --------------------------------------------------------------------------

async def test_the_detail_speaks_in_words_names_people_and_offers_click_to_call(api_client: TestClient,
                                                                               db: asyncpg.Pool) -> None:
    s = await scene(db)
    bundle_id = await s.alarm()
    claimed = await walk(api_client, bundle_id, ANN, "claim")
    assert claimed["claimed_by"] == f"user:{ANN_ID}" and claimed["claimed_by_user"] == ANN_WHO
    detail = await get(api_client, f"/api/v1/alarms/{bundle_id}", as_role("TECHNICIAN", TECH_ID, [s.object_id]))
    assert [e["text"] for e in detail["events"]] == ["Zone 3 Biuro: alarm", "Partition 1 Parter: alarm"]
    assert detail["claimed_by_user"] == ANN_WHO and detail["events_truncated"] is False
    assert [(c["name"], c["tel_uri"]) for c in detail["contacts"]] == [("Jan Kowalski", "tel:+48600100200"),
                                                                        ("Night guard", None)]
    # Renaming the zone in the panel config renames it in the story (names are read, not copied).
    await db.execute("UPDATE zones SET name = 'Biuro Zarządu' WHERE panel_id = $1 AND number = 3", s.panel_id)
    detail = await get(api_client, f"/api/v1/alarms/{bundle_id}", ANN)
    assert detail["events"][0]["text"] == "Zone 3 Biuro Zarządu: alarm"
    # The outbox carries the person too, so a live console shows the name at once.
    assert (await outbox(db, "alarm.updated"))[-1]["payload"]["bundle"]["claimed_by_user"] == ANN_WHO
    # Another object's technician learns nothing of it.
    for path in (f"/api/v1/alarms/{bundle_id}", f"/api/v1/alarms/{bundle_id}/timeline"):
        assert_error(await get(api_client, path, as_role("TECHNICIAN", TECH_ID, [s.other_object_id]), status=404),
                     "not_found")
