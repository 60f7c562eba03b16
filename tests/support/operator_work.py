"""A monitored site set up for operator work (issue 12): an object with a configured panel (named
zones, partitions, outputs), a BURGLARY procedure, contacts, people with names, and a bundle
raised by real ingest; and helpers that walk a bundle through the lifecycle over HTTP."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from shared.envelope import Priority
from support.api import as_role, json_of
from support.site import T0, Site

PROCEDURE = "1. Verify the cameras\n2. Call the keyholder\n3. Send a patrol"
SQL_PERSON = """
INSERT INTO users (id, email, display_name, role, password_hash, active, created_at, updated_at)
VALUES ($1, $2, $3, $4, 'not a hash', $5, now(), now())
"""
SQL_BUNDLE = "SELECT id FROM bundle_alarms WHERE object_id = $1 AND status = 'NEW' ORDER BY id DESC LIMIT 1"

# The people the handler tests act as (support.api.as_role ids), stored so answers can name them.
MASTER_ID, ADMIN_ID, ANN_ID, BOB_ID, TECH_ID = 1, 2, 3, 4, 5
MASTER, ADMIN = as_role("MASTER", MASTER_ID), as_role("ADMIN", ADMIN_ID)
ANN, BOB = as_role("OPERATOR", ANN_ID), as_role("OPERATOR", BOB_ID)


async def add_person(db: asyncpg.Pool, user_id: int, email: str, role: str, name: str = "",
                     active: bool = True) -> None:
    """A user row with a fixed id (the stand-in authenticator's callers carry only the id)."""
    await db.execute(SQL_PERSON, user_id, email, name, role, active)


@dataclass
class Scene:
    """One object ("Bank") with a panel whose zone 3 is "Biuro" and partition 1 "Parter"."""

    site: Site
    object_id: int
    panel_id: int
    contacts: list[int] = field(default_factory=list)
    other_object_id: int = 0  # another object ("Shop") with a contact of its own
    other_contact: int = 0

    async def alarm(self, at: datetime = T0, zone: int = 3, priority: Priority = Priority.CRITICAL) -> int:
        """A zone alarm at the panel (and its partition's): the NEW bundle's id."""
        await self.site.ingest(self.site.env("satel.zone.alarm", {"zone": zone}, at, priority),
                               self.site.env("satel.partition.alarm", {"partition": 1}, at, priority))
        return await self.site.pool.fetchval(SQL_BUNDLE, self.object_id)


async def scene(db: asyncpg.Pool, *, people: bool = True) -> Scene:
    """The site, its configuration and (unless `people` is False) the people of the handler tests."""
    site = await Site(db).setup({"panel-1": "Bank"})
    object_id, panel_id = site.objects["Bank"], site.panels["panel-1"]
    await db.execute("INSERT INTO zones (panel_id, number, name) VALUES ($1, 3, 'Biuro'), ($1, 4, 'Hol')", panel_id)
    await db.execute("INSERT INTO partitions (panel_id, number, name) VALUES ($1, 1, 'Parter')", panel_id)
    await db.execute("INSERT INTO object_procedures (object_id, alarm_type, steps) VALUES ($1, 'BURGLARY', $2)",
                     object_id, PROCEDURE)
    contacts = [await db.fetchval(
        "INSERT INTO object_contacts (object_id, name, phone, call_order) VALUES ($1, $2, $3, $4) RETURNING id",
        object_id, name, phone, order) for name, phone, order in (("Jan Kowalski", "+48 600 100 200", 1),
                                                                  ("Night guard", "", 2))]
    other = await db.fetchval("INSERT INTO objects (name) VALUES ('Shop') RETURNING id")
    other_contact = await db.fetchval(
        "INSERT INTO object_contacts (object_id, name, phone) VALUES ($1, 'Shop owner', '123') RETURNING id", other)
    if people:
        for user_id, email, role, name in ((MASTER_ID, "master@x.test", "MASTER", "Maria Master"),
                                           (ADMIN_ID, "admin@x.test", "ADMIN", "Adam Admin"),
                                           (ANN_ID, "ann@x.test", "OPERATOR", "Ann Operator"),
                                           (BOB_ID, "bob@x.test", "OPERATOR", ""),
                                           (TECH_ID, "tech@x.test", "TECHNICIAN", "Tom Tech")):
            await add_person(db, user_id, email, role, name)
    return Scene(site, object_id, panel_id, contacts, other, other_contact)


async def post(client: TestClient, path: str, body: dict[str, Any] | None, headers: dict[str, str],
               status: int = 200) -> Any:
    """POST and assert the status; the JSON answer."""
    resp = await client.post(path, json=body, headers=headers) if body is not None else \
        await client.post(path, headers=headers)
    answer = await json_of(resp)
    assert resp.status == status, answer
    return answer


async def get(client: TestClient, path: str, headers: dict[str, str], status: int = 200) -> Any:
    resp = await client.get(path, headers=headers)
    answer = await json_of(resp)
    assert resp.status == status, answer
    return answer


async def walk(client: TestClient, bundle_id: int, headers: dict[str, str], *steps: str,
               resolution: str = "FALSE_ALARM") -> dict[str, Any]:
    """Take the bundle through `steps` (claim, start, ack, resolve, close) as `headers`; the last answer."""
    alarm = await get(client, f"/api/v1/alarms/{bundle_id}", headers)
    for step in steps:
        body: dict[str, Any] = {"version": alarm["version"]}
        if step == "resolve":
            body["resolution"] = resolution
        alarm = await post(client, f"/api/v1/alarms/{bundle_id}/{step}", body, headers)
    return alarm


async def outbox(db: asyncpg.Pool, topic: str | None = None) -> list[dict[str, Any]]:
    """The outbox rows (topic, object id, payload), oldest first."""
    rows = await db.fetch("SELECT topic, object_id, payload::text AS payload FROM outbox "
                          "WHERE $1::text IS NULL OR topic = $1 ORDER BY sequence_id", topic)
    return [{"topic": r["topic"], "object_id": r["object_id"], "payload": json.loads(r["payload"])} for r in rows]


async def audit(db: asyncpg.Pool, action: str) -> list[dict[str, Any]]:
    """The audit rows of `action`, oldest first, with their details decoded."""
    rows = await db.fetch("SELECT at, actor, target_id, details::text AS details FROM audit_log WHERE action = $1 "
                          "ORDER BY id", action)
    return [{**dict(r), "details": json.loads(r["details"])} for r in rows]


def assert_error(answer: dict[str, Any], code: str, field: str | None = None) -> None:
    """The one error shape, with `code` (and the field it names, when given)."""
    assert set(answer) == {"error"} and set(answer["error"]) == {"code", "message", "request_id", "details"}
    assert answer["error"]["code"] == code, answer
    if field is not None:
        assert (answer["error"]["details"] or {}).get("field") == field, answer
