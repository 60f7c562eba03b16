"""Ships the journal to the hub's JetStream as signed segments (docs/architecture.md §3).

One task per lane. Each reads what is waiting (up to the segment cap), signs it once, and
publishes it with a de-duplication id; a bounded window of segments is in flight at a time. Rows
are marked forwarded only when their segment's PubAck arrives. On any failure the lane waits for
its in-flight segments to settle, backs off with jitter, and resumes from the first unforwarded
row: the hub drops whatever it already has, so a retry never doubles an event. A PubAck on one
lane cuts the other lanes' back-off short: the hub is reachable again, and an alarm must not sit
out a long back-off while the event lane drains a WAN outage's backlog.

Catch-up is paced (docs/architecture.md §3 "Catch-up"): the `evt` lane sends at most
`evt_events_per_s` envelopes a second (a token bucket, `RateCap`), so a box returning from a long
outage cannot take more than its share of the hub while many sites return at once. The `alarm`
lane is never paced: a live alarm goes at once whatever the backlog.

Only a PubAck from the hub's stream (`VIGIL_EVENTS` in JetStream domain `hub`) counts: any
stream that captures this edge's subjects on the leaf, in another domain or under another name,
answers with a PubAck of its own, and trusting it would drop rows the hub never got.
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

import nats.errors
import nats.js.errors
from nats.aio.client import Client as NatsClient
from nats.js.api import PubAck
from prometheus_client import Counter, Gauge, Histogram

from edge.journal import Journal, JournalRow
from shared.backoff import Backoff, wait_any
from shared.clock import SYSTEM_CLOCK, Clock
from shared.envelope import JournalEpoch, join_segment
from shared.signing import Signer, b64url
from shared import subjects

log = logging.getLogger("vigil.edge.forwarder")

SEGMENTS = Counter("vigil_forwarder_segments_total", "Segments acknowledged by the hub", ["lane"])
EVENTS = Counter("vigil_forwarder_events_total", "Envelopes acknowledged by the hub", ["lane"])
FAILURES = Counter("vigil_forwarder_failures_total", "Segment publishes that failed", ["lane", "reason"])
FOREIGN_ACKS = Counter(
    "vigil_forwarder_foreign_acks_total", "PubAcks from a stream other than the hub's VIGIL_EVENTS (refused)", ["lane"]
)
IN_FLIGHT = Gauge("vigil_forwarder_in_flight", "Segments published and not yet acknowledged", ["lane"])
PACED_SECONDS = Counter(
    "vigil_forwarder_paced_seconds_total", "Time a lane waited for its rate cap before publishing", ["lane"]
)
ACK_SECONDS = Histogram(
    "vigil_forwarder_ack_seconds", "Publish to PubAck", ["lane"], buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5)
)


# The `evt` lane's default rate cap: half the hub's ingest target (10,000 events/s, bench/ingest.py),
# so one returning site never takes the whole hub; 100,000 rows of backlog drain in 20 s.
EVT_EVENTS_PER_S = 5_000.0


@dataclass(frozen=True)
class ForwarderSettings:
    """Segment caps, window, timeouts and the `evt` lane's rate cap (0: not paced)."""

    segment_max_events: int = 256
    segment_max_bytes: int = 256 * 1024
    window: int = 8
    ack_timeout_s: float = 5.0
    backoff_base_s: float = 0.2
    backoff_cap_s: float = 10.0
    evt_events_per_s: float = EVT_EVENTS_PER_S


class RateCap:
    """A token bucket of envelopes: `rate` a second, at most `burst` saved up while idle. Pure: the
    caller gives the time. A segment may take more than is saved up; the debt is the wait."""

    def __init__(self, rate: float, burst: float) -> None:
        if rate <= 0 or burst <= 0:
            raise ValueError(f"a rate cap needs a positive rate and burst, got rate={rate} burst={burst}")
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._at: float | None = None

    def take(self, n: int, now: float) -> float:
        """Spend `n` envelopes' worth at monotonic time `now`; the seconds to wait before sending
        them (0: at once)."""
        if self._at is not None:
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        self._tokens -= n
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate


_DRAIN_POLL_S = 0.02


@dataclass(frozen=True)
class SignedSegment:
    """A segment ready to publish."""

    lane: str
    first_seq: int
    last_seq: int
    count: int
    payload: bytes
    headers: dict[str, str]


