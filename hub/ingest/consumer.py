"""Ingest: JetStream segments → verify → PostgreSQL, acknowledged only after commit.

One worker per held (lane, partition) consumer. Each worker handles its messages strictly in
stream order: one batch at a time, committed in one transaction, then acked. Whenever a worker
(re)starts it resets its durable consumer to the ack floor, so messages a crashed hub had pulled
but not acknowledged come back first, in order, instead of after newer ones.
"""
from __future__ import annotations

import asyncio
import logging
import time

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

from hub.ingest.edge_keys import EdgeKeyCache
from hub.ingest.partitions import Unit
from hub.ingest.pull import PullStream
from hub.ingest.commit import RejectRecord, commit_batch
from hub.ingest.verify import Accepted, Rejected, verify_segment
from shared import subjects
from shared.backoff import Backoff, sleep_or_stop

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

EVENTS_DUPLICATE_WINDOW_S = 300.0
EVENTS_MAX_AGE_S = 7 * 24 * 3600.0
ACK_WAIT_S = 30.0


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

    def __init__(self, nc: NatsClient, pool: asyncpg.Pool, keys: EdgeKeyCache, *, batch: int = 512) -> None:
        self._nc = nc
        self._js = nc.jetstream()
        self._pool = pool
        self._keys = keys
        self._batch = batch
        self._workers: dict[Unit, tuple[asyncio.Event, asyncio.Task[None]]] = {}

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
                pull = PullStream(self._nc, subjects.EVENTS_STREAM, subjects.ingest_consumer(lane, partition), batch=self._batch)
                await pull.start()
                while not stop.is_set():
                    msgs = await pull.next_batch(wait_s=0.5)
                    if msgs:
                        await self.handle_batch(msgs)
                        backoff.reset()
            except Exception as exc:  # a worker must never die silently: log, back off, resume
                ERRORS.inc()
                delay = backoff.next_delay()
                expected = isinstance(exc, (nats.errors.Error, nats.js.errors.Error, asyncpg.PostgresError,
                                            asyncpg.InterfaceError, OSError, asyncio.TimeoutError))
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

    async def handle_batch(self, msgs: list[Msg]) -> None:
        """Verify, commit and acknowledge one batch of segment messages, in their order.

        A batch PostgreSQL refuses for its data (not for being unreachable) is retried one
        message at a time, and a message refused on its own is recorded as `unstorable` and
        terminated: one signed but unstorable segment must not block its partition forever.
        """
        started = time.perf_counter()
        edges = {parsed[0] for m in msgs if (parsed := subjects.parse_stored_subject(m.subject))}
        keys = await self._keys.keys_for(edges)
        accepted: list[Accepted] = []
        rejects: list[RejectRecord] = []
        verdicts: list[bool] = []
        for msg in msgs:
            verdict = verify_segment(msg.subject, msg.headers, msg.data, keys)
            if isinstance(verdict, Rejected):
                rejects.append(RejectRecord(msg.subject, verdict, len(msg.data), _stream_seq(msg)))
                verdicts.append(False)
            else:
                accepted.append(verdict)
                verdicts.append(True)
        try:
            async with self._pool.acquire() as conn:
                inserted = await commit_batch(conn, accepted, rejects)
        except (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError) as exc:
            if len(msgs) > 1:
                for msg in msgs:
                    await self.handle_batch([msg])
                return
            await self._refuse_unstorable(msgs[0], exc)
            return
        # Committed: only now may JetStream forget these messages.
        for msg, ok in zip(msgs, verdicts):
            if ok:
                await msg.ack()
            else:
                await msg.term()
        total = sum(len(a.envelopes) for a in accepted)
        INGESTED.inc(inserted)
        DUPLICATES.inc(total - inserted)
        for r in rejects:
            self._count_reject(r)
        BATCH_SECONDS.observe(time.perf_counter() - started)

    async def _refuse_unstorable(self, msg: Msg, exc: Exception) -> None:
        headers = msg.headers or {}
        record = RejectRecord(
            msg.subject,
            Rejected("unstorable", f"{type(exc).__name__}: {exc}", headers.get(subjects.H_EDGE),
                     headers.get(subjects.H_KEY), headers.get(subjects.H_SEQ)),
            len(msg.data), _stream_seq(msg),
        )
        async with self._pool.acquire() as conn:
            await commit_batch(conn, [], [record])
        await msg.term()
        self._count_reject(record)

    @staticmethod
    def _count_reject(r: RejectRecord) -> None:
        REJECTS.labels(r.rejected.reason).inc()
        log.warning("rejected segment: %s (%s)", r.rejected.reason, r.rejected.detail,
                    extra={"edge": r.rejected.edge_header, "subject": r.subject, "seq": r.rejected.seq_range})


def _stream_seq(msg: Msg) -> int | None:
    try:
        return msg.metadata.sequence.stream
    except (ValueError, AttributeError, IndexError, nats.errors.Error):
        return None
