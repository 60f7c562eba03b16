"""A panel's integration key (issue 12): write-only on POST /api/v1/panels and PATCH
/api/v1/panels/{id}, checked by the ETHM-1's rule, sealed with the hub's SecretBox under the panel's
id, never answered, never logged, audited only as "set" or "cleared", kept out of Idempotency-Key
replay, and sealed again by a rotation."""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from hub.api.panels_api import integration_key_aad
from hub.secret_box import SecretBox, SecretBoxError, add_current_key, sealed_key_id
from hub.secret_rotation import reseal_all
from support.api import as_role, json_of
from test_secret_replays import _text_anywhere

ADMIN = as_role("ADMIN", 2)
OPERATOR = as_role("OPERATOR", 3)
KEY = "Qx7-Panel!9z"  # 12 characters, the longest an ETHM-1 takes
OTHER_KEY = "s3cond"
SQL_EDGE = "INSERT INTO edges (edge_id, public_key, key_id) VALUES ('site-1', $1, 'k')"
SQL_SEALED = "SELECT integration_key_enc, version FROM panels WHERE id = $1"
SQL_AUDIT = "SELECT action, details FROM audit_log WHERE target_type = 'panel' AND target_id = $1 ORDER BY id"


async def _object(boxed_client: TestClient, db: asyncpg.Pool) -> int:
    await db.execute(SQL_EDGE, b"\x00" * 32)
    return int((await json_of(await boxed_client.post("/api/v1/objects", json={"name": "Bank"}, headers=ADMIN)))["id"])


async def _panel(boxed_client: TestClient, object_id: int, **extra: Any) -> Any:
    resp = await boxed_client.post("/api/v1/panels", json={"object_id": object_id, "edge_id": "site-1", "source": "panel-1",
                                                     **extra}, headers=ADMIN)
    assert resp.status == 201, await resp.text()
    return await json_of(resp)


async def _opened(db: asyncpg.Pool, box: SecretBox, panel_id: int) -> str | None:
    sealed = await db.fetchval("SELECT integration_key_enc FROM panels WHERE id = $1", panel_id)
    return None if sealed is None else box.decrypt(bytes(sealed), integration_key_aad(panel_id)).decode()


async def _audits(db: asyncpg.Pool, panel_id: int) -> list[tuple[str, dict[str, Any]]]:
    rows = await db.fetch(SQL_AUDIT, str(panel_id))
    return [(r["action"], {k: v for k, v in json.loads(r["details"]).items() if k != "ip"}) for r in rows]


def _error(body: dict[str, Any], code: str) -> dict[str, Any]:
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "request_id", "details"}
    assert body["error"]["code"] == code
    return body["error"]  # type: ignore[no-any-return]


async def test_set_on_create_sealed_under_the_panel_and_never_answered(boxed_client: TestClient, db: asyncpg.Pool,
                                                                       box: SecretBox) -> None:
    object_id = await _object(boxed_client, db)
    made = await _panel(boxed_client, object_id, integration_key=KEY)
    assert made["has_integration_key"] is True
    assert "integration_key" not in made and "integration_key_enc" not in made
    assert await _opened(db, box, made["id"]) == KEY
    sealed = bytes(await db.fetchval("SELECT integration_key_enc FROM panels WHERE id = $1", made["id"]))
    assert sealed_key_id(sealed) == box.current_key_id
    # Sealed for this panel: copied into another panel's row it does not open.
    with pytest.raises(SecretBoxError):
        box.decrypt(sealed, integration_key_aad(made["id"] + 1))
    assert await _audits(db, made["id"]) == [("panel.create", {"object_id": object_id, "integration_key": "set"})]
    for path in (f"/api/v1/panels/{made['id']}", f"/api/v1/objects/{object_id}"):
        resp = await boxed_client.get(path, headers=ADMIN)
        assert resp.status == 200 and KEY not in await resp.text()
    plain = await _panel(boxed_client, object_id, source="panel-2")
    assert plain["has_integration_key"] is False and await _opened(db, box, plain["id"]) is None
    assert await _audits(db, plain["id"]) == [("panel.create", {"object_id": object_id})]


async def test_set_replace_keep_and_clear_by_patch(boxed_client: TestClient, db: asyncpg.Pool, box: SecretBox) -> None:
    panel = await _panel(boxed_client, await _object(boxed_client, db))
    url = f"/api/v1/panels/{panel['id']}"
    steps: list[tuple[dict[str, Any], str | None, dict[str, Any]]] = [
        ({"integration_key": KEY}, KEY, {"fields": ["integration_key"], "integration_key": "set"}),
        ({"integration_key": OTHER_KEY, "host": "10.0.0.5"}, OTHER_KEY,
         {"fields": ["host", "integration_key"], "integration_key": "set"}),
        ({"model": "INTEGRA 128"}, OTHER_KEY, {"fields": ["model"]}),  # absent: kept
        ({"integration_key": ""}, None, {"fields": ["integration_key"], "integration_key": "cleared"}),
        ({"integration_key": KEY}, KEY, {"fields": ["integration_key"], "integration_key": "set"}),
        ({"integration_key": None}, None, {"fields": ["integration_key"], "integration_key": "cleared"}),
    ]
    version = panel["version"]
    for body, stored, audited in steps:
        resp = await boxed_client.patch(url, json={"version": version, **body}, headers=ADMIN)
        answer = await json_of(resp)
        assert resp.status == 200, answer
        assert answer["version"] == version + 1  # one bump per request, key or not
        assert answer["has_integration_key"] is (stored is not None)
        assert KEY not in json.dumps(answer) and OTHER_KEY not in json.dumps(answer)
        assert await _opened(db, box, panel["id"]) == stored
        assert (await _audits(db, panel["id"]))[-1] == ("panel.update", audited)
        version = answer["version"]
    assert answer["host"] == "10.0.0.5" and answer["model"] == "INTEGRA 128"


