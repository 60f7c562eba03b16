"""Removing an object's contacts, procedures and secrets over HTTP on a real PostgreSQL (issue 12):
an administrator's delete takes the row away and writes an audit entry with what was removed (a
secret's name, never its value); a second delete, or one of an unknown id, is 404; a role without
objects.edit is refused and nothing changes. What other records copied stays as it was: a dispatch
entry that called the contact still names them, a checklist copied from the procedure keeps its
steps."""
from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from support.api import as_role, json_of
from support.operator_work import ADMIN, ANN, MASTER, PROCEDURE, TECH_ID, assert_error, audit, get, post, scene, walk

TECH = as_role("TECHNICIAN", TECH_ID, [])
FIELD_WORKER = as_role("FIELD_WORKER", 6, [])
NOT_EDITORS = (ANN, TECH, FIELD_WORKER)
MISSING_ID = 987654321

SQL_CONTACT_NAMES = "SELECT array_agg(name ORDER BY call_order) FROM object_contacts WHERE object_id = $1"


async def delete(client: TestClient, path: str, headers: dict[str, str], status: int) -> Any:
    """DELETE and assert the status; the JSON answer (None for 204)."""
    resp = await client.delete(path, headers=headers)
    answer = await json_of(resp) if resp.status != 204 else None
    assert resp.status == status, answer
    return answer


async def refused_and_unknown(client: TestClient, db: asyncpg.Pool, path: str, missing: str, action: str) -> None:
    """Roles without objects.edit get 403 for `path` and nothing is audited; an unknown or
    malformed id is 404 for an administrator."""
    for headers in NOT_EDITORS:
        assert_error(await delete(client, path, headers, 403), "forbidden")
    assert await audit(db, action) == []
    for bad in (f"{missing}/{MISSING_ID}", f"{missing}/abc", f"{missing}/-1"):
        assert_error(await delete(client, bad, ADMIN, 404), "not_found")


async def test_a_contact_is_removed_and_the_calls_made_to_them_still_name_them(api_client: TestClient,
                                                                                db: asyncpg.Pool) -> None:
    s = await scene(db)
    jan = s.contacts[0]
    bundle_id = await s.alarm()
    await post(api_client, f"/api/v1/alarms/{bundle_id}/dispatch-log", {"contact_id": jan, "outcome": "NO_ANSWER"},
               ANN, status=201)
    before = (await get(api_client, f"/api/v1/alarms/{bundle_id}", ANN))["dispatch_log"]
    path = f"/api/v1/contacts/{jan}"

    await refused_and_unknown(api_client, db, path, "/api/v1/contacts", "contact.delete")
    assert await db.fetchval(SQL_CONTACT_NAMES, s.object_id) == ["Jan Kowalski", "Night guard"]

    assert await delete(api_client, path, ADMIN, 204) is None
    listed = await get(api_client, f"/api/v1/objects/{s.object_id}/contacts", ANN)
    assert [c["name"] for c in listed] == ["Night guard"]
    assert [c["name"] for c in (await get(api_client, f"/api/v1/objects/{s.object_id}", ANN))["contacts"]] == \
        ["Night guard"]
    [entry] = await audit(db, "contact.delete")
    assert (entry["actor"], entry["target_id"]) == ("user:2", str(jan))
    assert {k: v for k, v in entry["details"].items() if k != "ip"} == {
        "object_id": s.object_id, "name": "Jan Kowalski", "role": "", "phone": "+48 600 100 200", "email": "",
        "call_order": 1, "availability": ""}

    # The call still reads as it did; only the link to the gone contact is cleared.
    after = (await get(api_client, f"/api/v1/alarms/{bundle_id}", ANN))["dispatch_log"]
    assert after == [{**d, "contact_id": None} for d in before]
    assert after[0]["entry"] == "Call to Jan Kowalski (+48 600 100 200): no answer"
    assert (after[0]["contact_name"], after[0]["contact_phone"]) == ("Jan Kowalski", "+48 600 100 200")

    assert_error(await delete(api_client, path, ADMIN, 404), "not_found")
    assert len(await audit(db, "contact.delete")) == 1
    # Another object's contact goes the same way, and only it.
    await delete(api_client, f"/api/v1/contacts/{s.other_contact}", MASTER, 204)
    assert await db.fetchval(SQL_CONTACT_NAMES, s.object_id) == ["Night guard"]


