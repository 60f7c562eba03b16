"""A continuous JetStream pull for one durable consumer, yielding whatever has arrived as a batch.

nats-py's `fetch(batch=N)` waits for the whole batch or its timeout once the first message has
arrived, which would put up to a second of latency on a lone alarm. This keeps one pull request
open at a time and hands over each message run as soon as it lands, so a lone event is processed
at once and a backlog arrives in large batches.

A batch is bounded in messages (`batch`) and in bytes (`max_bytes`), both in the pull request, so
the server never sends more than that at once, and in what `next_batch` hands over, so a batch's
transaction stays short: it holds its edges' rows locked (hub/ingest/commit.py), and a live alarm
of the same edge on the alarm lane waits for it (docs/architecture.md §6.7).

Each request has its own reply subject, so a status (heartbeat, 408, 409) is told apart from the
statuses of a request already given up: only the current request's end asks for a new one. A
stale request's end taken for the current one's would leave one more request waiting at the
server each time, up to the consumer's max_waiting.
"""
from __future__ import annotations

import asyncio
import json
import time

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg

_STATUS = "Status"
# A batch's bytes by default: ~5,000 small envelopes, one transaction of a few hundred ms.
DEFAULT_MAX_BYTES = 1024 * 1024
# Room for a message's subject, reply and headers beside its payload, as the server counts it.
_MESSAGE_OVERHEAD = 4096
# Fewer bytes left than this and no message fits: the request is over (the server ends it
# silently when its bytes come to exactly 0, with a 409 when the next message does not fit).
_MIN_MESSAGE_BYTES = 64
# The header block as the wire carries it: "NATS/1.0\r\n", "Key: value\r\n" each, "\r\n".
_HEADER_LINE = len("NATS/1.0\r\n")
_HEADER_END = len("\r\n")


def message_size(msg: Msg) -> int:
    """What the server counts of a delivered message against a pull's max_bytes: payload,
    subject, reply and the header block."""
    headers = 0
    if msg.headers:
        headers = _HEADER_LINE + _HEADER_END + sum(
            len(k.encode()) + len(": \r\n") + len(v.encode()) for k, v in msg.headers.items())
    return len(msg.data) + headers + len(msg.subject.encode()) + len((msg.reply or "").encode())


class PullStream:
    """Pulls from `stream`/`consumer`; `next_batch()` returns the messages that have arrived."""

    def __init__(
        self,
        nc: NatsClient,
        stream: str,
        consumer: str,
        *,
        batch: int = 512,
        max_bytes: int = DEFAULT_MAX_BYTES,
        expires_s: float = 10.0,
        heartbeat_s: float = 2.0,
        api_prefix: str = "$JS.API",
    ) -> None:
        self._nc = nc
        self._next_subject = f"{api_prefix}.CONSUMER.MSG.NEXT.{stream}.{consumer}"
        self._batch = batch
        # Never below the largest message the server takes: one it could not send would stall the
        # consumer (a 409 "Message Size Exceeds MaxBytes" on every request).
        self._largest = nc.max_payload + _MESSAGE_OVERHEAD
        self._max_bytes = max(max_bytes, self._largest)
        self._expires_ns = int(expires_s * 1e9)
        self._heartbeat_s = heartbeat_s
        self._queue: asyncio.Queue[Msg] = asyncio.Queue()
        self._inbox = nc.new_inbox()
        self._requests = 0
        self._reply = ""  # the current request's reply subject
        self._sub = None
        self._outstanding = 0
        self._bytes_left = 0
        self._request_deadline = 0.0
        self._last_seen = 0.0

    async def start(self) -> None:
        self._sub = await self._nc.subscribe(f"{self._inbox}.*", cb=self._on_msg)

    async def close(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()
            self._sub = None

    async def _on_msg(self, msg: Msg) -> None:
        await self._queue.put(msg)

    async def _request(self) -> None:
        body = {"batch": self._batch, "max_bytes": self._max_bytes, "expires": self._expires_ns,
                "idle_heartbeat": int(self._heartbeat_s * 1e9)}
        self._requests += 1
        self._reply = f"{self._inbox}.{self._requests}"
        await self._nc.publish(self._next_subject, json.dumps(body).encode(), reply=self._reply)
        self._outstanding = self._batch
        self._bytes_left = self._max_bytes
        now = time.monotonic()
        # The server's 408 normally ends the request; this is for when it never comes.
        self._request_deadline = now + self._expires_ns / 1e9 + self._heartbeat_s
        self._last_seen = now

    def _request_done(self) -> bool:
        now = time.monotonic()
        # No heartbeat for a while means the request died with a lost connection or server.
        return (
            self._outstanding <= 0
            # The server ends a request whose bytes ran out exactly without a word: ask again
            # rather than wait for the request to expire.
            or self._bytes_left < _MIN_MESSAGE_BYTES
            or now > self._request_deadline
            or now - self._last_seen > 3 * self._heartbeat_s
        )

    async def next_batch(self, wait_s: float) -> list[Msg]:
        """The data messages that have arrived (at least one; at most `batch` of them and, beyond
        the first, `max_bytes` in all), or [] after `wait_s` with none."""
        deadline = time.monotonic() + wait_s
        out: list[Msg] = []
        while not out:
            if self._request_done():
                await self._request()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return out
            try:
                first = await asyncio.wait_for(self._queue.get(), timeout=min(remaining, self._heartbeat_s))
            except asyncio.TimeoutError:
                continue
            size = 0
            msg: Msg | None = first
            # What does not fit stays queued for the next batch, in order.
            while msg is not None:
                if self._is_status(msg):
                    # Data comes with its stream subject; a status with its request's reply
                    # subject. A given-up request's statuses say nothing of the current one.
                    if msg.subject == self._reply:
                        self._last_seen = time.monotonic()
                        code = msg.headers.get(_STATUS) if msg.headers else None
                        if code != "100":  # 100 is a heartbeat; 404/408/409 end the request
                            self._outstanding = 0
                else:
                    self._last_seen = time.monotonic()
                    self._outstanding -= 1
                    taken = message_size(msg)
                    self._bytes_left -= taken
                    size += taken
                    out.append(msg)
                full = len(out) >= self._batch or size >= self._max_bytes
                msg = None if full or self._queue.empty() else self._queue.get_nowait()
        return out

    @staticmethod
    def _is_status(msg: Msg) -> bool:
        return not msg.data and bool(msg.headers) and _STATUS in msg.headers
