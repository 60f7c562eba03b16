"""The live stream end to end (real PostgreSQL, real HTTP): resume without gap or duplicate,
fan-out across hub processes through NOTIFY, visibility per role, SSE resume, clean shutdown."""
from __future__ import annotations

import asyncio
import json
from pathlib import Path

import asyncpg
import msgspec
import pytest
from aiohttp import WSMsgType

from support.waiting import wait_until
from test_stream_helpers import FAST, add_object, change_cursors, read_ws, running_hub, write_rows


@pytest.mark.parametrize("ring_size", [5000, 4], ids=["from-ring", "from-postgres"])
async def test_resume_has_no_gap_or_duplicate_while_rows_commit_during_connect(
        db: asyncpg.Pool, db_dsn: str, tmp_path: Path, ring_size: int) -> None:
    settings = msgspec.structs.replace(FAST, ring_size=ring_size, fetch_rows=7)
    async with running_hub(db, db_dsn, tmp_path, settings) as hub:
        headers = await hub.user("op@example.com")
        await write_rows(db, 40)

        async def writer() -> None:
            for _ in range(60):
                await write_rows(db, 2)
                await asyncio.sleep(0)  # interleave commits with the connect and catch-up

        writing = asyncio.create_task(writer())
        clients = [await hub.ws(headers, cursor=c) for c in (10, 0, 39)]
        await writing
        for ws, cursor in zip(clients, (10, 0, 39)):
            messages = await read_ws(ws, until_cursor=160)
            assert change_cursors(messages) == list(range(cursor + 1, 161))
            await ws.close()


async def test_resume_across_a_hub_restart_has_no_gap_or_duplicate(db: asyncpg.Pool, db_dsn: str,
                                                                     tmp_path: Path) -> None:
    async with running_hub(db, db_dsn, tmp_path) as hub:
        headers = await hub.user("op@example.com")
        await write_rows(db, 5)
        ws = await hub.ws(headers, cursor=0)
        seen = change_cursors(await read_ws(ws, 5))
        assert seen == [1, 2, 3, 4, 5]
    # That process is gone (its socket closed with 1001); rows commit while no hub serves.
    closing = await ws.receive(timeout=5)
    assert closing.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING)
    await write_rows(db, 3)
    async with running_hub(db, db_dsn, tmp_path) as restarted:
        ws = await restarted.ws(await restarted.user("op2@example.com"), cursor=seen[-1])
        await write_rows(db, 2)  # and more after the reconnect: live rows follow the catch-up
        assert change_cursors(await read_ws(ws, 10)) == [6, 7, 8, 9, 10]
        await ws.close()


async def test_without_a_cursor_the_stream_starts_at_the_head(db: asyncpg.Pool, db_dsn: str, tmp_path: Path) -> None:
    async with running_hub(db, db_dsn, tmp_path) as hub:
        await write_rows(db, 5)
        await wait_until(lambda: hub.stream.feed.head == 5, what="feed at 5")
        ws = await hub.ws(await hub.user("op@example.com"))
        assert (await ws.receive_json()) == {"type": "heartbeat", "cursor": 5}
        await write_rows(db, 1, topic="alarm.new", object_id=7)
        change = (await read_ws(ws, 6))[-1]
        assert change == {"type": "change", "cursor": 6, "topic": "alarm.new", "object_id": 7,
                          "payload": {"n": 0, "pad": ""}}
        await ws.close()


async def test_a_change_reaches_a_client_of_another_hub_process(db: asyncpg.Pool, db_dsn: str, tmp_path: Path) -> None:
    # A poll far longer than the test: rows can only arrive through NOTIFY.
    settings = msgspec.structs.replace(FAST, poll_s=600.0)
    async with running_hub(db, db_dsn, tmp_path, settings) as hub_a, \
            running_hub(db, db_dsn, tmp_path, settings) as hub_b:
        ws_b = await hub_b.ws(await hub_b.user("op@example.com"))
        assert (await ws_b.receive_json())["type"] == "heartbeat"
        ws_a = await hub_a.ws(await hub_a.user("other@example.com"))
        assert (await ws_a.receive_json())["type"] == "heartbeat"
        await write_rows(hub_a.stream.pool, 3)  # committed by hub A's code path
        assert change_cursors(await read_ws(ws_a, 3)) == [1, 2, 3]
        assert change_cursors(await read_ws(ws_b, 3)) == [1, 2, 3]
        await ws_a.close()
        await ws_b.close()


