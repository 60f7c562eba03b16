"""The edge's store-and-forward journal (SQLite in WAL mode, fsync'd on every commit).

Every observation is written here before anything tries to forward it. `append` returns only when
the row is durable; concurrent appends share one commit (group commit), so many producers pay for
one fsync. The forwarder reads unforwarded rows per lane in seq order and marks them forwarded
once the hub's JetStream has acknowledged them.
"""
from __future__ import annotations

import asyncio
import logging
import os
import secrets
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Callable, TypeVar

import aiosqlite
import msgspec
from prometheus_client import Counter, Gauge

from shared.clock import SYSTEM_CLOCK, Clock
from shared.envelope import Envelope, JournalEpoch, Priority, encode_envelope
from shared.subjects import LANE_ALARM, LANE_EVT, LANES

log = logging.getLogger("vigil.edge.journal")

R = TypeVar("R")

SCHEMA = resources.files("edge").joinpath("journal.sql").read_text()

SQL_INSERT = (
    "INSERT INTO journal (seq, id, ts, kind, priority, lane, envelope, size) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
SQL_READ_UNFORWARDED = (
    "SELECT seq, envelope, size FROM journal "
    "WHERE lane = ? AND forwarded_at IS NULL AND seq > ? ORDER BY seq LIMIT ?"
)
SQL_MARK_FORWARDED = (
    "UPDATE journal SET forwarded_at = ? WHERE lane = ? AND seq BETWEEN ? AND ? AND forwarded_at IS NULL"
)
SQL_SAVE_LAST_SEQ = (
    "INSERT INTO journal_meta (key, value) VALUES ('last_seq', ?) "
    "ON CONFLICT (key) DO UPDATE SET value = max(value, excluded.value)"
)
SQL_PRUNE = "DELETE FROM journal WHERE forwarded_at IS NOT NULL AND forwarded_at < ?"
SQL_EVICTION_CANDIDATES = {
    # Oldest forwarded rows go first; then unforwarded LOW, then NORMAL. CRITICAL and HIGH
    # unforwarded rows are never candidates.
    "forwarded": "SELECT seq, size, lane FROM journal WHERE forwarded_at IS NOT NULL ORDER BY seq LIMIT ?",
    "unforwarded LOW": "SELECT seq, size, lane FROM journal WHERE forwarded_at IS NULL AND priority = 'LOW' ORDER BY seq LIMIT ?",
    "unforwarded NORMAL": "SELECT seq, size, lane FROM journal WHERE forwarded_at IS NULL AND priority = 'NORMAL' ORDER BY seq LIMIT ?",
}
SQL_DELETE_SEQ = "DELETE FROM journal WHERE seq = ?"
SQL_READ_EPOCH = "SELECT id, start_seq FROM journal_epoch"
SQL_NEW_EPOCH = "INSERT INTO journal_epoch (id, start_seq, created_at) VALUES (?, ?, ?)"
SQL_FIRST_UNFORWARDED = "SELECT min(seq) FROM journal WHERE forwarded_at IS NULL"
# The partial index journal_unforwarded (lane, seq) answers this without a scan.
SQL_OLDEST_UNFORWARDED = "SELECT ts FROM journal WHERE lane = ? AND forwarded_at IS NULL ORDER BY seq LIMIT 1"
SQL_NEXT_RUN = (
    "INSERT INTO journal_meta (key, value) VALUES ('agent_runs', 1) "
    "ON CONFLICT (key) DO UPDATE SET value = value + 1 RETURNING value"
)
SQL_GET_CURSOR = "SELECT value FROM link_cursors WHERE name = ?"
SQL_CLAIM_COMMAND = "INSERT INTO commands_seen (id, received_at) VALUES (?, ?) ON CONFLICT (id) DO NOTHING"
SQL_HAS_EVENT = "SELECT 1 FROM journal WHERE id = ?"
SQL_SET_CURSOR = (
    "INSERT INTO link_cursors (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value"
)

APPENDS = Counter("vigil_journal_appends_total", "Envelopes durably appended to the journal")
REFUSED = Counter("vigil_journal_refused_total", "Appends refused because the journal is full of unforwarded alarms")
EVICTED = Counter("vigil_journal_evicted_total", "Rows evicted to respect the size cap", ["state"])
UNFORWARDED = Gauge("vigil_journal_unforwarded", "Rows waiting to be forwarded", ["lane"])
JOURNAL_BYTES = Gauge("vigil_journal_bytes", "Envelope bytes held in the journal")

_GROUP_MAX = 2000  # appends committed together at most


class JournalError(Exception):
    """The journal cannot be opened or written; the message says what to fix."""


class JournalFull(JournalError):
    """The size cap is reached and only unforwarded CRITICAL/HIGH rows are left to evict."""


class AlreadyJournaled(JournalError):
    """An envelope with this id is in the journal already (ids are unique): nothing was added."""


def _existing_ids(conn: sqlite3.Connection, ids: list[str]) -> list[str]:
    """Writer thread: which of `ids` the journal holds."""
    marks = ",".join("?" * len(ids))
    return [row[0] for row in conn.execute(f"SELECT id FROM journal WHERE id IN ({marks})", ids)]


@dataclass(frozen=True)
class JournalRow:
    """One unforwarded row, as the forwarder needs it."""

    seq: int
    envelope: bytes


def lane_of(priority: Priority) -> str:
    """Which forwarding lane an envelope of this priority travels on."""
    return LANE_ALARM if priority.is_alarm_lane else LANE_EVT


class Journal:
    """Durable, ordered, size-capped store of this edge's envelopes."""

    def __init__(
        self,
        writer: aiosqlite.Connection,
        reader: aiosqlite.Connection,
        marker: aiosqlite.Connection,
        *,
        max_bytes: int,
        retention_s: float,
        clock: Clock,
    ) -> None:
        self._w = writer
        self._r = reader
        self._m = marker
        self.max_bytes = max_bytes
        self.retention_s = retention_s
        self._clock = clock
        self._write_lock = asyncio.Lock()
        self._pending: list[tuple[Envelope, asyncio.Future[int]]] = []
        self._writer_task: asyncio.Task[None] | None = None
        self.last_seq = 0
        self.total_bytes = 0
        self.unforwarded = {lane: 0 for lane in LANES}
        self.lane_tail = {lane: 0 for lane in LANES}
        self._lane_cond = {lane: asyncio.Condition() for lane in LANES}
        self._closed = False
        self.epoch = JournalEpoch("", 0)  # read (or made) by open()

    @classmethod
    async def open(
        cls, path: Path, *, max_bytes: int, retention_s: float, clock: Clock = SYSTEM_CLOCK
    ) -> "Journal":
        """Open (creating if needed) the journal at `path`; fails with JournalError, naming the
        folder, when it cannot be written."""
        folder = path.parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
            probe = folder / f".write-probe-{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise JournalError(
                f"journal folder {folder} is not writable ({exc.strerror}); the edge cannot store "
                "observations. Fix its permissions or set VIGIL_EDGE_DATA_DIR to a writable folder."
            ) from None
        try:
            writer = await aiosqlite.connect(path, isolation_level=None)
            for pragma in ("journal_mode=WAL", "synchronous=FULL", "busy_timeout=5000"):
                await writer.execute(f"PRAGMA {pragma}")
            await writer.executescript(SCHEMA)
            reader = await aiosqlite.connect(path, isolation_level=None)
            await reader.execute("PRAGMA busy_timeout=5000")
            # Marks do not need their own fsync: a mark lost in a crash only re-sends rows the hub
            # drops as duplicates, and the next append's fsync of the WAL carries earlier marks
            # anyway. Without it, a mark per PubAck doubled the fsyncs appends waited behind.
            marker = await aiosqlite.connect(path, isolation_level=None)
            for pragma in ("synchronous=NORMAL", "busy_timeout=5000"):
                await marker.execute(f"PRAGMA {pragma}")
        except Exception as exc:  # sqlite3 raises several types for unusable files
            raise JournalError(f"cannot open journal {path}: {exc}") from None
        journal = cls(writer, reader, marker, max_bytes=max_bytes, retention_s=retention_s, clock=clock)
        await journal._load_counters()
        await journal._load_epoch()
        return journal

    async def _load_epoch(self) -> None:
        """Read the journal's epoch, making one for a new journal (or one that predates epochs:
        its epoch starts at its first unforwarded row, since what came before reached the hub
        under no epoch)."""
        async with self._w.execute(SQL_READ_EPOCH) as cur:
            row = await cur.fetchone()
        if row is None:
            async with self._w.execute(SQL_FIRST_UNFORWARDED) as cur:
                (first_unforwarded,) = await cur.fetchone()  # type: ignore[misc]
            row = (secrets.token_hex(16), first_unforwarded or self.last_seq + 1)
            await self._w.execute(SQL_NEW_EPOCH, (*row, self._clock.now().isoformat()))
            log.info("journal epoch %s starts at seq %d", row[0], row[1], extra={"epoch": row[0]})
        self.epoch = JournalEpoch(row[0], row[1])

    async def _load_counters(self) -> None:
        async with self._r.execute("SELECT coalesce(max(seq), 0), coalesce(sum(size), 0) FROM journal") as cur:
            max_seq, total = await cur.fetchone()  # type: ignore[misc]
        async with self._r.execute("SELECT value FROM journal_meta WHERE key = 'last_seq'") as cur:
            meta = await cur.fetchone()
        self.last_seq = max(max_seq, meta[0] if meta else 0)
        self.total_bytes = total
        async with self._r.execute(
            "SELECT lane, count(*), coalesce(max(seq), 0) FROM journal WHERE forwarded_at IS NULL GROUP BY lane"
        ) as cur:
            for lane, count, tail in await cur.fetchall():
                self.unforwarded[lane] = count
                self.lane_tail[lane] = tail
        self._publish_gauges()

    def _publish_gauges(self) -> None:
        for lane in LANES:
            UNFORWARDED.labels(lane).set(self.unforwarded[lane])
        JOURNAL_BYTES.set(self.total_bytes)

    async def close(self) -> None:
        """Finish pending appends and close the database."""
        if self._closed:
            return
        self._closed = True
        if self._writer_task is not None:
            await self._writer_task
        await self._w.close()
        await self._r.close()
        await self._m.close()

    async def append(self, envelope: Envelope) -> int:
        """Store `envelope` durably and return its seq (the journal assigns `seq`; the value in
        the argument is ignored). Raises JournalFull when the cap leaves no room."""
        if self._closed:
            raise JournalError("journal is closed")
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._pending.append((envelope, fut))
        if self._writer_task is None or self._writer_task.done():
            self._writer_task = asyncio.create_task(self._write_pending(), name="journal-writer")
        return await fut

    async def _write_pending(self) -> None:
        while self._pending:
            group, self._pending = self._pending[:_GROUP_MAX], self._pending[_GROUP_MAX:]
            try:
                await self._commit_group(group)
            except Exception as exc:  # the fsync or insert failed: every waiter must learn it
                log.exception("journal commit failed")
                error = exc if isinstance(exc, JournalError) else JournalError(f"journal write failed: {exc}")
                for _, fut in group:
                    if not fut.done():
                        fut.set_exception(error)

    async def _commit_group(self, group: list[tuple[Envelope, asyncio.Future[int]]]) -> None:
        async with self._write_lock:
            rows = self._stamp(group)
            try:
                room = await self._in_db_thread(self._commit_rows, rows)
            except sqlite3.IntegrityError:
                # One envelope whose id is journaled already must not cost the others of its
                # group (a concurrent alarm among them): refuse it alone, commit the rest.
                group = await self._refuse_duplicates(group, rows)
                rows = self._stamp(group)
                room = await self._in_db_thread(self._commit_rows, rows) if rows else _Room()
            keep = [r for r in rows if r[0] not in room.refused]
            # Refusals are always the newest rows of the group, so the kept seqs stay gap-free and
            # the refused seqs are simply handed out again.
            if keep:
                self.last_seq = keep[-1][0]
            self.total_bytes += sum(r[7] for r in keep) - room.freed
            for lane, n in room.evicted_unforwarded.items():
                self.unforwarded[lane] -= n
            for r in keep:
                self.unforwarded[r[5]] += 1
                self.lane_tail[r[5]] = r[0]
            self._publish_gauges()
            APPENDS.inc(len(keep))
            for (env, fut), row in zip(group, rows):
                if fut.done():
                    continue
                if row[0] in room.refused:
                    fut.set_exception(
                        JournalFull(
                            f"journal full ({self.total_bytes} of {self.max_bytes} bytes, all unforwarded "
                            f"CRITICAL/HIGH); refused {row[3]} {row[1]}"
                        )
                    )
                else:
                    fut.set_result(row[0])
            lanes = {r[5] for r in keep}
        for lane in lanes:
            async with self._lane_cond[lane]:
                self._lane_cond[lane].notify_all()

    def _stamp(self, group: list[tuple[Envelope, asyncio.Future[int]]]) -> list[tuple]:
        """The rows of a group, numbered from the next seq."""
        rows = []
        seq = self.last_seq
        for env, _ in group:
            seq += 1
            stamped = msgspec.structs.replace(env, seq=seq)
            data = encode_envelope(stamped)
            rows.append((seq, str(stamped.id), stamped.ts.isoformat(), stamped.kind, stamped.priority.value,
                         lane_of(stamped.priority), data, len(data)))
        return rows

    async def _refuse_duplicates(self, group: list[tuple[Envelope, asyncio.Future[int]]],
                                 rows: list[tuple]) -> list[tuple[Envelope, asyncio.Future[int]]]:
        """The group without the envelopes whose id is journaled already or came earlier in the
        group; their appends fail with AlreadyJournaled."""
        ids = [r[1] for r in rows]
        stored = set(await self._in_db_thread(_existing_ids, ids))
        seen: set[str] = set()
        kept = []
        for (env, fut), event_id in zip(group, ids):
            if event_id in stored or event_id in seen:
                log.warning("envelope %s (%s) is in the journal already; not added again", event_id, env.kind,
                            extra={"event_id": event_id})
                if not fut.done():
                    fut.set_exception(AlreadyJournaled(f"envelope {event_id} ({env.kind}) is in the journal already"))
                continue
            seen.add(event_id)
            kept.append((env, fut))
        return kept

    async def _in_db_thread(self, fn: Callable[..., R], *args: object) -> R:
        """Run `fn(sqlite3_connection, *args)` on the writer's thread in one hop.

        A group commit is several statements; issuing each through aiosqlite costs a thread
        round trip apiece, which tripled commit latency in the `append` benchmark. aiosqlite's
        `_execute` runs a callable on its worker thread, where the connection lives.
        """
        return await self._w._execute(fn, self._w._conn, *args)

    def _commit_rows(self, conn: sqlite3.Connection, rows: list[tuple]) -> "_Room":
        """Writer thread: make room under the cap, insert the rows that fit, commit (fsync)."""
        conn.execute("BEGIN IMMEDIATE")
        try:
            room = self._make_room(conn, sum(r[7] for r in rows), rows)
            keep = [r for r in rows if r[0] not in room.refused]
            conn.executemany(SQL_INSERT, keep)
            if room.freed and keep:
                # Evicted rows may include the newest seq; remember it so seqs never repeat.
                conn.execute(SQL_SAVE_LAST_SEQ, (keep[-1][0],))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return room

    def _make_room(self, conn: sqlite3.Connection, incoming: int, rows: list[tuple]) -> "_Room":
        """Inside the write transaction: evict rows until `incoming` bytes fit under the cap."""
        room = _Room()
        need = self.total_bytes + incoming - self.max_bytes
        for state, sql in SQL_EVICTION_CANDIDATES.items():
            while need > 0:
                candidates = conn.execute(sql, (256,)).fetchall()
                if not candidates:
                    break
                for seq, size, lane in candidates:
                    if need <= 0:
                        break
                    conn.execute(SQL_DELETE_SEQ, (seq,))
                    room.freed += size
                    need -= size
                    EVICTED.labels(state).inc()
                    if state != "forwarded":
                        room.evicted_unforwarded[lane] = room.evicted_unforwarded.get(lane, 0) + 1
                        log.error("journal cap reached: evicted %s row seq %d before it reached the hub", state, seq,
                                  extra={"seq": seq, "lane": lane})
        if need > 0:
            # Only unforwarded CRITICAL/HIGH rows are left: refuse new rows (newest first) rather
            # than drop an alarm that is already stored.
            for row in reversed(rows):
                if need <= 0:
                    break
                room.refused.add(row[0])
                need -= row[7]
                REFUSED.inc()
                log.critical(
                    "JOURNAL FULL: refused %s event %s; %d bytes of unforwarded alarms fill the %d-byte cap",
                    row[4], row[1], self.total_bytes, self.max_bytes, extra={"event_id": row[1]},
                )
        return room

    async def get_cursor(self, name: str) -> str | None:
        """The value last stored under `name` with `set_cursor`, or None."""
        async with self._write_lock:
            try:
                async with self._w.execute(SQL_GET_CURSOR, (name,)) as cur:
                    row = await cur.fetchone()
            except sqlite3.Error as exc:
                raise JournalError(f"cannot read cursor {name}: {exc}") from None
        return None if row is None else str(row[0])

    async def set_cursor(self, name: str, value: str) -> None:
        """Store `value` under `name` durably: a device link's place in its device's own log."""
        async with self._write_lock:
            try:
                await self._w.execute(SQL_SET_CURSOR, (name, value))
            except sqlite3.Error as exc:
                raise JournalError(f"cannot store cursor {name}: {exc}") from None

    async def claim_command(self, command_id: str) -> bool:
        """Record, durably, that this box takes hub command `command_id`; False when it was taken
        before (a redelivery: it must not run again)."""
        async with self._write_lock:
            try:
                cur = await self._w.execute(SQL_CLAIM_COMMAND, (command_id, self._clock.now().isoformat()))
                claimed = cur.rowcount == 1
                await cur.close()
            except sqlite3.Error as exc:
                raise JournalError(f"cannot record command {command_id}: {exc}") from None
        return claimed

    async def has_event(self, event_id: str) -> bool:
        """Whether an envelope with this id is in the journal (forwarded rows stay until pruned)."""
        async with self._r.execute(SQL_HAS_EVENT, (event_id,)) as cur:
            return await cur.fetchone() is not None

    async def next_run(self) -> int:
        """Count one more start of the agent, durably, and return its number: it orders this run's
        status reports after every earlier run's without trusting a clock."""
        async with self._write_lock:
            try:
                async with self._w.execute(SQL_NEXT_RUN) as cur:
                    (run,) = await cur.fetchone()  # type: ignore[misc]
            except sqlite3.Error as exc:
                raise JournalError(f"cannot count the agent's start: {exc}") from None
        return int(run)

    async def oldest_unforwarded(self, lane: str) -> datetime | None:
        """When the lane's oldest row still waiting for the hub was observed (its `ts`), or None
        when nothing waits."""
        async with self._r.execute(SQL_OLDEST_UNFORWARDED, (lane,)) as cur:
            row = await cur.fetchone()
        return None if row is None else datetime.fromisoformat(row[0])

    async def wait_for_rows(self, lane: str, after_seq: int) -> None:
        """Return once the lane holds an unforwarded row with seq > after_seq (it may already)."""
        cond = self._lane_cond[lane]
        async with cond:
            await cond.wait_for(lambda: self.lane_tail[lane] > after_seq and self.unforwarded[lane] > 0)

    async def read_unforwarded(self, lane: str, after_seq: int, limit: int, max_bytes: int) -> list[JournalRow]:
        """Up to `limit` unforwarded rows of `lane` after `after_seq`, in seq order, together at
        most `max_bytes` (always at least one row)."""
        async with self._r.execute(SQL_READ_UNFORWARDED, (lane, after_seq, limit)) as cur:
            fetched = await cur.fetchall()
        out: list[JournalRow] = []
        total = 0
        for seq, envelope, size in fetched:
            if out and total + size > max_bytes:
                break
            out.append(JournalRow(seq, bytes(envelope)))
            total += size
        return out

    async def mark_forwarded(self, lane: str, first_seq: int, last_seq: int) -> int:
        """Mark the lane's rows in [first_seq, last_seq] forwarded; returns how many changed."""
        cur = await self._m.execute(SQL_MARK_FORWARDED, (self._clock.now().timestamp(), lane, first_seq, last_seq))
        changed = cur.rowcount
        await cur.close()
        self.unforwarded[lane] -= changed
        self._publish_gauges()
        return changed

    async def prune(self) -> int:
        """Delete forwarded rows older than the retention period; returns how many."""
        cutoff = self._clock.now().timestamp() - self.retention_s
        async with self._write_lock:
            await self._w.execute("BEGIN IMMEDIATE")
            try:
                await self._w.execute(SQL_SAVE_LAST_SEQ, (self.last_seq,))
                async with self._w.execute(
                    "SELECT count(*), coalesce(sum(size), 0) FROM journal WHERE forwarded_at IS NOT NULL AND forwarded_at < ?",
                    (cutoff,),
                ) as cur:
                    count, size = await cur.fetchone()  # type: ignore[misc]
                await self._w.execute(SQL_PRUNE, (cutoff,))
                await self._w.execute("COMMIT")
            except BaseException:
                await self._w.execute("ROLLBACK")
                raise
        self.total_bytes -= size
        self._publish_gauges()
        return count

    def stats(self) -> dict[str, object]:
        """Counters for the local page and diagnostics."""
        return {
            "last_seq": self.last_seq,
            "epoch": self.epoch.id,
            "bytes": self.total_bytes,
            "max_bytes": self.max_bytes,
            "unforwarded": dict(self.unforwarded),
        }


@dataclass
class _Room:
    """What making room for a group of appends did."""

    freed: int = 0
    refused: set[int] = field(default_factory=set)
    evicted_unforwarded: dict[str, int] = field(default_factory=dict)
