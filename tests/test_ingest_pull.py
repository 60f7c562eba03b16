"""The hub's continuous pull (hub/ingest/pull.py) against a real nats-server: batches bounded in
bytes as the server counts them, never stalled by a request the server ended without a word, and
one request waiting at the server however many batches it hands over (docs/architecture.md §6.7)."""
from __future__ import annotations

import asyncio
import json
import time

import nats
import pytest
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, StorageType, StreamConfig

from hub.ingest.pull import PullStream, message_size
from support.topology import Topology


async def _stream(topology: Topology, name: str, **consumer: object) -> nats.NATS:
    nc = await topology.connect_hub()
    js = nc.jetstream()
    await js.add_stream(StreamConfig(name=name, subjects=[f"{name.lower()}.>"], storage=StorageType.MEMORY))
    await js.add_consumer(name, ConsumerConfig(durable_name="c", ack_policy=AckPolicy.EXPLICIT, **consumer))
    return nc


async def test_a_message_is_counted_as_the_server_counts_it_headers_included(topology: Topology) -> None:
    nc = await _stream(topology, "PULLSIZE")
    try:
        await nc.jetstream().publish("pullsize.x", b"x" * 100, headers={"Vigil-Edge": "site-1", "Vigil-Note": "çødé"})
        inbox = nc.new_inbox()
        got: asyncio.Queue[Msg] = asyncio.Queue()
        sub = await nc.subscribe(inbox, cb=got.put)
        asked = 4000
        await nc.publish("$JS.API.CONSUMER.MSG.NEXT.PULLSIZE.c", json.dumps(
            {"batch": 5, "max_bytes": asked, "expires": int(0.5e9)}).encode(), reply=inbox)
        data = await asyncio.wait_for(got.get(), 10)
        timeout = await asyncio.wait_for(got.get(), 10)
        await sub.unsubscribe()
        assert timeout.headers and timeout.headers["Status"] == "408", timeout.headers
        # The 408 says how many of the request's bytes were left: the rest is what it counted.
        assert asked - int(timeout.headers["Nats-Pending-Bytes"]) == message_size(data)
    finally:
        await nc.close()


@pytest.mark.slow
async def test_pull_batches_stay_within_their_bytes_and_never_stall(topology: Topology) -> None:
    nc = await _stream(topology, "PULLBOUND", max_ack_pending=10_000)
    js = nc.jetstream()
    count, body = 60, 100_000
    for i in range(count):
        await js.publish("pullbound.x", i.to_bytes(4, "big") + bytes(body))
    # Asked for 64 KiB: raised to the largest message the server takes, so no message can stall it.
    pull = PullStream(nc, "PULLBOUND", "c", batch=512, max_bytes=64 * 1024, expires_s=30.0)
    assert pull._max_bytes >= nc.max_payload
    await pull.start()
    seen: list[int] = []
    sizes: list[list[int]] = []
    started = time.monotonic()
    try:
        while len(seen) < count:
            msgs = await pull.next_batch(wait_s=5.0)
            assert msgs, f"no batch within 5 s after {len(seen)} of {count} messages"
            sizes.append([message_size(m) for m in msgs])
            seen += [int.from_bytes(m.data[:4], "big") for m in msgs]
            for m in msgs:
                await m.ack()
    finally:
        await pull.close()
        await nc.close()
    assert seen == list(range(count))  # all of them, in order, none twice
    assert len(sizes) > 1
    # Every batch stops at the bound: only its last message may cross it.
    assert all(sum(batch[:-1]) < pull._max_bytes for batch in sizes), sizes
    # A request whose bytes ran out is renewed at once, not after its 30 s expiry nor a 6 s
    # heartbeat silence each (with ~6 requests, a stall would take over 30 s).
    assert time.monotonic() - started < 20.0, sizes


async def test_one_request_waits_at_the_server_however_many_batches_it_hands_over(topology: Topology) -> None:
    nc = await _stream(topology, "PULLWAIT")
    js = nc.jetstream()
    pull = PullStream(nc, "PULLWAIT", "c", batch=512, expires_s=4.0, heartbeat_s=0.5)
    await pull.start()

    async def waiting() -> int:
        return (await js.consumer_info("PULLWAIT", "c")).num_waiting

    try:
        for i in range(40):
            await js.publish("pullwait.x", i.to_bytes(4, "big"))
            msgs = await pull.next_batch(wait_s=10.0)
            assert [int.from_bytes(m.data, "big") for m in msgs] == [i]
            await msgs[0].ack()
        # A lone message per batch leaves the request with room for more: it is not renewed.
        assert await waiting() == 1
        # Idle past the request's expiry: its 408 ends it and one new request replaces it.
        assert await pull.next_batch(wait_s=5.0) == []
        assert await waiting() == 1
        await js.publish("pullwait.x", (99).to_bytes(4, "big"))
        late = await pull.next_batch(wait_s=10.0)
        assert [int.from_bytes(m.data, "big") for m in late] == [99]
    finally:
        await pull.close()
        await nc.close()