def build_segment(edge: str, epoch: JournalEpoch, lane: str, rows: list[JournalRow], signer: Signer) -> SignedSegment:
    """Join the rows' envelope bytes into one segment of `epoch` and sign it once."""
    payload = join_segment(edge, epoch, [r.envelope for r in rows])
    first, last = rows[0].seq, rows[-1].seq
    headers = {
        subjects.H_EDGE: edge,
        subjects.H_KEY: signer.key_id,
        subjects.H_SIG: b64url(signer.sign(payload)),
        subjects.H_SEQ: f"{first}-{last}",
        subjects.H_EPOCH: epoch.id,
        subjects.H_MSG_ID: subjects.segment_msg_id(edge, first, last, payload),
    }
    return SignedSegment(lane, first, last, len(rows), payload, headers)


class _LaneFailed(Exception):
    pass


class Forwarder:
    """Forwards one edge's journal to the hub, one lane task each."""

    def __init__(
        self,
        edge_id: str,
        journal: Journal,
        signer: Signer,
        nc: NatsClient,
        settings: ForwarderSettings = ForwarderSettings(),
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.edge_id = edge_id
        self.journal = journal
        self.signer = signer
        self.js = nc.jetstream(domain=subjects.HUB_DOMAIN)
        self.settings = settings
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.state: dict[str, str] = {lane: "idle" for lane in subjects.LANES}
        self._retry_now = {lane: asyncio.Event() for lane in subjects.LANES}
        self.last_error: dict[str, str] = {}
        self.last_ack_at: float | None = None
        self.clock = clock
        # Envelopes the hub acknowledged per lane since start: the status report's drain rate.
        self.forwarded = {lane: 0 for lane in subjects.LANES}
        # Only the evt lane is paced; a burst of one full window never waits.
        self._caps: dict[str, RateCap] = {}
        if settings.evt_events_per_s > 0:
            burst = max(settings.segment_max_events * settings.window, settings.evt_events_per_s)
            self._caps[subjects.LANE_EVT] = RateCap(settings.evt_events_per_s, burst)
        # Lanes whose foreign PubAck has been logged since their last genuine one: one error line
        # per streak, not one per retried segment.
        self._foreign_logged: set[str] = set()

    def start(self) -> None:
        """Start one forwarding task per lane."""
        for lane in subjects.LANES:
            self._tasks.append(asyncio.create_task(self._run_lane(lane), name=f"forwarder-{lane}"))

    async def drain(self, timeout_s: float) -> bool:
        """Wait (at most `timeout_s`) until every journaled row is forwarded; True if all were.

        Called at shutdown after the links journaled their last rows, so a planned stop reaches
        the hub before the box goes quiet, while the hub is reachable; if it is not, the rows
        simply wait in the journal for the next start."""
        deadline = time.monotonic() + timeout_s
        while any(self.journal.unforwarded.values()):
            if time.monotonic() >= deadline:
                log.info("stopping with %s rows not yet forwarded; they go at the next start",
                         dict(self.journal.unforwarded))
                return False
            await asyncio.sleep(_DRAIN_POLL_S)
        return True

    async def stop(self) -> None:
        """Stop publishing new segments, let in-flight ones settle, and return."""
        self._stop.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    async def _run_lane(self, lane: str) -> None:
        backoff = Backoff(self.settings.backoff_base_s, self.settings.backoff_cap_s)
        while not self._stop.is_set():
            try:
                await self._pump(lane, backoff)
            except _LaneFailed:
                self._retry_now[lane].clear()  # only a PubAck from now on says the hub is back
                delay = backoff.next_delay()
                self.state[lane] = "backoff"
                log.warning(
                    "forwarding on lane %s failed (%s); retrying in %.2f s from the first unforwarded row",
                    lane, self.last_error.get(lane), delay, extra={"lane": lane},
                )
                if await self._back_off(lane, delay):
                    return

    async def _back_off(self, lane: str, delay: float) -> bool:
        """Wait `delay`, or less if another lane got a PubAck; True when the forwarder stops."""
        await wait_any((self._stop, self._retry_now[lane]), delay)
        return self._stop.is_set()

    async def _pump(self, lane: str, backoff: Backoff) -> None:
        """Publish segments until a failure; raises _LaneFailed once in-flight work has settled."""
        cursor = 0
        window = asyncio.Semaphore(self.settings.window)
        in_flight: set[asyncio.Task[None]] = set()
        failed = asyncio.Event()
        try:
            while not failed.is_set():
                self.state[lane] = "idle" if not in_flight else "sending"
                waiter = asyncio.create_task(self.journal.wait_for_rows(lane, cursor))
                failer = asyncio.create_task(failed.wait())
                try:
                    await asyncio.wait({waiter, failer}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    waiter.cancel()
                    failer.cancel()
                if failed.is_set():
                    break
                await window.acquire()
                if failed.is_set():
                    window.release()
                    break
                rows = await self.journal.read_unforwarded(
                    lane, cursor, self.settings.segment_max_events, self.settings.segment_max_bytes
                )
                if not rows:
                    # The tail row was evicted or already forwarded: nothing is past the cursor.
                    window.release()
                    cursor = max(cursor, self.journal.lane_tail[lane])
                    continue
                cursor = rows[-1].seq
                if await self._pace(lane, len(rows), failed):
                    window.release()
                    break
                segment = build_segment(self.edge_id, self.journal.epoch, lane, rows, self.signer)
                self.state[lane] = "sending"
                task = asyncio.create_task(self._publish(segment, window, failed, backoff))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
        finally:
            if in_flight:
                await asyncio.gather(*in_flight, return_exceptions=True)
        raise _LaneFailed

    async def _pace(self, lane: str, count: int, failed: asyncio.Event) -> bool:
        """Wait as long as the lane's rate cap asks for `count` envelopes; True when the lane
        failed or the forwarder stopped meanwhile (the rows are read again from the journal)."""
        cap = self._caps.get(lane)
        if cap is None:
            return False
        delay = cap.take(count, self.clock.monotonic())
        if delay <= 0:
            return False
        self.state[lane] = "paced"
        PACED_SECONDS.labels(lane).inc(delay)
        await wait_any((self._stop, failed), delay)
        return failed.is_set() or self._stop.is_set()

    async def _publish(
        self, segment: SignedSegment, window: asyncio.Semaphore, failed: asyncio.Event, backoff: Backoff
    ) -> None:
        lane = segment.lane
        subject = subjects.edge_lane_subject(self.edge_id, lane)
        IN_FLIGHT.labels(lane).inc()
        started = time.perf_counter()
        try:
            ack = await self.js.publish(
                subject, segment.payload, timeout=self.settings.ack_timeout_s, headers=segment.headers
            )
        except (nats.errors.Error, nats.js.errors.Error, asyncio.TimeoutError) as exc:
            reason = type(exc).__name__
            FAILURES.labels(lane, reason).inc()
            self.last_error[lane] = f"{reason}: {exc}".strip()
            failed.set()
            return
        finally:
            IN_FLIGHT.labels(lane).dec()
            window.release()
        if ack.stream != subjects.EVENTS_STREAM or ack.domain != subjects.HUB_DOMAIN:
            self._refuse_foreign_ack(segment, ack)
            failed.set()
            return
        self._foreign_logged.discard(lane)
        ACK_SECONDS.labels(lane).observe(time.perf_counter() - started)
        await self.journal.mark_forwarded(lane, segment.first_seq, segment.last_seq)
        SEGMENTS.labels(lane).inc()
        EVENTS.labels(lane).inc(segment.count)
        self.forwarded[lane] += segment.count
        self.last_ack_at = time.time()
        backoff.reset()
        for other, retry in self._retry_now.items():
            if other != lane:
                retry.set()
        log.debug("segment %d-%d acknowledged", segment.first_seq, segment.last_seq,
                  extra={"lane": lane, "seq": f"{segment.first_seq}-{segment.last_seq}", "events": segment.count})

    def _refuse_foreign_ack(self, segment: SignedSegment, ack: PubAck) -> None:
        """Count and record a PubAck from a stream that is not the hub's: the segment's rows stay
        unforwarded and the lane retries, as after any failed publish."""
        lane = segment.lane
        FOREIGN_ACKS.labels(lane).inc()
        FAILURES.labels(lane, "ForeignAck").inc()
        seen = f"stream {ack.stream!r} in domain {ack.domain!r}"
        self.last_error[lane] = (
            f"ForeignAck: acknowledged by {seen}, not {subjects.EVENTS_STREAM!r} in {subjects.HUB_DOMAIN!r}"
        )
        if lane in self._foreign_logged:
            return
        self._foreign_logged.add(lane)
        log.error(
            "segment %d-%d acknowledged by %s, not the hub's %s in domain %s: something on the leaf captures this "
            "edge's subjects; its rows stay unforwarded and the lane retries",
            segment.first_seq, segment.last_seq, seen, subjects.EVENTS_STREAM, subjects.HUB_DOMAIN,
            extra={"edge": self.edge_id, "lane": lane, "seq": f"{segment.first_seq}-{segment.last_seq}",
                   "ack_stream": ack.stream, "ack_domain": ack.domain},
        )

    def status(self) -> dict[str, object]:
        """What the local page shows about forwarding."""
        return {"lanes": dict(self.state), "last_error": dict(self.last_error), "last_ack_at": self.last_ack_at,
                "evt_events_per_s": self.settings.evt_events_per_s}
