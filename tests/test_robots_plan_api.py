"""An object's robot site plan over HTTP on a real PostgreSQL (issue 15): none at first; only an
image of the object itself may be chosen (a PDF, another object's image or a missing document is
400 bad_document, a bad size 422 naming its field, and nothing is written); choosing and replacing
it is audited and sent on the live stream; whoever sees the object's robots reads it, a TECHNICIAN
of another object gets the missing object's 404; deleting its image takes the plan with it, and the
database itself refuses a plan showing another object's file."""
from __future__ import annotations

import json
import struct
import zlib
from typing import Any

import asyncpg
import pytest
from aiohttp import FormData
from aiohttp.test_utils import TestClient

from support.api import as_role, json_of

ADMIN = as_role("ADMIN", 2)
OPERATOR = as_role("OPERATOR", 3)
SQL_AUDIT = "SELECT actor, action, target_id, details::text AS details FROM audit_log WHERE action LIKE 'robot_plan.%' " \
            "ORDER BY id"
SQL_OUTBOX = "SELECT object_id, payload::text AS payload FROM outbox WHERE topic = 'robot.plan.updated' ORDER BY sequence_id"
SQL_FOREIGN_PLAN = """
INSERT INTO robot_site_plans (object_id, document_id, width_m, height_m, updated_by, updated_at)
VALUES ($1, $2, 10, 10, 'user:2', now())
"""


