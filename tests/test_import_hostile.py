"""Hostile workbooks are refused without being unpacked or held whole (issue 11): a zip bomb gets
413 before any XML is parsed, a sheet past the row cap is cut off while it is read, an XML entity
bomb is refused by defusedxml, and none of them imports anything."""
from __future__ import annotations

import io
import zipfile

import asyncpg
import openpyxl
from aiohttp.test_utils import TestClient

from hub.api import import_api
from support.api import as_role, json_of

ADMIN = as_role("ADMIN", 2)
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _workbook(rows: int) -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["name", "address"])
    for i in range(rows):
        sheet.append([f"Object {i}", "Street"])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _with_part(raw: bytes, name: str, data: bytes) -> bytes:
    """The workbook with one part replaced (or added)."""
    src = zipfile.ZipFile(io.BytesIO(raw))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            if info.filename != name:
                dst.writestr(info, src.read(info.filename))
        dst.writestr(name, data)
    return out.getvalue()


async def _post(client: TestClient, body: bytes):  # type: ignore[no-untyped-def]
    return await client.post("/api/v1/admin/import/objects", data=body, headers={**ADMIN, "Content-Type": XLSX})


async def test_a_zip_bomb_is_refused_before_it_is_unpacked(api_client: TestClient, db: asyncpg.Pool) -> None:
    padding = b"<!--" + b" " * (import_api.MAX_UNPACKED_BYTES + 1024) + b"-->"
    bomb = _with_part(_workbook(1), "xl/sharedStrings.xml", padding)
    assert len(bomb) < 1_000_000  # small on the wire
    resp = await _post(api_client, bomb)
    body = await json_of(resp)
    assert resp.status == 413 and body["error"]["code"] == "file_too_large"
    assert await db.fetchval("SELECT count(*) FROM objects") == 0


async def test_rows_past_the_cap_are_refused(api_client: TestClient, db: asyncpg.Pool, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(import_api, "MAX_ROWS", 20)
    resp = await _post(api_client, _workbook(500))
    assert resp.status == 422 and "at most 20 rows" in (await json_of(resp))["error"]["message"]
    assert await db.fetchval("SELECT count(*) FROM objects") == 0


async def test_an_xml_entity_bomb_is_refused(api_client: TestClient, db: asyncpg.Pool) -> None:
    raw = _workbook(1)
    sheet = zipfile.ZipFile(io.BytesIO(raw)).read("xl/worksheets/sheet1.xml")
    entities = b"".join(b'<!ENTITY lol%d "%s">' % (i, (b"&lol%d;" % (i - 1)) * 10) for i in range(1, 10))
    doctype = b'<!DOCTYPE worksheet [<!ENTITY lol0 "lol">' + entities + b"]>"
    hostile = doctype + sheet.replace(b"Object 0", b"&lol9;")  # a billion lols if expanded
    resp = await _post(api_client, _with_part(raw, "xl/worksheets/sheet1.xml", hostile))
    body = await json_of(resp)
    assert resp.status == 422 and "not a readable XLSX" in body["error"]["message"], body
    assert await db.fetchval("SELECT count(*) FROM objects") == 0


async def test_not_a_zip_and_a_good_workbook(api_client: TestClient, db: asyncpg.Pool) -> None:
    resp = await _post(api_client, b"PK\x03\x04 not really")
    assert resp.status == 422
    resp = await _post(api_client, _workbook(3))
    assert resp.status == 200, await resp.text()
    assert await db.fetchval("SELECT count(*) FROM objects") == 3
