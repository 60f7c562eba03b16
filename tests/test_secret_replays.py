"""Responses that carry a secret or a credential are never stored for replay (issue 11): the
routes refuse `Idempotency-Key` with a clear 400, so a replay can skip no audit row, no hourly
limit and no assignment check, and no plaintext ends up in `idempotency_keys`."""
from __future__ import annotations

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from hub.api.csv_stream import _cell
from hub.api.server import CORE_ROUTERS
from hub.auth.routes import auth_router
from hub.stream.hub_stream import HubStream
from hub.stream.routes import stream_router
from support.api import as_role, json_of

ADMIN = as_role("ADMIN", 2)
OPERATOR = as_role("OPERATOR", 3)
SECRET = "nvr-pa55word-XYZ"
# What a response type carries that must never sit in the database in clear.
CREDENTIAL_RESPONSES = {"Revealed", "TokenPair", "WsTicket", "EdgeCreated"}


async def _text_anywhere(db: asyncpg.Pool, needle: str) -> list[str]:
    """Every (table.column) of the public schema whose text holds `needle`."""
    columns = await db.fetch(
        "SELECT table_name, column_name, data_type FROM information_schema.columns WHERE table_schema = 'public' "
        "AND data_type IN ('text', 'character varying', 'jsonb', 'json', 'bytea')")
    found = []
    for c in columns:
        column = f'"{c["column_name"]}"'
        # Bytes are searched as bytes (a stored response body), everything else as text.
        test = (f"position(convert_to($1, 'UTF8') in {column}) > 0" if c["data_type"] == "bytea"
                else f"position($1 in {column}::text) > 0")
        if await db.fetchval(f'SELECT count(*) FROM "{c["table_name"]}" WHERE {test}', needle):
            found.append(f"{c['table_name']}.{c['column_name']}")
    return found


async def test_a_reveal_with_an_idempotency_key_is_refused_and_nothing_is_kept(api_client: TestClient,
                                                                                  db: asyncpg.Pool) -> None:
    obj = await json_of(await api_client.post("/api/v1/objects", json={"name": "Bank"}, headers=ADMIN))
    secret = await json_of(await api_client.post(f"/api/v1/objects/{obj['id']}/secrets",
                                             json={"label": "NVR", "secret": SECRET}, headers=ADMIN))
    url = f"/api/v1/secrets/{secret['id']}/reveal"
    body = {"reason": "alarm 42: checking the recorder"}
    for _ in range(2):
        resp = await api_client.post(url, json=body, headers={**OPERATOR, "Idempotency-Key": "reveal-1"})
        error = (await json_of(resp))["error"]
        assert resp.status == 400 and error["code"] == "idempotency_not_allowed"
        assert "never stored" in error["message"]
    assert await db.fetchval("SELECT count(*) FROM idempotency_keys") == 0
    # Without a key each reveal runs its checks and is audited, every time.
    for _ in range(2):
        assert (await api_client.post(url, json=body, headers=OPERATOR)).status == 200
    assert await db.fetchval("SELECT count(*) FROM audit_log WHERE action = 'secret.reveal'") == 2
    assert await _text_anywhere(db, SECRET) == []


async def test_adding_a_secret_with_an_idempotency_key_is_refused_and_its_hash_not_kept(
        api_client: TestClient, db: asyncpg.Pool) -> None:
    obj = await json_of(await api_client.post("/api/v1/objects", json={"name": "Bank"}, headers=ADMIN))
    resp = await api_client.post(f"/api/v1/objects/{obj['id']}/secrets", json={"label": "NVR", "secret": SECRET},
                                 headers={**ADMIN, "Idempotency-Key": "add-1"})
    assert resp.status == 400 and (await json_of(resp))["error"]["code"] == "idempotency_not_allowed"
    assert await db.fetchval("SELECT count(*) FROM idempotency_keys") == 0
    assert await db.fetchval("SELECT count(*) FROM object_secrets") == 0


def test_every_route_answering_a_credential_refuses_replay() -> None:
    # The factories only close over their services; declaring the routes needs none of them.
    routers = [*CORE_ROUTERS, auth_router(None, None, None), stream_router(HubStream(None, ""))]  # type: ignore[arg-type]
    routes = [r for router in routers for r in router.routes]
    carrying = {f"{r.method} {r.path}" for r in routes
                if r.response is not None and r.response.__name__ in CREDENTIAL_RESPONSES and not r.public}
    assert {"POST /api/v1/secrets/{id}/reveal", "POST /api/v1/auth/password", "POST /api/v1/auth/ws-ticket",
            "POST /api/v1/edges"} <= carrying
    for r in routes:
        if f"{r.method} {r.path}" in carrying:
            assert r.carries_secret and not r.idempotent_post, f"{r.method} {r.path} could be replayed"


@pytest.mark.parametrize("text", ["=HYPERLINK(\"http://x\")", "+1+1", "-2", "@SUM(A1)", "\t=1", "\r=1"])
def test_csv_cells_that_a_spreadsheet_would_run_are_kept_as_text(text: str) -> None:
    assert _cell(text) == "'" + text
    assert _cell("Bank 1") == "Bank 1"
