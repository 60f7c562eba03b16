"""Streams follow the session they were opened in, not just the user (issue 11): a logout ends the
session's WebSocket and SSE streams (reload, then close 1008) within the access review, while the
same user's stream from another session goes on; a ticket from an ended session opens nothing.
A session this hub process ends (logout, password change or reset, refresh-token reuse,
deactivation, the absolute lifetime) closes its streams in this process at once, without waiting
for the review."""
from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import msgspec
import pytest
from aiohttp import ClientWebSocketResponse, WSMsgType

from hub.auth.sessions import hash_token
from support.topology import HOST, Topology
from support.waiting import wait_until
from test_auth_helpers import PASSWORD, add_user, bearer, login
from test_stream_helpers import FAST, Hub, running_hub

# The access review would come only after the test: a stream that ends in time ended at once.
NO_REVIEW = msgspec.structs.replace(FAST, access_review_s=600)
AT_ONCE_S = 2.0
NEW_PASSWORD = "a new password nobody has guessed"


async def _ended(ws, timeout: float = 15) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout):
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


async def _open(hub: Hub, access_token: str) -> ClientWebSocketResponse:
    """A WebSocket stream in the session of `access_token`, past its first heartbeat."""
    ws = await hub.ws(bearer(access_token))
    assert (await ws.receive_json())["type"] == "heartbeat"
    return ws


async def _two_streams(hub: Hub) -> list[tuple[dict[str, Any], ClientWebSocketResponse]]:
    """One user signed in twice (a laptop and a phone), a stream open in each session: their
    tokens and streams."""
    await add_user(hub.auth, "op@example.com")
    sessions = [await login(hub.client, "op@example.com") for _ in range(2)]
    return [(tokens, await _open(hub, tokens["access_token"])) for tokens in sessions]


async def _ends_at_once(ws: ClientWebSocketResponse, started: float) -> None:
    """`ws` gets replay_overflow and close 1008 within AT_ONCE_S of `started` (monotonic)."""
    await _ended(ws)
    elapsed = time.monotonic() - started
    assert elapsed < AT_ONCE_S, f"the stream ended {elapsed:.1f} s after its session, not at once"


async def test_logging_out_ends_the_sessions_stream_in_this_process_at_once(
        db: asyncpg.Pool, db_dsn: str, tmp_path: Path) -> None:
    async with running_hub(db, db_dsn, tmp_path, NO_REVIEW) as hub:
        (laptop, ws_laptop), (_, ws_phone) = await _two_streams(hub)
        started = time.monotonic()
        resp = await hub.client.post("/api/v1/auth/logout", json={"refresh_token": laptop["refresh_token"]})
        assert resp.status == 204
        await _ends_at_once(ws_laptop, started)
        assert (await ws_phone.receive_json())["type"] in ("heartbeat", "change")
        assert not ws_phone.closed


async def test_a_password_change_ends_every_stream_of_the_user_in_this_process_at_once(
        db: asyncpg.Pool, db_dsn: str, tmp_path: Path) -> None:
    async with running_hub(db, db_dsn, tmp_path, NO_REVIEW) as hub:
        (laptop, ws_laptop), (_, ws_phone) = await _two_streams(hub)
        started = time.monotonic()
        resp = await hub.client.post("/api/v1/auth/password", headers=bearer(laptop["access_token"]),
                                     json={"current_password": PASSWORD, "new_password": NEW_PASSWORD})
        assert resp.status == 200, await resp.text()
        await _ends_at_once(ws_phone, started)
        await _ends_at_once(ws_laptop, started)
        # The session the change opened streams as usual.
        ws_new = await _open(hub, (await resp.json())["access_token"])
        assert not ws_new.closed


async def test_a_reused_refresh_token_ends_its_sessions_stream_in_this_process_at_once(
        db: asyncpg.Pool, db_dsn: str, tmp_path: Path) -> None:
    async with running_hub(db, db_dsn, tmp_path, NO_REVIEW) as hub:
        await add_user(hub.auth, "op@example.com")
        first = await login(hub.client, "op@example.com")
        resp = await hub.client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
        assert resp.status == 200
        ws = await _open(hub, (await resp.json())["access_token"])
        started = time.monotonic()
        # The spent token again: someone else holds the family, so it ends.
        resp = await hub.client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
        assert resp.status == 401
        await _ends_at_once(ws, started)


