"""Hostile API load all at once does not slow an alarm down (issue 11): eight CSV exports whose
clients stopped reading hold their API connections, an XLSX zip bomb is being uploaded, and an
edge raises an alarm meanwhile. The alarm's bundle commits within a second of its publication,
the bomb is refused in the one error shape, and nothing of it is imported."""
from __future__ import annotations

import asyncio
import socket
import time
from typing import AsyncIterator

import aiohttp
import msgspec
from nats.js import JetStreamContext

from edge.forwarder import build_segment
from edge.journal import JournalRow
from hub.api import import_api
from shared import subjects
from shared.bodies import DemoTick
from shared.envelope import Envelope, JournalEpoch, Priority, encode_envelope, new_envelope
from shared.signing import Signer
from support.topology import HOST, Topology
from support.waiting import wait_until
from test_import_hostile import XLSX, _with_part, _workbook
from test_ingest_isolation import MASTER, SQL_MANY_AUDIT_ROWS, STALLED, _login, _stalled_export

EDGE = "site-1"
EPOCH = JournalEpoch("d" * 32, 1)
ALARM_WITHIN_S = 1.0  # the figure, from the event's publication to its bundle's row
# Exports whose transaction has waited on its client for a while: the hub filled the socket and
# is blocked writing to it (one still producing goes idle only between its fetches).
SQL_EXPORTS_STALLED = """
SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND state = 'idle in transaction' AND pid <> pg_backend_pid()
  AND state_change < now() - interval '1 second'
"""
SQL_BUNDLES = "SELECT count(*) FROM bundle_alarms WHERE object_id = $1"


class ZoneBody(msgspec.Struct, frozen=True):
    zone: int


async def _publish(js: JetStreamContext, signer: Signer, seq: int, envelope: Envelope) -> None:
    """Publish one event into the hub's JetStream as the edge's forwarder would."""
    row = JournalRow(seq, encode_envelope(msgspec.structs.replace(envelope, seq=seq)))
    segment = build_segment(EDGE, EPOCH, "alarm", [row], signer)
    await js.publish(subjects.edge_lane_subject(EDGE, "alarm"), segment.payload, headers=segment.headers)


def _bomb() -> bytes:
    """A workbook small on the wire whose shared strings unpack past the import's limit."""
    padding = b"<!--" + b" " * (import_api.MAX_UNPACKED_BYTES + 1024) + b"-->"
    return _with_part(_workbook(1), "xl/sharedStrings.xml", padding)


async def test_stalled_exports_and_a_zip_bomb_do_not_delay_an_alarm(topology: Topology) -> None:
    signer = await topology.enrol(topology.edge_config(EDGE))
    object_id = await topology.pool.fetchval("INSERT INTO objects (name) VALUES ('Bank') RETURNING id")
    await topology.pool.execute("INSERT INTO panels (object_id, edge_id, source) VALUES ($1, $2, 'panel-1')",
                                object_id, EDGE)
    await topology.pool.execute(SQL_MANY_AUDIT_ROWS)
    # The exports hold eight connections; the ninth lets the bomb past authentication, so it is
    # being read and refused while the alarm goes through.
    config = topology.hub_config(db_pool_size=STALLED + 1, db_idle_in_transaction_timeout_s=600,
                                 auth={"secret_file": str(topology.root / "hub-secret.key"),
                                       "master_email": MASTER[0], "master_password": MASTER[1]})
    await topology.run_hub(config)
    nc = await topology.connect_hub()
    js = nc.jetstream()
    sockets: list[socket.socket] = []
    try:
        # Ingest is running and owns its partitions before anything is timed.
        await _publish(js, signer, 1, new_envelope("demo.tick", "x", Priority.HIGH, DemoTick(1)))
        await topology.wait_events(1, timeout=30, edge_id=EDGE)

        token = await asyncio.to_thread(_login, config.http_port)
        bomb = _bomb()
        sockets += [await _stalled_export(config.http_port, token) for _ in range(STALLED)]

        async def exports_stalled() -> bool:
            return await topology.pool.fetchval(SQL_EXPORTS_STALLED) >= STALLED

        await wait_until(exports_stalled, timeout=60, what="eight exports stalled on their readers")

        first_half_sent, alarm_published = asyncio.Event(), asyncio.Event()

        async def upload() -> AsyncIterator[bytes]:
            yield bomb[:len(bomb) // 2]
            first_half_sent.set()
            await alarm_published.wait()
            yield bomb[len(bomb) // 2:]

        async with aiohttp.ClientSession() as http:
            bomb_answer = asyncio.ensure_future(http.post(
                f"http://{HOST}:{config.http_port}/api/v1/admin/import/objects", data=upload(),
                headers={"Authorization": f"Bearer {token}", "Content-Type": XLSX}))
            await asyncio.wait_for(first_half_sent.wait(), timeout=30)

            async def bundle_committed() -> bool:
                return await topology.pool.fetchval(SQL_BUNDLES, object_id) > 0

            alarm = new_envelope("satel.zone.alarm", "panel-1", Priority.CRITICAL, ZoneBody(zone=1))
            published = time.monotonic()
            await _publish(js, signer, 2, alarm)
            alarm_published.set()  # the rest of the bomb arrives while the alarm is ingested
            await wait_until(bundle_committed, timeout=30, interval=0.01, what="the alarm's bundle")
            latency = time.monotonic() - published

            resp = await asyncio.wait_for(bomb_answer, timeout=30)
            body = await resp.json()
        assert resp.status in (400, 413), body
        assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "request_id", "details"}, body
        assert body["error"]["code"] == "file_too_large", body
        assert latency < ALARM_WITHIN_S, f"the alarm's bundle committed {latency:.2f} s after its publication"
        # Nothing of the bomb was imported, not even in part; the object is the test's own.
        assert [r["name"] for r in await topology.pool.fetch("SELECT name FROM objects")] == ["Bank"]
        assert await topology.pool.fetchval("SELECT count(*) FROM import_log") == 0
    finally:
        for sock in sockets:
            sock.close()
        await nc.close()
