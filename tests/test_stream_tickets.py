"""WebSocket tickets: single use, short-lived, required; refused before the upgrade in the one
error shape."""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import asyncpg
import pytest
from aiohttp import WSServerHandshakeError

from shared.clock import FakeClock
from test_auth_helpers import assert_error
from test_stream_helpers import FAST, running_hub


async def _refused(hub, query: str) -> None:  # type: ignore[no-untyped-def]
    resp = await hub.client.get(f"/api/v1/ws{query}")
    assert resp.status == 401
    assert_error(await resp.json(), "unauthorized")
    with pytest.raises(WSServerHandshakeError) as refused:
        await hub.client.ws_connect(f"/api/v1/ws{query}")
    assert refused.value.status == 401


async def test_a_ticket_opens_one_websocket_once(db: asyncpg.Pool, db_dsn: str, tmp_path: Path) -> None:
    clock = FakeClock(datetime.now(timezone.utc))
    async with running_hub(db, db_dsn, tmp_path, FAST, clock) as hub:
        headers = await hub.user("op@example.com")
        ticket = await hub.ticket(headers)
        assert await db.fetchval("SELECT count(*) FROM ws_tickets WHERE ticket_hash = sha256($1::bytea)",
                                 ticket.encode()) == 1  # stored hashed, never as issued
        ws = await hub.client.ws_connect("/api/v1/ws", params={"ticket": ticket})
        assert (await ws.receive_json())["type"] == "heartbeat"
        await ws.close()
        await _refused(hub, f"?ticket={ticket}")


async def test_an_expired_missing_or_unknown_ticket_is_refused(db: asyncpg.Pool, db_dsn: str, tmp_path: Path) -> None:
    clock = FakeClock(datetime.now(timezone.utc))
    async with running_hub(db, db_dsn, tmp_path, FAST, clock) as hub:
        ticket = await hub.ticket(await hub.user("op@example.com"))
        clock.advance(31)
        await _refused(hub, f"?ticket={ticket}")
        await _refused(hub, "")
        await _refused(hub, "?ticket=made-up")
        assert (await hub.client.post("/api/v1/auth/ws-ticket")).status == 401


async def test_a_ticket_works_on_another_hub_process(db: asyncpg.Pool, db_dsn: str, tmp_path: Path) -> None:
    async with running_hub(db, db_dsn, tmp_path) as hub_a, running_hub(db, db_dsn, tmp_path) as hub_b:
        ticket = await hub_a.ticket(await hub_a.user("op@example.com"))
        ws = await hub_b.client.ws_connect("/api/v1/ws", params={"ticket": ticket})
        assert (await ws.receive_json())["type"] == "heartbeat"
        await ws.close()
