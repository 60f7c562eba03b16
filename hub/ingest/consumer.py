"""Ingest: JetStream segments → verify → PostgreSQL, acknowledged only after commit.

One worker per held (lane, partition) consumer. Each worker handles its messages strictly in
stream order: one batch at a time, committed in one transaction, then acked. Whenever a worker
(re)starts it resets its durable consumer to the ack floor, so messages a crashed hub had pulled
but not acknowledged come back first, in order, instead of after newer ones.
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import asyncpg
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    StorageType,
    StreamConfig,
    SubjectTransform,
)
from prometheus_client import Counter, Gauge, Histogram

from hub.db.errors import DB_ERRORS
from hub.ingest.edge_keys import EdgeKeyCache
from hub.ingest.partitions import Fence, PartitionLost, Unit
from hub.ingest.pull import DEFAULT_MAX_BYTES, PullStream
from hub.ingest.commit import DEFAULT_CLOCK_TOLERANCE, BatchResult, RejectRecord, commit_batch
from hub.ingest.verify import Accepted, Rejected, verify_segment
from shared import subjects
from shared.backoff import Backoff, sleep_or_stop
from shared.notices import SegmentsRefused, encode_notice

log = logging.getLogger("vigil.hub.ingest.consumer")

INGESTED = Counter("vigil_ingest_events_total", "Envelopes committed to PostgreSQL")
DUPLICATES = Counter("vigil_ingest_duplicates_total", "Envelopes dropped as already committed")
REJECTS = Counter("vigil_ingest_rejects_total", "Segments refused", ["reason"])
BATCH_SECONDS = Histogram(
    "vigil_ingest_batch_seconds", "Verify + commit + ack of one batch",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
)
HELD = Gauge("vigil_ingest_partitions_held", "Ingest consumers this process holds")
ERRORS = Counter("vigil_ingest_errors_total", "Batches that failed and will be redelivered")
MERGED = Counter("vigil_ingest_occurrences_merged_total",
                 "Envelopes merged into an event of the same occurrence (state bitmap and event log)")

# A refusing edge is told at most this often (its segments may be refused by the thousand).
NOTICE_EVERY_S = 1.0

EVENTS_DUPLICATE_WINDOW_S = 300.0
EVENTS_MAX_AGE_S = 7 * 24 * 3600.0
ACK_WAIT_S = 30.0
# Ingest connections the evt lane may never take: a catch-up's evt batches would otherwise hold
# every one, and a live alarm would wait for a connection behind them (docs/architecture.md §6.7).
ALARM_RESERVED_CONNECTIONS = 2


def events_stream_config(max_bytes: int = -1) -> StreamConfig:
    """VIGIL_EVENTS: file storage in the hub domain, a de-duplication window well over the
    edges' retry horizon, and the partitioning transform (see shared.subjects)."""
    return StreamConfig(
        name=subjects.EVENTS_STREAM,
        subjects=subjects.EVENTS_STREAM_SUBJECTS,
        storage=StorageType.FILE,
        duplicate_window=EVENTS_DUPLICATE_WINDOW_S,
        max_age=EVENTS_MAX_AGE_S,
        max_bytes=max_bytes,
        discard=DiscardPolicy.OLD,
        subject_transform=SubjectTransform(src=subjects.EVENTS_TRANSFORM_SRC, dest=subjects.EVENTS_TRANSFORM_DEST),
    )


async def ensure_streams(nc: NatsClient, max_bytes: int = -1) -> None:
    """Create or update the hub's streams (idempotent; every hub process calls it at start)."""
    js = nc.jetstream()
    config = events_stream_config(max_bytes)
    try:
        await js.add_stream(config)
    except nats.js.errors.BadRequestError:
        await js.update_stream(config)


