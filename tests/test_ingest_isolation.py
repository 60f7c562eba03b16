"""Nothing the API does starves ingest (issue 11): eight CSV exports whose clients stopped reading
hold every API connection, and an edge's alarm still commits, because ingest has its own pool."""
from __future__ import annotations

import asyncio
import json
import socket
import urllib.request

import msgspec

from edge.forwarder import build_segment
from edge.journal import JournalRow
from shared import subjects
from shared.bodies import DemoTick
from shared.envelope import JournalEpoch, Priority, encode_envelope, new_envelope
from support.topology import HOST, Topology
from support.waiting import wait_until

MASTER = ("master@example.com", "isolation master password 1")
STALLED = 8  # the API pool's size below
SQL_MANY_AUDIT_ROWS = """
INSERT INTO audit_log (at, actor, action, target_type, target_id, details)
SELECT now(), 'user:1', 'bulk.test', 'object', g::text, jsonb_build_object('pad', repeat('x', 200))
FROM generate_series(1, 150000) g
"""
SQL_HUB_IN_TRANSACTION = """
SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND state = 'idle in transaction' AND pid <> pg_backend_pid()
"""


def _login(port: int) -> str:
    request = urllib.request.Request(f"http://{HOST}:{port}/api/v1/auth/login", method="POST",
                                     data=json.dumps({"email": MASTER[0], "password": MASTER[1]}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as resp:
        return json.loads(resp.read())["access_token"]


def _api_answers(port: int, token: str) -> bool:
    request = urllib.request.Request(f"http://{HOST}:{port}/api/v1/objects",
                                     headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


async def _stalled_export(port: int, token: str) -> socket.socket:
    """Ask for the whole audit log as CSV and never read the answer."""
    sock = socket.create_connection((HOST, port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.sendall(f"GET /api/v1/audit?format=csv HTTP/1.1\r\nHost: {HOST}\r\nAuthorization: Bearer {token}\r\n\r\n".encode())
    return sock


async def test_stalled_exports_hold_the_api_pool_and_an_alarm_still_commits(topology: Topology) -> None:
    site = topology.edge_config("site-1")
    signer = await topology.enrol(site)
    await topology.pool.execute(SQL_MANY_AUDIT_ROWS)
    config = topology.hub_config(db_pool_size=STALLED, db_idle_in_transaction_timeout_s=600,
                                 auth={"secret_file": str(topology.root / "hub-secret.key"),
                                       "master_email": MASTER[0], "master_password": MASTER[1]})
    await topology.run_hub(config)
    token = await asyncio.to_thread(_login, config.http_port)
    sockets = [await _stalled_export(config.http_port, token) for _ in range(STALLED)]
    try:
        async def exports_stuck() -> bool:
            return await topology.pool.fetchval(SQL_HUB_IN_TRANSACTION) >= STALLED

        await wait_until(exports_stuck, timeout=60, what="eight exports stuck in their transactions")
        # The API really has no connection left: the stall is real, not assumed.
        assert not await asyncio.to_thread(_api_answers, config.http_port, token)

        nc = await topology.connect_hub()
        try:
            row = JournalRow(1, encode_envelope(msgspec.structs.replace(
                new_envelope("demo.tick", "x", Priority.HIGH, DemoTick(1)), seq=1)))
            segment = build_segment("site-1", JournalEpoch("c" * 32, 1), "alarm", [row], signer)
            await nc.jetstream().publish(subjects.edge_lane_subject("site-1", "alarm"), segment.payload,
                                         headers=segment.headers)
        finally:
            await nc.close()
        # Under a second on an idle machine; the deadline is loose for a loaded CI box, and without
        # the separate pool the event never commits while the exports hold the connections.
        await topology.wait_events(1, timeout=10, edge_id="site-1")
    finally:
        for sock in sockets:
            sock.close()


async def test_an_export_whose_client_stopped_reading_gives_its_connection_back(topology: Topology) -> None:
    await topology.pool.execute(SQL_MANY_AUDIT_ROWS)
    config = topology.hub_config(db_pool_size=2, db_idle_in_transaction_timeout_s=2,
                                 auth={"secret_file": str(topology.root / "hub-secret.key"),
                                       "master_email": MASTER[0], "master_password": MASTER[1]})
    await topology.run_hub(config)
    token = await asyncio.to_thread(_login, config.http_port)
    sockets = [await _stalled_export(config.http_port, token) for _ in range(2)]
    try:
        async def exports_stuck() -> bool:
            return await topology.pool.fetchval(SQL_HUB_IN_TRANSACTION) >= 2

        await wait_until(exports_stuck, timeout=60, what="both exports stuck in their transactions")
        # PostgreSQL ends the idle transactions; the API serves again without anyone's help.
        await wait_until(lambda: asyncio.to_thread(_api_answers, config.http_port, token), timeout=30,
                         what="the API answering again")
    finally:
        for sock in sockets:
            sock.close()