@pytest.mark.parametrize("bad", ["ABCDEFGHIJKLM", "zażółć", "klucz€", 12345, ["k"]])
async def test_a_bad_key_is_refused_beside_its_field_and_changes_nothing(boxed_client: TestClient, db: asyncpg.Pool,
                                                                         box: SecretBox, bad: Any) -> None:
    object_id = await _object(boxed_client, db)
    panel = await _panel(boxed_client, object_id, integration_key=KEY)
    before = await db.fetchrow(SQL_SEALED, panel["id"])
    refusals = [await boxed_client.patch(f"/api/v1/panels/{panel['id']}", json={"version": panel["version"],
                                   "model": "changed", "integration_key": bad}, headers=ADMIN),
                await boxed_client.post("/api/v1/panels", json={"object_id": object_id, "edge_id": "site-1",
                                  "source": "panel-2", "integration_key": bad}, headers=ADMIN)]
    for resp in refusals:
        text = await resp.text()
        error = _error(json.loads(text), "invalid")
        assert resp.status == 422 and error["details"]["field"] == "integration_key"
        if isinstance(bad, str):
            assert "1–12 ASCII characters" in error["message"] and bad not in text
    assert await db.fetchrow(SQL_SEALED, panel["id"]) == before
    assert await db.fetchval("SELECT count(*) FROM panels") == 1
    assert [a for a, _ in await _audits(db, panel["id"])] == ["panel.create"]


async def test_refusals_by_role_version_and_panel_change_nothing(boxed_client: TestClient, db: asyncpg.Pool,
                                                                 box: SecretBox) -> None:
    object_id = await _object(boxed_client, db)
    panel = await _panel(boxed_client, object_id, integration_key=KEY)
    url = f"/api/v1/panels/{panel['id']}"
    cases = [
        (boxed_client.patch(url, json={"version": 1, "integration_key": OTHER_KEY}, headers=OPERATOR), 403, "forbidden"),
        (boxed_client.post("/api/v1/panels", json={"object_id": object_id, "edge_id": "site-1", "source": "panel-2",
                     "integration_key": OTHER_KEY}, headers=OPERATOR), 403, "forbidden"),
        (boxed_client.patch(url, json={"version": 7, "integration_key": OTHER_KEY}, headers=ADMIN), 409, "conflict"),
        (boxed_client.patch(url, json={"version": 7, "integration_key": ""}, headers=ADMIN), 409, "conflict"),
        (boxed_client.patch("/api/v1/panels/999999", json={"version": 1, "integration_key": OTHER_KEY}, headers=ADMIN),
         404, "not_found"),
    ]
    for request, status, code in cases:
        resp = await request
        assert resp.status == status, await resp.text()
        _error(await json_of(resp), code)
    assert await _opened(db, box, panel["id"]) == KEY
    assert await db.fetchval("SELECT version FROM panels WHERE id = $1", panel["id"]) == 1
    assert await db.fetchval("SELECT count(*) FROM panels") == 1
    assert [a for a, _ in await _audits(db, panel["id"])] == ["panel.create"]


async def test_no_replay_key_and_the_plaintext_nowhere_in_the_database_or_logs(
        boxed_client: TestClient, db: asyncpg.Pool, box: SecretBox, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    object_id = await _object(boxed_client, db)
    body = {"object_id": object_id, "edge_id": "site-1", "source": "panel-1", "integration_key": KEY}
    # Even the digest of a body that holds the key is never kept: the key could be guessed against it.
    for _ in range(2):
        resp = await boxed_client.post("/api/v1/panels", json=body, headers={**ADMIN, "Idempotency-Key": "panel-1"})
        assert resp.status == 400 and "never stored" in _error(await json_of(resp), "idempotency_not_allowed")["message"]
    assert await db.fetchval("SELECT count(*) FROM idempotency_keys") == 0
    assert await db.fetchval("SELECT count(*) FROM panels") == 0
    # A PATCH is never replayed: its Idempotency-Key is not kept either.
    panel = await _panel(boxed_client, object_id, integration_key=KEY)
    resp = await boxed_client.patch(f"/api/v1/panels/{panel['id']}", json={"version": 1, "integration_key": OTHER_KEY},
                              headers={**ADMIN, "Idempotency-Key": "patch-1"})
    assert resp.status == 200
    assert await db.fetchval("SELECT count(*) FROM idempotency_keys") == 0
    assert await _text_anywhere(db, KEY) == [] and await _text_anywhere(db, OTHER_KEY) == []
    assert await _opened(db, box, panel["id"]) == OTHER_KEY
    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert KEY not in logged and OTHER_KEY not in logged


async def test_a_rotation_seals_the_key_again(boxed_client: TestClient, db: asyncpg.Pool, box: SecretBox,
                                              tmp_path: Path) -> None:
    panel = await _panel(boxed_client, await _object(boxed_client, db), integration_key=KEY)
    new_kid = add_current_key(tmp_path / "secret.key")
    rotated = SecretBox.from_file(tmp_path / "secret.key")
    async with db.acquire() as conn:
        counts = await reseal_all(conn, rotated)
    assert counts["panels"] == 1
    sealed = bytes(await db.fetchval("SELECT integration_key_enc FROM panels WHERE id = $1", panel["id"]))
    assert sealed_key_id(sealed) == new_kid != box.current_key_id
    assert rotated.decrypt(sealed, integration_key_aad(panel["id"])).decode() == KEY
