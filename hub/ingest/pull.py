"""A continuous JetStream pull for one durable consumer, yielding whatever has arrived as a batch.

nats-py's `fetch(batch=N)` waits for the whole batch or its timeout once the first message has
arrived, which would put up to a second of latency on a lone alarm. This keeps one pull request
open at a time and hands over each message run as soon as it lands, so a lone event is processed
at once and a backlog arrives in large batches.
"""
from __future__ import annotations

import asyncio
import json
import time

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg

_STATUS = "Status"


class PullStream:
    """Pulls from `stream`/`consumer`; `next_batch()` returns the messages that have arrived."""

    def __init__(
        self,
        nc: NatsClient,
        stream: str,
        consumer: str,
        *,
        batch: int = 512,
        expires_s: float = 10.0,
        heartbeat_s: float = 2.0,
        api_prefix: str = "$JS.API",
    ) -> None:
        self._nc = nc
        self._next_subject = f"{api_prefix}.CONSUMER.MSG.NEXT.{stream}.{consumer}"
        self._batch = batch
        self._expires_ns = int(expires_s * 1e9)
        self._heartbeat_s = heartbeat_s
        self._queue: asyncio.Queue[Msg] = asyncio.Queue()
        self._inbox = nc.new_inbox()
        self._sub = None
        self._outstanding = 0
        self._request_deadline = 0.0
        self._last_seen = 0.0

    async def start(self) -> None:
        self._sub = await self._nc.subscribe(self._inbox, cb=self._on_msg)

    async def close(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()
            self._sub = None

    async def _on_msg(self, msg: Msg) -> None:
        await self._queue.put(msg)

    async def _request(self) -> None:
        body = {"batch": self._batch, "expires": self._expires_ns, "idle_heartbeat": int(self._heartbeat_s * 1e9)}
        await self._nc.publish(self._next_subject, json.dumps(body).encode(), reply=self._inbox)
        self._outstanding = self._batch
        now = time.monotonic()
        self._request_deadline = now + self._expires_ns / 1e9
        self._last_seen = now

    def _request_done(self) -> bool:
        now = time.monotonic()
        # No heartbeat for a while means the request died with a lost connection or server.
        return (
            self._outstanding <= 0
            or now > self._request_deadline
            or now - self._last_seen > 3 * self._heartbeat_s
        )

    async def next_batch(self, wait_s: float) -> list[Msg]:
        """The data messages that have arrived (at least one), or [] after `wait_s` with none."""
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
            pending = [first]
            while not self._queue.empty() and len(pending) < self._batch:
                pending.append(self._queue.get_nowait())
            for msg in pending:
                self._last_seen = time.monotonic()
                if self._is_status(msg):
                    code = msg.headers.get(_STATUS) if msg.headers else None
                    if code != "100":  # 100 is a heartbeat; 404/408/409 end the request
                        self._outstanding = 0
                    continue
                self._outstanding -= 1
                out.append(msg)
        return out

    @staticmethod
    def _is_status(msg: Msg) -> bool:
        return not msg.data and bool(msg.headers) and _STATUS in msg.headers
