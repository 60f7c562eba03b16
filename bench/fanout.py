"""Live-stream fan-out: 1,000 WebSocket clients on one hub process while 100 new alarms a second
commit. Latency is from just before each alarm's COMMIT to the moment a client has read its
`change` message, for every client and every alarm; a client that misses a change, gets it twice
or is disconnected fails the run.

The clients are raw asyncio protocols speaking just enough RFC 6455 (handshake, unmasked text
frames from the server, pong) that one Python process can read 100,000 messages a second on the
same two cores as the hub and PostgreSQL; a full client library per socket would measure itself.

    BENCH fanout_p99_ms=<p99 commit to client> ms target=100 better=lower
"""
from __future__ import annotations

import asyncio
import base64
import os
import statistics
import struct
import sys
import time
from datetime import datetime, timezone
from urllib.parse import urlsplit

import aiohttp
import asyncpg
import msgspec

from _rig import Rig, emit, run_main, wait_for
from hub.alarms.apply import bundle_payload
from hub.auth.passwords import Passwords
from hub.db.outbox import OutboxItem, write_outbox

TARGET_MS = 100.0
PASSWORD = "bench operator password 1"
SQL_USER = """
INSERT INTO users (email, role, password_hash, must_change_password, active, created_at, updated_at)
VALUES ($1, 'OPERATOR', $2, false, true, now(), now())
"""
SQL_OBJECT = "INSERT INTO objects (name) VALUES ('fan-out object') RETURNING id"
SQL_NEW_BUNDLE = """
INSERT INTO bundle_alarms (object_id, group_key, alarm_type, priority, first_event_at, last_event_at, event_count,
                           edge_id, source)
VALUES ($1::int8, 'object:' || $1::int8, 'BURGLARY', 'CRITICAL', $2, $2, 1, 'bench', 'panel')
RETURNING *
"""

OP_TEXT, OP_CLOSE, OP_PING = 0x1, 0x8, 0x9


class _Message(msgspec.Struct):
    type: str
    cursor: int | None = None


_decode = msgspec.json.Decoder(_Message).decode


class StreamClient(asyncio.Protocol):
    """One console's WebSocket, as cheap as it can be: frames are parsed in place from the
    buffer, only `type` and `cursor` are decoded, and each change's latency is recorded against
    the commit time the writer noted for that cursor."""

    def __init__(self, path: str, host: str, committed_at: dict[int, float], latencies: list[float]) -> None:
        self._request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
        self._committed_at = committed_at
        self._latencies = latencies
        self._buffer = bytearray()
        self._upgraded = False
        self._transport: asyncio.Transport | None = None
        self.ready = asyncio.Event()  # the first heartbeat: catch-up done, live rows follow
        self.closed = asyncio.Event()
        self.close_reason = ""
        self.cursors: list[int] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # uvloop's is not an asyncio.Transport subclass
        transport.write(self._request)

    def connection_lost(self, exc: Exception | None) -> None:
        self.close_reason = self.close_reason or f"connection lost ({exc})"
        self.closed.set()

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        buf = self._buffer
        buf += data
        if not self._upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(buf[:buf.find(b"\r\n")])
            if b" 101 " not in status:
                self._fail(f"upgrade refused: {status.decode(errors='replace')}")
                return
            del buf[:end + 4]
            self._upgraded = True
        pos = 0
        while len(buf) - pos >= 2:
            opcode, length = buf[pos] & 0x0F, buf[pos + 1] & 0x7F
            head = 2
            if length == 126:
                if len(buf) - pos < 4:
                    break
                length, head = struct.unpack_from("!H", buf, pos + 2)[0], 4
            elif length == 127:
                if len(buf) - pos < 10:
                    break
                length, head = struct.unpack_from("!Q", buf, pos + 2)[0], 10
            if len(buf) - pos < head + length:
                break
            payload = bytes(buf[pos + head:pos + head + length])
            pos += head + length
            self._frame(opcode, payload, now)
        del buf[:pos]

    def _frame(self, opcode: int, payload: bytes, now: float) -> None:
        if opcode == OP_TEXT:
            message = _decode(payload)
            if message.type == "change":
                assert message.cursor is not None
                self.cursors.append(message.cursor)
                self._latencies.append((now - self._committed_at[message.cursor]) * 1000)
            elif message.type == "heartbeat":
                self.ready.set()
            else:
                self._fail(f"got {message.type}")
        elif opcode == OP_PING:
            self._send_pong(payload)
        elif opcode == OP_CLOSE:
            code = struct.unpack_from("!H", payload)[0] if len(payload) >= 2 else None
            self._fail(f"server closed the socket ({code})")

    def _send_pong(self, payload: bytes) -> None:
        # Client frames must be masked; an all-zero mask leaves the payload as it is.
        assert self._transport is not None and len(payload) < 126
        self._transport.write(bytes([0x80 | 0xA, 0x80 | len(payload)]) + b"\0\0\0\0" + payload)

    def _fail(self, reason: str) -> None:
        self.close_reason = reason
        self.closed.set()
        if self._transport is not None:
            self._transport.close()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.abort()