def png(width: int, height: int, rgb: tuple[int, int, int] = (200, 220, 240)) -> bytes:
    """A real PNG of one colour (a browser draws it), made here so the tests need no image file."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack("!I", len(data)) + kind + data + struct.pack("!I", zlib.crc32(kind + data))
    row = b"\x00" + bytes(rgb) * width
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack("!IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(row * height)) + chunk(b"IEND", b""))


PDF = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n"


async def upload(client: TestClient, object_id: int, data: bytes, filename: str, content_type: str) -> int:
    form = FormData()
    form.add_field("file", data, filename=filename, content_type=content_type)
    resp = await client.post(f"/api/v1/objects/{object_id}/documents", data=form, headers=ADMIN)
    assert resp.status == 201, await resp.text()
    return int((await resp.json())["id"])


async def call(client: TestClient, method: str, url: str, headers: dict[str, str], body: Any = None
               ) -> tuple[int, Any]:
    resp = await client.request(method, url, headers=headers, json=body)
    return resp.status, (await json_of(resp) if resp.status != 204 else None)


@pytest.fixture
async def objects(db: asyncpg.Pool) -> tuple[int, int]:
    depot = await db.fetchval("INSERT INTO objects (name) VALUES ('Depot') RETURNING id")
    office = await db.fetchval("INSERT INTO objects (name) VALUES ('Office') RETURNING id")
    return depot, office


async def test_an_image_of_the_object_becomes_its_plan_audited_and_live(api_client: TestClient, db: asyncpg.Pool,
                                                                          objects: tuple[int, int]) -> None:
    depot, office = objects
    url = f"/api/v1/objects/{depot}/robot-plan"
    assert await call(api_client, "GET", url, OPERATOR) == (200, {"objectId": depot, "plan": None})
    yard = await upload(api_client, depot, png(40, 20), "yard.png", "image/png")
    manual = await upload(api_client, depot, PDF, "manual.pdf", "application/pdf")
    elsewhere = await upload(api_client, office, png(10, 10), "office.png", "image/png")

    # Refused, and nothing written: a PDF, another object's image, a document that does not exist.
    for document_id, words in ((manual, "manual.pdf is application/pdf: a plan must be a PNG, JPEG or WebP image"),
                               (elsewhere, f"document {elsewhere} is not a document of this object"),
                               (987654, "document 987654 is not a document of this object")):
        status, answer = await call(api_client, "PUT", url, ADMIN, {"documentId": document_id, "widthM": 40,
                                                                    "heightM": 20})
        assert status == 400 and answer["error"]["code"] == "bad_document", answer
        assert answer["error"]["message"].startswith(words) and answer["error"]["details"] == {"field": "documentId"}
    for body, field in (({"documentId": yard, "widthM": 0, "heightM": 20}, "widthM"),
                        ({"documentId": yard, "widthM": 40, "heightM": 20000}, "heightM"),
                        ({"documentId": yard, "widthM": 40, "heightM": 20, "originXM": 2e6}, "originXM"),
                        ({"documentId": yard, "widthM": 40}, "heightM"),
                        ({"documentId": yard, "widthM": 40, "heightM": 20, "scale": 2}, None)):
        status, answer = await call(api_client, "PUT", url, ADMIN, body)
        assert status == 422 and answer["error"]["details"]["field"] == field, (body, answer)
    status, answer = await call(api_client, "PUT", url, OPERATOR, {"documentId": yard, "widthM": 40, "heightM": 20})
    assert status == 403, answer
    assert await db.fetchval("SELECT count(*) FROM robot_site_plans") == 0
    assert await db.fetch(SQL_AUDIT) == [] and await db.fetch(SQL_OUTBOX) == []

    status, answer = await call(api_client, "PUT", url, ADMIN, {"documentId": yard, "widthM": 40, "heightM": 20,
                                                                "originXM": -5, "originYM": 2.5})
    assert status == 200, answer
    plan = answer["plan"]
    assert (plan["documentId"], plan["filename"], plan["mediaType"], plan["url"], plan["widthM"], plan["heightM"],
            plan["originXM"], plan["originYM"], plan["updatedBy"]) == (
        yard, "yard.png", "image/png", f"/api/v1/documents/{yard}", 40, 20, -5, 2.5, "user:2")
    assert await call(api_client, "GET", url, OPERATOR) == (200, answer)
    [audit] = await db.fetch(SQL_AUDIT)
    assert (audit["actor"], audit["action"], audit["target_id"]) == ("user:2", "robot_plan.set", str(depot))
    assert json.loads(audit["details"])["filename"] == "yard.png"
    [live] = await db.fetch(SQL_OUTBOX)
    assert live["object_id"] == depot and json.loads(live["payload"]) == answer

    # Another image replaces it.
    gate = await upload(api_client, depot, png(30, 30), "gate.png", "image/png")
    status, answer = await call(api_client, "PUT", url, ADMIN, {"documentId": gate, "widthM": 15, "heightM": 15})
    assert status == 200 and (answer["plan"]["documentId"], answer["plan"]["originXM"]) == (gate, 0)
    assert await db.fetchval("SELECT count(*) FROM robot_site_plans") == 1

    # Deleting the image takes the plan with it.
    assert (await api_client.delete(f"/api/v1/documents/{gate}", headers=ADMIN)).status == 204
    assert await call(api_client, "GET", url, OPERATOR) == (200, {"objectId": depot, "plan": None})


async def test_removing_a_plan_and_who_sees_it(api_client: TestClient, db: asyncpg.Pool,
                                                objects: tuple[int, int]) -> None:
    depot, office = objects
    url = f"/api/v1/objects/{depot}/robot-plan"
    yard = await upload(api_client, depot, png(40, 20), "yard.png", "image/png")
    assert (await call(api_client, "PUT", url, ADMIN, {"documentId": yard, "widthM": 40, "heightM": 20}))[0] == 200
    # A TECHNICIAN sees the plans of assigned objects only: another's is the missing object's 404.
    of_office = as_role("TECHNICIAN", 4, [office])
    assert (await call(api_client, "GET", url, as_role("TECHNICIAN", 5, [depot])))[1]["plan"]["documentId"] == yard
    answers = [await call(api_client, "GET", f"/api/v1/objects/{o}/robot-plan", of_office) for o in (depot, 987654)]
    assert [(status, a["error"]["code"], a["error"]["message"]) for status, a in answers] == \
        [(404, "not_found", "object not found")] * 2, answers
    assert (await call(api_client, "GET", f"/api/v1/objects/{office}/robot-plan", of_office))[1]["plan"] is None
    assert (await call(api_client, "GET", url, as_role("FIELD_WORKER", 6, [depot])))[0] == 403
    assert (await call(api_client, "PUT", "/api/v1/objects/987654/robot-plan", ADMIN,
                       {"documentId": yard, "widthM": 1, "heightM": 1}))[0] == 404

    assert (await call(api_client, "DELETE", url, ADMIN))[0] == 204
    assert await call(api_client, "GET", url, OPERATOR) == (200, {"objectId": depot, "plan": None})
    assert await db.fetchval("SELECT count(*) FROM object_documents WHERE id = $1", yard) == 1  # the image stays
    assert (await call(api_client, "DELETE", url, ADMIN))[0] == 204  # again: nothing to remove, nothing recorded
    assert [r["action"] for r in await db.fetch(SQL_AUDIT)] == ["robot_plan.set", "robot_plan.delete"]
    assert [json.loads(r["payload"])["plan"] is None for r in await db.fetch(SQL_OUTBOX)] == [False, True]

    # Whatever writes the row, a plan never shows another object's file.
    elsewhere = await upload(api_client, office, png(10, 10), "office.png", "image/png")
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await db.execute(SQL_FOREIGN_PLAN, depot, elsewhere)