async def test_a_procedure_is_removed_and_a_checklist_copied_from_it_stays(api_client: TestClient,
                                                                          db: asyncpg.Pool) -> None:
    s = await scene(db)
    bundle_id = await s.alarm()
    await walk(api_client, bundle_id, ANN, "claim")  # copies the steps into the alarm's checklist
    checklist = (await get(api_client, f"/api/v1/alarms/{bundle_id}", ANN))["checklist"]
    assert len(checklist) == 3
    procedure_id = await db.fetchval("SELECT id FROM object_procedures WHERE object_id = $1", s.object_id)
    path = f"/api/v1/procedures/{procedure_id}"

    await refused_and_unknown(api_client, db, path, "/api/v1/procedures", "procedure.delete")
    assert len(await get(api_client, f"/api/v1/objects/{s.object_id}/procedures", ANN)) == 1

    await delete(api_client, path, MASTER, 204)
    assert await get(api_client, f"/api/v1/objects/{s.object_id}/procedures", ANN) == []
    [entry] = await audit(db, "procedure.delete")
    assert (entry["actor"], entry["target_id"]) == ("user:1", str(procedure_id))
    assert {k: v for k, v in entry["details"].items() if k != "ip"} == {
        "object_id": s.object_id, "alarm_type": "BURGLARY", "steps": PROCEDURE}
    assert (await get(api_client, f"/api/v1/alarms/{bundle_id}", ANN))["checklist"] == checklist
    assert_error(await delete(api_client, path, MASTER, 404), "not_found")
    # The alarm type is free again for a new procedure.
    await post(api_client, f"/api/v1/objects/{s.object_id}/procedures", {"alarm_type": "BURGLARY", "steps": "Call"},
               ADMIN, status=201)


async def test_a_secret_is_removed_and_its_value_never_reaches_the_audit_log(api_client: TestClient,
                                                                            db: asyncpg.Pool) -> None:
    s = await scene(db)
    made = await post(api_client, f"/api/v1/objects/{s.object_id}/secrets",
                      {"label": "NVR hall", "username": "viewer", "secret": "recorder-pass-77"}, ADMIN, status=201)
    kept = await post(api_client, f"/api/v1/objects/{s.object_id}/secrets",
                      {"label": "Camera yard", "secret": "yard-pass-12"}, ADMIN, status=201)
    path = f"/api/v1/secrets/{made['id']}"

    await refused_and_unknown(api_client, db, path, "/api/v1/secrets", "secret.delete")
    assert len(await get(api_client, f"/api/v1/objects/{s.object_id}/secrets", ANN)) == 2

    await delete(api_client, path, ADMIN, 204)
    assert [x["id"] for x in await get(api_client, f"/api/v1/objects/{s.object_id}/secrets", ANN)] == [kept["id"]]
    [entry] = await audit(db, "secret.delete")
    assert (entry["actor"], entry["target_id"]) == ("user:2", str(made["id"]))
    assert {k: v for k, v in entry["details"].items() if k != "ip"} == {
        "object_id": s.object_id, "label": "NVR hall", "username": "viewer"}
    assert "recorder-pass-77" not in str(entry)
    # Gone for a reveal too, with the answer an unknown secret gets.
    assert_error(await post(api_client, f"{path}/reveal", {"reason": "checking the recorder"}, ANN, status=404),
                 "not_found")
    assert_error(await delete(api_client, path, ADMIN, 404), "not_found")
    assert await db.fetchval("SELECT count(*) FROM object_secrets") == 1