@pytest.mark.parametrize("change", [{"active": False}, {"password": NEW_PASSWORD}], ids=["deactivate", "reset"])
async def test_an_admin_deactivating_or_resetting_a_user_ends_their_streams_at_once(
        db: asyncpg.Pool, db_dsn: str, tmp_path: Path, change: dict[str, object]) -> None:
    async with running_hub(db, db_dsn, tmp_path, NO_REVIEW) as hub:
        admin = await hub.user("admin@example.com", "ADMIN")
        user_id = await add_user(hub.auth, "op@example.com")
        ws = await _open(hub, (await login(hub.client, "op@example.com"))["access_token"])
        started = time.monotonic()
        resp = await hub.client.patch(f"/api/v1/users/{user_id}", headers=admin, json={"version": 1, **change})
        assert resp.status == 200, await resp.text()
        await _ends_at_once(ws, started)


async def test_a_session_past_its_absolute_lifetime_is_revoked_and_its_stream_ends(
        db: asyncpg.Pool, db_dsn: str, tmp_path: Path) -> None:
    async with running_hub(db, db_dsn, tmp_path, NO_REVIEW) as hub:
        (old, ws_old), (_, ws_fresh) = await _two_streams(hub)
        # The first login was a lifetime ago (however often it was refreshed since).
        age = timedelta(seconds=hub.auth.sessions.max_age_s + 60)
        await db.execute("UPDATE auth_sessions SET created_at = created_at - $1::interval WHERE id = "
                         "(SELECT session_id FROM auth_refresh_tokens WHERE token_hash = $2)", age,
                         hash_token(old["refresh_token"]))
        started = time.monotonic()
        await hub.auth.maintain()  # housekeeping's minutely pass
        await _ends_at_once(ws_old, started)
        assert await db.fetchval("SELECT count(*) FROM auth_sessions WHERE revoked_reason = 'max_age'") == 1
        assert (await ws_fresh.receive_json())["type"] in ("heartbeat", "change")
        resp = await hub.client.get("/api/v1/auth/me", headers=bearer(old["access_token"]))
        assert resp.status == 401


async def test_the_review_ends_a_stream_whose_session_was_purged(db: asyncpg.Pool, db_dsn: str,
                                                                 tmp_path: Path) -> None:
    async with running_hub(db, db_dsn, tmp_path, msgspec.structs.replace(FAST, access_review_s=0.2)) as hub:
        await add_user(hub.auth, "op@example.com")
        ws = await _open(hub, (await login(hub.client, "op@example.com"))["access_token"])
        # What Sessions.purge does once none of the family's refresh tokens is unexpired.
        await db.execute("DELETE FROM auth_sessions")
        await _ended(ws)


async def test_the_hub_process_ends_a_logged_out_sessions_stream_at_once(topology: Topology) -> None:
    master = ("master@example.com", "stream sessions master password")
    config = topology.hub_config(auth={"secret_file": str(topology.root / "hub-secret.key"),
                                       "master_email": master[0], "master_password": master[1]})
    await topology.run_hub(config)  # its access review runs every 15 s: only the wiring is in time
    base = f"http://{HOST}:{config.http_port}"
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{base}/api/v1/auth/login", json={"email": master[0], "password": master[1]}) as resp:
            tokens = await resp.json()
            assert resp.status == 200, tokens
        async with http.post(f"{base}/api/v1/auth/ws-ticket", headers=bearer(tokens["access_token"])) as resp:
            ticket = (await resp.json())["ticket"]
        async with http.ws_connect(f"{base}/api/v1/ws", params={"ticket": ticket}) as ws:
            assert (await ws.receive_json())["type"] == "heartbeat"
            started = time.monotonic()
            async with http.post(f"{base}/api/v1/auth/logout", json={"refresh_token": tokens["refresh_token"]}) as resp:
                assert resp.status == 204
            await _ends_at_once(ws, started)