class Ingest:
    """Runs a consumer worker per held unit; `acquire`/`release` are PartitionOwner callbacks."""

    def __init__(self, nc: NatsClient, pool: asyncpg.Pool, keys: EdgeKeyCache, *, batch: int = 512,
                 batch_max_bytes: int = DEFAULT_MAX_BYTES,
                 clock_tolerance: timedelta = DEFAULT_CLOCK_TOLERANCE) -> None:
        self._nc = nc
        self._clock_tolerance = clock_tolerance
        self._notified: dict[str, float] = {}
        self._js = nc.jetstream()
        self._pool = pool
        self._keys = keys
        self._batch = batch
        self._batch_max_bytes = batch_max_bytes
        self._evt_connections = asyncio.Semaphore(max(1, pool.get_max_size() - ALARM_RESERVED_CONNECTIONS))
        self._workers: dict[Unit, tuple[asyncio.Event, asyncio.Task[None]]] = {}
        # PartitionOwner.fence, once the owner exists: each commit proves the unit is still held.
        self.fence_of: Callable[[Unit], Fence | None] | None = None

    async def acquire(self, unit: Unit) -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(self._run_worker(unit, stop), name=f"ingest-{unit[0]}-{unit[1]}")
        self._workers[unit] = (stop, task)
        HELD.set(len(self._workers))

    async def release(self, unit: Unit) -> None:
        """Stop the unit's worker after its current batch (committed and acked, or neither)."""
        entry = self._workers.pop(unit, None)
        HELD.set(len(self._workers))
        if entry is None:
            return
        stop, task = entry
        stop.set()
        await asyncio.gather(task, return_exceptions=True)

    async def close(self) -> None:
        for unit in list(self._workers):
            await self.release(unit)

    async def _reset_consumer(self, lane: str, partition: int) -> None:
        name = subjects.ingest_consumer(lane, partition)
        floor = 0
        try:
            info = await self._js.consumer_info(subjects.EVENTS_STREAM, name)
            floor = info.ack_floor.stream_seq if info.ack_floor else 0
            await self._js.delete_consumer(subjects.EVENTS_STREAM, name)
        except nats.js.errors.NotFoundError:
            pass
        config = ConsumerConfig(
            durable_name=name,
            filter_subject=subjects.ingest_filter(lane, partition),
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=ACK_WAIT_S,
            max_ack_pending=self._batch * 4,
            max_deliver=-1,
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE if floor else DeliverPolicy.ALL,
            opt_start_seq=floor + 1 if floor else None,
        )
        await self._js.add_consumer(subjects.EVENTS_STREAM, config)

    async def _run_worker(self, unit: Unit, stop: asyncio.Event) -> None:
        lane, partition = unit
        backoff = Backoff(0.2, 10.0)
        while not stop.is_set():
            pull: PullStream | None = None
            try:
                await self._reset_consumer(lane, partition)
                pull = PullStream(self._nc, subjects.EVENTS_STREAM, subjects.ingest_consumer(lane, partition),
                                  batch=self._batch, max_bytes=self._batch_max_bytes)
                await pull.start()
                while not stop.is_set():
                    msgs = await pull.next_batch(wait_s=0.5)
                    if msgs:
                        await self.handle_batch(msgs, unit)
                        backoff.reset()
            except PartitionLost as exc:
                # Another hub may own it now: stop without acking; JetStream redelivers to it.
                log.warning("ingest %s/%d: %s; this worker stops", lane, partition, exc)
                break
            except Exception as exc:  # a worker must never die silently: log, back off, resume
                ERRORS.inc()
                delay = backoff.next_delay()
                expected = isinstance(exc, (nats.errors.Error, nats.js.errors.Error, asyncio.TimeoutError, *DB_ERRORS))
                log.log(logging.WARNING if expected else logging.ERROR,
                        "ingest %s/%d failed (%s: %s); resuming from the ack floor in %.2f s",
                        lane, partition, type(exc).__name__, exc, delay, exc_info=not expected)
                if await sleep_or_stop(delay, stop):
                    break
            finally:
                if pull is not None:
                    try:
                        await pull.close()
                    except nats.errors.Error:
                        pass

    async def handle_batch(self, msgs: list[Msg], unit: Unit | None = None) -> None:
        """Verify, commit and acknowledge one batch of segment messages, in their order.

        A refused segment is quarantined (hub.ingest.quarantine) in the same transaction and
        its edge told. A batch PostgreSQL refuses for its data (not for being unreachable) is
        retried one message at a time, and a segment refused on its own one envelope at a time:
        the envelopes no table takes are quarantined alone and the rest stored, so one bad
        envelope never condemns its segment nor blocks its partition.
        """
        started = time.perf_counter()
        fence = None
        if unit is not None and self.fence_of is not None:
            fence = self.fence_of(unit)
            if fence is None:
                raise PartitionLost(f"partition {unit[0]}/{unit[1]} is no longer held by this process")
        edges = {parsed[0] for m in msgs if (parsed := subjects.parse_stored_subject(m.subject))}
        keys = await self._keys.keys_for(edges)
        accepted: list[Accepted] = []
        rejects: list[RejectRecord] = []
        for msg in msgs:
            verdict = verify_segment(msg.subject, msg.headers, msg.data, keys)
            if isinstance(verdict, Rejected):
                rejects.append(_reject_record(msg, verdict))
            else:
                accepted.append(verdict)
        try:
            if unit is not None and unit[0] == subjects.LANE_EVT:
                async with self._evt_connections:
                    result = await self._commit(accepted, rejects, fence)
            else:
                result = await self._commit(accepted, rejects, fence)
        except (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError) as exc:
            if len(msgs) > 1:
                for msg in msgs:
                    await self.handle_batch([msg], unit)
                return
            if not accepted:
                # Only the quarantine row itself can be refused here, and its text is made
                # storable first; if that still fails, the worker backs off and retries, loudly.
                raise
            result = await self._store_alone(msgs[0], accepted[0], exc)
        # Committed: only now may JetStream forget these messages (a quarantined one is kept in
        # PostgreSQL, so it is acknowledged too).
        for msg in msgs:
            await msg.ack()
        INGESTED.inc(result.stored)
        DUPLICATES.inc(result.duplicates)
        MERGED.inc(result.merged)
        await self._after_quarantine(rejects, result.quarantine_ids)
        BATCH_SECONDS.observe(time.perf_counter() - started)

    async def _commit(self, accepted: list[Accepted], rejects: list[RejectRecord],
                      fence: Fence | None = None) -> BatchResult:
        async with self._pool.acquire() as conn:
            return await commit_batch(conn, accepted, rejects, clock_tolerance=self._clock_tolerance, fence=fence)

    async def _store_alone(self, msg: Msg, segment: Accepted, exc: Exception) -> BatchResult:
        """Store a verified segment PostgreSQL refused whole, envelope by envelope; quarantine the
        envelopes it refuses one by one (their seqs stay uncommitted: a gap until replayed)."""
        log.warning("segment %s refused by PostgreSQL (%s); storing its envelopes one by one",
                    msg.headers.get(subjects.H_SEQ) if msg.headers else "?", exc,
                    extra={"edge": segment.edge_id})
        total = BatchResult()
        for env in segment.envelopes:
            one = dataclasses.replace(segment, envelopes=[env])
            try:
                result = await self._commit([one], [])
            except (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError) as env_exc:
                record = _reject_record(msg, Rejected(
                    "unstorable", f"envelope {env.seq}: {type(env_exc).__name__}: {env_exc}",
                    segment.edge_id, (msg.headers or {}).get(subjects.H_KEY), f"{env.seq}-{env.seq}"),
                    envelope_seq=env.seq)
                result = await self._commit([], [record])
                await self._after_quarantine([record], result.quarantine_ids)
            total.stored += result.stored
            total.duplicates += result.duplicates
            total.merged += result.merged
        return total

    async def _after_quarantine(self, records: list[RejectRecord], ids: list[int]) -> None:
        """Count and log each quarantined segment and tell its edge (at most once a second each)."""
        for record, quarantine_id in zip(records, ids):
            r = record.rejected
            REJECTS.labels(r.reason).inc()
            log.warning("quarantined segment %d: %s (%s)", quarantine_id, r.reason, r.detail,
                        extra={"edge": r.edge_header, "subject": record.subject, "seq": r.seq_range,
                               "quarantine_id": quarantine_id})
            edge = r.edge_header
            now = time.monotonic()
            if not edge or not subjects.valid_edge_id(edge) or now - self._notified.get(edge, -NOTICE_EVERY_S) < NOTICE_EVERY_S:
                continue
            self._notified[edge] = now
            notice = SegmentsRefused(edge=edge, reason=r.reason, detail=r.detail[:500], key_id=r.key_id,
                                     seq_range=r.seq_range, quarantine_id=quarantine_id,
                                     at=datetime.now(timezone.utc))
            try:
                await self._nc.publish(subjects.edge_notices(edge), encode_notice(notice))
            except nats.errors.Error as exc:  # the notice is repeated with the next refusal
                log.warning("could not notify edge %s of its refused segment: %s", edge, exc, extra={"edge": edge})


def _reject_record(msg: Msg, verdict: Rejected, envelope_seq: int | None = None) -> RejectRecord:
    return RejectRecord(msg.subject, verdict, bytes(msg.data), dict(msg.headers or {}), _stream_seq(msg), envelope_seq)


def _stream_seq(msg: Msg) -> int | None:
    try:
        return msg.metadata.sequence.stream
    except (ValueError, AttributeError, IndexError, nats.errors.Error):
        return None