async def test_the_feed_catches_up_after_losing_its_listen_connection(
        db: asyncpg.Pool, db_dsn: str, tmp_path: Path) -> None:
    settings = msgspec.structs.replace(FAST, poll_s=600.0)
    async with running_hub(db, db_dsn, tmp_path, settings) as hub:
        ws = await hub.ws(await hub.user("op@example.com"))
        assert (await ws.receive_json())["type"] == "heartbeat"
        feed = hub.stream.feed
        await wait_until(lambda: feed._listen_conn is not None, what="LISTEN connection")
        pid = feed._listen_conn.get_server_pid()  # type: ignore[union-attr]
        await db.execute("SELECT pg_terminate_backend($1)", pid)
        await write_rows(db, 2)  # its NOTIFY is lost while nothing listens
        assert change_cursors(await read_ws(ws, 2)) == [1, 2]
        await wait_until(lambda: feed._listen_conn is not None and feed._listen_conn.get_server_pid() != pid,
                         what="a new LISTEN connection")
        await ws.close()


async def test_a_technician_sees_only_assigned_objects_and_a_field_worker_no_alarms(
        db: asyncpg.Pool, db_dsn: str, tmp_path: Path) -> None:
    async with running_hub(db, db_dsn, tmp_path) as hub:
        mine, other = await add_object(db, "mine"), await add_object(db, "other")
        tech = await hub.user("tech@example.com", "TECHNICIAN", [mine])
        field = await hub.user("field@example.com", "FIELD_WORKER", [mine])
        await write_rows(db, 1, topic="alarm.new", object_id=mine)       # 1
        await write_rows(db, 1, topic="alarm.new", object_id=other)      # 2
        await write_rows(db, 1, topic="panel.state", object_id=mine)     # 3
        await write_rows(db, 1, topic="panel.link", object_id=None)      # 4
        ws_tech, ws_field = await hub.ws(tech, cursor=0), await hub.ws(field, cursor=0)
        await write_rows(db, 1, topic="alarm.updated", object_id=mine)   # 5, live
        await write_rows(db, 1, topic="object.updated", object_id=other)  # 6, live
        tech_seen = await read_ws(ws_tech, 6)
        field_seen = await read_ws(ws_field, 6)
        assert [(m["cursor"], m["topic"]) for m in tech_seen if m["type"] == "change"] == \
            [(1, "alarm.new"), (3, "panel.state"), (5, "alarm.updated")]
        assert [(m["cursor"], m["topic"]) for m in field_seen if m["type"] == "change"] == [(3, "panel.state")]
        await ws_tech.close()
        await ws_field.close()


async def _read_sse(content: asyncio.StreamReader, until_cursor: int) -> list[tuple[str | None, str, dict]]:
    """(id, event, data) of each SSE event until one carries `until_cursor`."""
    events: list[tuple[str | None, str, dict]] = []
    fields: dict[str, str] = {}
    async with asyncio.timeout(15):
        while True:
            line = (await content.readline()).decode().rstrip("\n")
            if line:
                name, _, value = line.partition(": ")
                fields[name] = value
                continue
            data = json.loads(fields["data"])
            events.append((fields.get("id"), fields["event"], data))
            fields = {}
            if data.get("cursor", -1) >= until_cursor:
                return events


async def test_sse_resumes_after_last_event_id(db: asyncpg.Pool, db_dsn: str, tmp_path: Path) -> None:
    async with running_hub(db, db_dsn, tmp_path) as hub:
        headers = await hub.user("script@example.com")
        await write_rows(db, 10)
        # Connecting before the feed has seen row 10 would make 7..10 live rows after the
        # catch-up heartbeat instead of catch-up rows before it.
        await wait_until(lambda: hub.stream.feed.head == 10, what="feed at 10")
        # Last-Event-ID (a reconnecting EventSource) wins over the URL's original cursor.
        async with hub.client.get("/api/v1/events/stream?cursor=2", headers={**headers, "Last-Event-ID": "6"}) as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"].startswith("text/event-stream")
            events = await _read_sse(resp.content, 10)
            assert [(i, e) for i, e, _ in events] == [(str(n), "change") for n in range(7, 11)]
            await write_rows(db, 1)
            live = await _read_sse(resp.content, 11)
            assert [(i, e, d["cursor"]) for i, e, d in live if e == "change"] == [("11", "change", 11)]
        async with hub.client.get("/api/v1/events/stream", headers={**headers, "Last-Event-ID": "x"}) as resp:
            assert resp.status == 422
        async with hub.client.get("/api/v1/events/stream") as resp:
            assert resp.status == 401


async def test_shutdown_closes_websockets_with_1001_promptly(db: asyncpg.Pool, db_dsn: str, tmp_path: Path) -> None:
    async with running_hub(db, db_dsn, tmp_path) as hub:
        ws = await hub.ws(await hub.user("op@example.com"))
        assert (await ws.receive_json())["type"] == "heartbeat"
        loop = asyncio.get_running_loop()
        started = loop.time()
        await hub.stream.close()
        msg = await ws.receive(timeout=3)
        assert msg.type == WSMsgType.CLOSE and msg.data == 1001
        assert loop.time() - started < 2
        assert hub.stream.client_count == 0
        assert (await hub.client.get("/api/v1/ws")).status == 503
