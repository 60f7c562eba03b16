"""Helpers shared by tests/test_stream_*.py: a whole hub HTTP app (real auth, real PostgreSQL)
with a live stream, outbox writers, and clients that read the stream until a cursor."""
from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator

import asyncpg
from aiohttp import ClientWebSocketResponse, WSMsgType
from aiohttp.test_utils import TestClient, TestServer

from hub.api.server import build_http
from hub.auth import Auth, build_auth
from hub.db.outbox import OutboxItem, write_outbox
from hub.secret_box import SecretBox
from hub.stream import HubStream, StreamSettings, stream_router
from shared.clock import SYSTEM_CLOCK, Clock
from test_auth_helpers import add_user, auth_settings, bearer, cheap_passwords, login

FAST = StreamSettings(heartbeat_s=0.5, ping_s=5.0, poll_s=0.2, close_timeout_s=1.0, retry_min_ms=100,
                      retry_max_ms=900)


@dataclass
class Hub:
    """One hub process as far as the stream is concerned: its app, client and stream."""

    client: TestClient
    auth: Auth
    stream: HubStream

    async def user(self, email: str, role: str = "OPERATOR", objects: list[int] | None = None) -> dict[str, str]:
        """Bearer headers of a new user of `role` assigned to `objects`."""
        user_id = await add_user(self.auth, email, role)
        for object_id in objects or []:
            await self.auth.pool.execute("INSERT INTO user_object_assignments (user_id, object_id) VALUES ($1, $2)",
                                         user_id, object_id)
        return bearer((await login(self.client, email))["access_token"])

    async def ticket(self, headers: dict[str, str]) -> str:
        resp = await self.client.post("/api/v1/auth/ws-ticket", headers=headers)
        body = await resp.json()
        assert resp.status == 200, body
        assert body["expires_in"] == 30
        return body["ticket"]

    async def ws(self, headers: dict[str, str], cursor: int | None = None) -> ClientWebSocketResponse:
        params: dict[str, Any] = {"ticket": await self.ticket(headers)}
        if cursor is not None:
            params["cursor"] = cursor
        return await self.client.ws_connect("/api/v1/ws", params=params)


@contextlib.asynccontextmanager
async def running_hub(db: asyncpg.Pool, dsn: str, tmp_path: Path, settings: StreamSettings = FAST,
                      clock: Clock = SYSTEM_CLOCK) -> AsyncIterator[Hub]:
    auth = await build_auth(db, auth_settings(tmp_path), passwords=cheap_passwords())
    stream = HubStream(db, dsn, settings, clock=clock)
    auth.sessions.on_ended(stream.end_sessions)
    await stream.start()
    app = build_http(db, auth.authenticator, [auth.router, stream_router(stream)], SecretBox.generate())
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield Hub(client, auth, stream)
    finally:
        await stream.close()
        await client.close()


async def write_rows(db: asyncpg.Pool, count: int, *, topic: str = "panel.state", object_id: int | None = None,
                     pad: int = 0) -> list[int]:
    """`count` outbox rows in one transaction, as a hub component writes them; their ids."""
    async with db.acquire() as conn, conn.transaction():
        return await write_outbox(conn, [OutboxItem(topic, object_id, {"n": i, "pad": "x" * pad})
                                         for i in range(count)])


async def add_object(db: asyncpg.Pool, name: str) -> int:
    return await db.fetchval("INSERT INTO objects (name) VALUES ($1) RETURNING id", name)


async def read_ws(ws: ClientWebSocketResponse, until_cursor: int, timeout: float = 15.0) -> list[dict[str, Any]]:
    """Messages until one carries `until_cursor` (or a replay_overflow, or the socket closes)."""
    messages: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout):
        while True:
            msg = await ws.receive()
            if msg.type != WSMsgType.TEXT:
                return messages
            messages.append(json.loads(msg.data))
            if messages[-1]["type"] == "replay_overflow" or messages[-1].get("cursor", -1) >= until_cursor:
                return messages


def change_cursors(messages: list[dict[str, Any]]) -> list[int]:
    return [m["cursor"] for m in messages if m["type"] == "change"]
