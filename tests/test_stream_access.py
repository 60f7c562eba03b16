"""Open streams follow their users' access: a deactivated user, or one whose role or assigned
objects changed, has the stream ended with replay_overflow (reload from REST under the access
you have now) and close 1008; unchanged users, over WebSocket or SSE, are left alone."""
from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import msgspec
from aiohttp import WSMsgType

from support.waiting import wait_until
from test_stream_helpers import FAST, add_object, running_hub, write_rows


async def _ended_for_access(ws) -> None:  # type: ignore[no-untyped-def]
    """The stream says reload, then closes with 1008."""
    async with asyncio.timeout(10):
        while True:
            message = await ws.receive_json()
            if message["type"] == "replay_overflow":
                break
            assert message["type"] in ("heartbeat", "change"), message
    closing = await ws.receive(timeout=5)
    assert closing.type == WSMsgType.CLOSE and closing.data == 1008


async def test_changed_access_ends_the_stream_and_unchanged_access_does_not(
        db: asyncpg.Pool, db_dsn: str, tmp_path: Path) -> None:
    settings = msgspec.structs.replace(FAST, access_review_s=600.0)  # reviews run when the test says
    async with running_hub(db, db_dsn, tmp_path, settings) as hub:
        mine, other = await add_object(db, "mine"), await add_object(db, "other")
        operator = await hub.user("op@example.com")
        tech = await hub.user("tech@example.com", "TECHNICIAN", [mine])
        ws_op, ws_tech = await hub.ws(operator), await hub.ws(tech)
        assert (await ws_op.receive_json())["type"] == "heartbeat"
        assert (await ws_tech.receive_json())["type"] == "heartbeat"
        async with hub.client.get("/api/v1/events/stream", headers=tech) as sse:
            assert sse.status == 200
            await wait_until(lambda: len(hub.stream.feed.subscribers) == 3, what="three streams")
            assert await hub.stream.review_access() == 0  # nothing changed, whichever transport

            tech_id = await db.fetchval("SELECT id FROM users WHERE email = 'tech@example.com'")
            await db.execute("INSERT INTO user_object_assignments (user_id, object_id) VALUES ($1, $2)", tech_id, other)
            assert await hub.stream.review_access() == 2  # the technician's WebSocket and SSE stream
            await _ended_for_access(ws_tech)
            body = (await sse.content.read()).decode()
            assert "event: replay_overflow" in body
        await write_rows(db, 1, topic="alarm.new", object_id=other)
        # The operator's stream is untouched and still live.
        async with asyncio.timeout(10):
            while (message := await ws_op.receive_json())["type"] != "change":
                pass
        assert message["object_id"] == other
        # A new ticket for the technician opens a stream that sees the newly assigned object.
        ws_tech = await hub.ws(tech, cursor=0)
        async with asyncio.timeout(10):
            while (message := await ws_tech.receive_json())["type"] != "change":
                pass
        assert message["object_id"] == other

        await db.execute("UPDATE users SET active = false WHERE email = 'op@example.com'")
        assert await hub.stream.review_access() == 1
        await _ended_for_access(ws_op)
        refused = await hub.client.post("/api/v1/auth/ws-ticket", headers=operator)
        assert refused.status == 401
        await ws_tech.close()


async def test_the_review_runs_by_itself(db: asyncpg.Pool, db_dsn: str, tmp_path: Path) -> None:
    settings = msgspec.structs.replace(FAST, access_review_s=0.1)
    async with running_hub(db, db_dsn, tmp_path, settings) as hub:
        headers = await hub.user("op@example.com")
        ws = await hub.ws(headers)
        assert (await ws.receive_json())["type"] == "heartbeat"
        await db.execute("UPDATE users SET role = 'ADMIN' WHERE email = 'op@example.com'")
        await _ended_for_access(ws)
