"""Streams follow the session they were opened in, not just the user (issue 11): a logout ends the
session's WebSocket and SSE streams (reload, then close 1008) within the access review, while the
same user's stream from another session goes on; a ticket from an ended session opens nothing."""
from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import msgspec
from aiohttp import WSMsgType

from support.waiting import wait_until
from test_auth_helpers import add_user, bearer, login
from test_stream_helpers import FAST, running_hub


async def _ended(ws) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(15):
        while (await ws.receive_json())["type"] != "replay_overflow":
            pass
        closing = await ws.receive()
    assert closing.type == WSMsgType.CLOSE and closing.data == 1008


async def test_logging_out_ends_that_sessions_streams_only(db: asyncpg.Pool, db_dsn: str, tmp_path: Path) -> None:
    settings = msgspec.structs.replace(FAST, access_review_s=0.2)
    async with running_hub(db, db_dsn, tmp_path, settings) as hub:
        await add_user(hub.auth, "op@example.com")
        laptop, phone = await login(hub.client, "op@example.com"), await login(hub.client, "op@example.com")
        ws_laptop = await hub.ws(bearer(laptop["access_token"]))
        ws_phone = await hub.ws(bearer(phone["access_token"]))
        spare_ticket = await hub.ticket(bearer(laptop["access_token"]))
        for ws in (ws_laptop, ws_phone):
            assert (await ws.receive_json())["type"] == "heartbeat"
        async with hub.client.get("/api/v1/events/stream", headers=bearer(laptop["access_token"])) as sse:
            await wait_until(lambda: len(hub.stream.feed.subscribers) == 3, what="three streams")
            resp = await hub.client.post("/api/v1/auth/logout", json={"refresh_token": laptop["refresh_token"]})
            assert resp.status == 204
            await _ended(ws_laptop)
            assert "event: replay_overflow" in (await sse.content.read()).decode()
        # The same user's other session keeps its stream.
        assert (await ws_phone.receive_json())["type"] in ("heartbeat", "change")
        assert not ws_phone.closed
        # A ticket the ended session asked for earlier opens nothing.
        resp = await hub.client.get("/api/v1/ws", params={"ticket": spare_ticket})
        assert resp.status == 401 and "session" in (await resp.json())["error"]["message"]
