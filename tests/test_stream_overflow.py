"""Clients too far behind are told to reload from REST: a cursor beyond the catch-up horizon,
and a client that stops reading (whose queue stays within its bound meanwhile)."""
from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import struct
from pathlib import Path

import asyncpg
import msgspec
from aiohttp import WSMsgType
from prometheus_client import REGISTRY

from hub.stream.delivery import ClientQueue
from support.waiting import wait_until
from test_stream_helpers import FAST, running_hub, write_rows


async def _expect_overflow(ws, settings) -> None:  # type: ignore[no-untyped-def]
    message = await ws.receive_json(timeout=10)
    assert message["type"] == "replay_overflow"
    assert settings.retry_min_ms <= message["retry_after_ms"] <= settings.retry_max_ms
    closing = await ws.receive(timeout=5)
    assert closing.type == WSMsgType.CLOSE and closing.data == 1013


async def test_a_cursor_beyond_the_row_horizon_gets_replay_overflow(
        db: asyncpg.Pool, db_dsn: str, tmp_path: Path) -> None:
    settings = msgspec.structs.replace(FAST, horizon_rows=10)
    async with running_hub(db, db_dsn, tmp_path, settings) as hub:
        headers = await hub.user("op@example.com")
        await write_rows(db, 30)
        await wait_until(lambda: hub.stream.feed.head == 30, what="feed at 30")
        await _expect_overflow(await hub.ws(headers, cursor=5), settings)
        ws = await hub.ws(headers, cursor=20)  # within the horizon
        assert [m["cursor"] for m in [await ws.receive_json() for _ in range(10)]] == list(range(21, 31))
        await ws.close()


async def test_a_cursor_beyond_the_age_horizon_or_unknown_gets_replay_overflow(
        db: asyncpg.Pool, db_dsn: str, tmp_path: Path) -> None:
    await write_rows(db, 3)
    await db.execute("UPDATE outbox SET created_at = now() - interval '3 hours'")
    async with running_hub(db, db_dsn, tmp_path) as hub:
        headers = await hub.user("op@example.com")
        await _expect_overflow(await hub.ws(headers, cursor=0), FAST)
        await _expect_overflow(await hub.ws(headers, cursor=999), FAST)  # no hub handed it out


def _frames(data: bytes) -> list[tuple[int, bytes]]:
    """(opcode, payload) of each whole unmasked frame the server sent."""
    frames, i = [], 0
    while i + 2 <= len(data):
        opcode, length, i = data[i] & 0x0F, data[i + 1] & 0x7F, i + 2
        if length == 126:
            (length,), i = struct.unpack("!H", data[i:i + 2]), i + 2
        elif length == 127:
            (length,), i = struct.unpack("!Q", data[i:i + 8]), i + 8
        if i + length > len(data):
            break
        frames.append((opcode, data[i:i + length]))
        i += length
    return frames


async def test_a_client_that_stops_reading_is_cut_off_with_a_bounded_queue(
        db: asyncpg.Pool, db_dsn: str, tmp_path: Path) -> None:
    settings = msgspec.structs.replace(FAST, queue_size=10, overflow_grace_s=30.0, heartbeat_s=60.0)
    async with running_hub(db, db_dsn, tmp_path, settings) as hub:
        ticket = await hub.ticket(await hub.user("op@example.com"))
        # A real socket with a tiny receive buffer that the test does not read: the server's
        # writes back up quickly instead of filling megabytes of loopback buffers first.
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (hub.client.host, hub.client.port))
        reader, writer = await asyncio.open_connection(sock=sock, limit=4096)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(f"GET /api/v1/ws?ticket={ticket} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                     f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101")
        queue = await wait_until(lambda: next(iter(hub.stream.feed.subscribers), None), what="the client subscribed")
        assert isinstance(queue, ClientQueue)

        def overflows() -> float:
            return REGISTRY.get_sample_value("vigil_stream_overflows_total", {"reason": "queue"}) or 0.0

        before = overflows()
        for _ in range(200):
            await write_rows(db, 20, pad=16 * 1024)
            if queue.overflowed.is_set():
                break
        await wait_until(queue.overflowed.is_set, what="the queue overflowing")
        assert queue.high_water <= settings.queue_size
        assert queue.take() == []  # nothing held for a client that reloads anyway
        await write_rows(db, 20, pad=16 * 1024)
        assert queue.take() == []

        received = await asyncio.wait_for(reader.read(), timeout=30)  # read to EOF: the server closes
        frames = _frames(received)
        texts = [json.loads(p) for op, p in frames if op == 0x1]
        assert texts[-1]["type"] == "replay_overflow"
        assert frames[-1][0] == 0x8 and struct.unpack("!H", frames[-1][1][:2])[0] == 1013
        assert overflows() == before + 1
        writer.close()