async def tickets(session: aiohttp.ClientSession, base: str, token: str, count: int) -> list[str]:
    """`count` single-use WebSocket tickets, fetched a few at a time."""
    headers = {"Authorization": f"Bearer {token}"}
    out: list[str] = []
    gate = asyncio.Semaphore(8)

    async def one() -> None:
        async with gate, session.post(f"{base}/api/v1/auth/ws-ticket", headers=headers) as resp:
            resp.raise_for_status()
            out.append((await resp.json())["ticket"])

    await asyncio.gather(*(one() for _ in range(count)))
    return out


async def write_alarms(pool: asyncpg.Pool, object_id: int, rate: float, count: int,
                       committed_at: dict[int, float]) -> None:
    """`count` new alarms at `rate` a second on an absolute schedule, each in its own transaction
    as the hub's ingest writes them: the bundle row, then its `alarm.new` outbox row."""
    interval = 1.0 / rate
    due = time.perf_counter()
    async with pool.acquire() as conn:
        for _ in range(count):
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            due += interval
            async with conn.transaction():
                bundle = await conn.fetchrow(SQL_NEW_BUNDLE, object_id, datetime.now(timezone.utc))
                item = OutboxItem("alarm.new", object_id, {"bundle": bundle_payload(dict(bundle))})
                [seq] = await write_outbox(conn, [item])
                committed_at[seq] = time.perf_counter()  # just before COMMIT: includes its cost


async def main(quick: bool) -> None:
    clients_n = 50 if quick else 1_000
    rate = 100.0
    seconds = 2.0 if quick else 20.0
    alarms = int(rate * seconds)
    async with Rig("fanout") as rig:
        await rig.start_hub_nats()
        await rig.create_database()
        pool = await rig.pool()
        object_id = await pool.fetchval(SQL_OBJECT)
        await pool.execute(SQL_USER, "console@bench.local", await Passwords().hash(PASSWORD))
        hub = await rig.spawn_hub()
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{hub.http_url}/api/v1/auth/login",
                                    json={"email": "console@bench.local", "password": PASSWORD}) as resp:
                resp.raise_for_status()
                token = (await resp.json())["access_token"]
            issued = await tickets(session, hub.http_url, token, clients_n)
        url = urlsplit(hub.http_url)
        assert url.hostname is not None and url.port is not None
        committed_at: dict[int, float] = {}
        latencies: list[float] = []
        loop = asyncio.get_running_loop()
        clients: list[StreamClient] = []
        for ticket in issued:
            _, client = await loop.create_connection(
                lambda t=ticket: StreamClient(f"/api/v1/ws?ticket={t}", url.netloc, committed_at, latencies),
                url.hostname, url.port)
            clients.append(client)
        try:
            await wait_for(lambda: all(c.ready.is_set() or c.closed.is_set() for c in clients), timeout=60,
                           what=f"{clients_n} streams open", watch=[hub.process])
            _check_open(clients)
            started = time.perf_counter()
            await write_alarms(pool, object_id, rate, alarms, committed_at)
            wrote_in = time.perf_counter() - started
            expected = sorted(committed_at)
            await wait_for(lambda: all(len(c.cursors) >= alarms or c.closed.is_set() for c in clients),
                           timeout=30, what="every client to get every alarm", watch=[hub.process])
            _check_open(clients)
        finally:
            for client in clients:
                client.close()
    for client in clients:
        if client.cursors != expected:
            raise RuntimeError(f"a client got {len(client.cursors)} changes, not exactly the {alarms} committed")
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    emit("fanout_p99_ms", p99, "ms", TARGET_MS, "lower", decimals=2)
    print(f"fanout: {alarms} alarms at {alarms / wrote_in:.0f}/s to {clients_n} WebSocket clients "
          f"({len(latencies)} messages); p50 {statistics.median(latencies):.2f} ms, max {latencies[-1]:.2f} ms; "
          "no client dropped")


def _check_open(clients: list[StreamClient]) -> None:
    for client in clients:
        if client.closed.is_set():
            raise RuntimeError(f"a client was disconnected: {client.close_reason}")


if __name__ == "__main__":
    sys.exit(run_main(__doc__ or "", main))
