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

from edge.journal_pressure import (
    ALARM_PRIORITIES,
    DiskPolicy,
    PRIORITIES,
    REFUSING,
    SAMPLE_KIND,
    STATE_LEVEL,
    Evicted,
    PressureTracker,
    RefusalTally,
    free_floor,
    kind_label,
    next_disk_cap,
    read_disk,
)
from shared.bodies.core import JOURNAL_REFUSED_KIND, JournalRefused
from shared.clock import SYSTEM_CLOCK, Clock
from shared.envelope import Envelope, JournalEpoch, Priority, encode_envelope, new_envelope
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
_CANDIDATE = "SELECT seq, size, lane, kind, priority, forwarded_at IS NOT NULL FROM journal WHERE "
# The retention order (edge/journal_pressure.py), each tier oldest first: telemetry samples
# (the partial index journal_samples; the kind is a constant, so the index applies), forwarded
# rows, unforwarded LOW, unforwarded NORMAL. Unforwarded CRITICAL/HIGH rows are never candidates.
SQL_EVICTION_TIERS = (
    _CANDIDATE + f"kind = '{SAMPLE_KIND}' AND (forwarded_at IS NOT NULL OR priority NOT IN "
    f"({', '.join(repr(p) for p in ALARM_PRIORITIES)})) ORDER BY seq LIMIT ?",
    _CANDIDATE + "forwarded_at IS NOT NULL ORDER BY seq LIMIT ?",
    _CANDIDATE + "forwarded_at IS NULL AND priority = 'LOW' ORDER BY seq LIMIT ?",
    _CANDIDATE + "forwarded_at IS NULL AND priority = 'NORMAL' ORDER BY seq LIMIT ?",
)
# Refusals not yet reported to the hub (edge.journal_pressure.RefusalTally.to_meta), kept in the
# same transaction as the refusal, cleared in the one that journals the report.
_REFUSAL_KEYS = (*(f"refused_{p}" for p in PRIORITIES), "refused_first_us", "refused_last_us")
SQL_READ_REFUSALS = f"SELECT key, value FROM journal_meta WHERE key IN ({', '.join(repr(k) for k in _REFUSAL_KEYS)})"
SQL_CLEAR_REFUSALS = f"DELETE FROM journal_meta WHERE key IN ({', '.join(repr(k) for k in _REFUSAL_KEYS)})"
SQL_ADD_REFUSALS = (
    "INSERT INTO journal_meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = value + excluded.value"
)
SQL_FIRST_REFUSAL = (
    "INSERT INTO journal_meta (key, value) VALUES ('refused_first_us', ?) "
    "ON CONFLICT (key) DO UPDATE SET value = min(value, excluded.value)"
)
SQL_LAST_REFUSAL = (
    "INSERT INTO journal_meta (key, value) VALUES ('refused_last_us', ?) "
    "ON CONFLICT (key) DO UPDATE SET value = max(value, excluded.value)"
)
SQL_DELETE_SEQ = "DELETE FROM journal WHERE seq = ?"
SQL_READ_EPOCH = "SELECT id, start_seq FROM journal_epoch"
SQL_NEW_EPOCH = "INSERT INTO journal_epoch (id, start_seq, created_at) VALUES (?, ?, ?)"
SQL_FIRST_UNFORWARDED = "SELECT min(seq) FROM journal WHERE forwarded_at IS NULL"
# The partial index journal_unforwarded (lane, seq) answers this without a scan.
SQL_OLDEST_UNFORWARDED = "SELECT ts FROM journal WHERE lane = ? AND forwarded_at IS NULL ORDER BY seq LIMIT 1"
# The local console's alarm list: alarm-lane rows (CRITICAL/HIGH) and rows of the extra kinds
# asked for (its own acks), newest first; walks the primary key backwards, so it stops at `limit`.
SQL_RECENT_ALARMS = (
    "SELECT seq, envelope, forwarded_at FROM journal WHERE lane = 'alarm' OR kind IN (SELECT value FROM json_each(?)) "
    "ORDER BY seq DESC LIMIT ?"
)
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
EVICTED = Counter("vigil_journal_evicted_total", "Rows evicted to respect the size cap or the free-space floor, "
                  "by kind (its first two dotted parts), priority and whether the hub had it",
                  ["kind", "priority", "state"])
PRESSURE = Gauge("vigil_journal_pressure", "0 ok, 1 evicting unforwarded rows, 2 refusing appends")
FS_FREE = Gauge("vigil_journal_fs_free_bytes", "Free bytes on the journal's filesystem at the last check")
UNFORWARDED = Gauge("vigil_journal_unforwarded", "Rows waiting to be forwarded", ["lane"])
JOURNAL_BYTES = Gauge("vigil_journal_bytes", "Envelope bytes held in the journal")

_GROUP_MAX = 2000  # appends committed together at most
REPORT_SOURCE = "journal"  # the `source` of the journal's own events


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
        disk: DiskPolicy | None = None,
        folder: Path | None = None,
    ) -> None:
        self._w = writer
        self._r = reader
        self._m = marker
        self.max_bytes = max_bytes
        self.retention_s = retention_s
        self._clock = clock
        self._disk = disk or DiskPolicy()
        self._folder = str(folder or ".")
        self._pressure = PressureTracker(clock, self._disk.hold_s)
        self._disk_checked_at: float | None = None  # monotonic; None: check at the next commit
        self._since_check = 0  # envelope bytes appended since
        self._disk_limit: int | None = None
        self._report_queued = False
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
        cls, path: Path, *, max_bytes: int, retention_s: float, clock: Clock = SYSTEM_CLOCK,
        disk: DiskPolicy | None = None,
    ) -> "Journal":
        """Open (creating if needed) the journal at `path`; fails with JournalError, naming the
        folder, when it cannot be written. `disk`: the free space to leave its filesystem."""
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
        journal = cls(writer, reader, marker, max_bytes=max_bytes, retention_s=retention_s, clock=clock,
                      disk=disk, folder=folder)
        await journal._load_counters()
        await journal._load_epoch()
        # Refusals a previous run could not report yet: reported as soon as there is room.
        journal._maybe_report_refusals()
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
        async with self._r.execute(SQL_READ_REFUSALS) as cur:
            self._pressure.unreported = RefusalTally.from_meta(dict(await cur.fetchall()))
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
        PRESSURE.set(STATE_LEVEL[self._pressure.refresh()])

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
        return await self._enqueue(envelope)

    def _enqueue(self, envelope: Envelope) -> "asyncio.Future[int]":
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._pending.append((envelope, fut))
        if self._writer_task is None or self._writer_task.done():
            self._writer_task = asyncio.create_task(self._write_pending(), name="journal-writer")
        return fut

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
            group = self._fresh_reports(group)
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
            self._count_room(room, len(keep))
            APPENDS.inc(len(keep))
            for (env, fut), row in zip(group, rows):
                if fut.done():
                    continue
                if row[0] in room.refused:
                    fut.set_exception(
                        JournalFull(
                            f"journal full ({self.total_bytes} of {self._pressure.cap} bytes, all unforwarded "
                            f"CRITICAL/HIGH); refused {row[3]} {row[1]}"
                        )
                    )
                else:
                    fut.set_result(row[0])
            lanes = {r[5] for r in keep}
        for lane in lanes:
            async with self._lane_cond[lane]:
                self._lane_cond[lane].notify_all()
        if not room.refused:
            self._maybe_report_refusals()

    def _count_room(self, room: "_Room", committed: int) -> None:
        """Metrics, logs and the pressure state for one committed group."""
        if room.reported:
            self._pressure.reported()
        for row in room.evicted:
            EVICTED.labels(kind_label(row.kind), row.priority, "forwarded" if row.forwarded else "unforwarded").inc()
        REFUSED.inc(len(room.refused_priorities))
        if room.reserve_used:
            log.warning("disk below the journal's free-space floor: %d bytes of alarms kept in the floor's reserve",
                        room.reserve_used, extra={"reserve_used": room.reserve_used})
        lost = [row for row in room.evicted if not row.forwarded]
        if lost:
            kinds = sorted({kind_label(row.kind) for row in lost})
            # Per group at debug: under pressure every append evicts; the state change below is
            # the loud line, the metric the count.
            log.debug("journal cap reached: evicted %d rows before they reached the hub (%s)", len(lost),
                      ", ".join(kinds), extra={"evicted": len(lost), "cap_bytes": self._pressure.cap})
        before = self._pressure.state
        self._pressure.record(room.evicted, room.refused_priorities, committed)
        self._publish_gauges()
        if self._pressure.state != before:
            log.warning("journal pressure: %s (was %s)", self._pressure.state, before,
                        extra={"state": self._pressure.state, "cap_bytes": self._pressure.cap})

    def _fresh_reports(self, group: list[tuple[Envelope, asyncio.Future[int]]]
                       ) -> list[tuple[Envelope, asyncio.Future[int]]]:
        """The group with a queued refusal report rewritten from the tally as it is now: refusals
        only happen under the write lock, so the committed report and the cleared tally agree."""
        out = []
        for env, fut in group:
            if env.kind == JOURNAL_REFUSED_KIND and env.source == REPORT_SOURCE and self._pressure.unreported.count:
                body = msgspec.Raw(msgspec.json.encode(self._report_body()))
                env = msgspec.structs.replace(env, ts=self._clock.now(), body=body)
            out.append((env, fut))
        return out

    def _report_body(self) -> JournalRefused:
        tally = self._pressure.unreported
        now = self._clock.now()
        return JournalRefused(refused=dict(tally.by_priority), first_at=tally.first_at or now,
                              last_at=tally.last_at or now, cap_bytes=self._pressure.cap or self.max_bytes,
                              low_disk=self._pressure.low_disk)

    def _maybe_report_refusals(self) -> None:
        """Once room returned after refusals, journal one HIGH `edge.journal.refused` event with
        their counts (the forwarder takes it to the hub when the link is up). A report that is
        refused itself stays pending and is tried again when room returns."""
        if (self._closed or self._report_queued or not self._pressure.unreported.count
                or self._pressure.refresh() == REFUSING):
            return
        self._report_queued = True
        env = new_envelope(JOURNAL_REFUSED_KIND, REPORT_SOURCE, Priority.HIGH, self._report_body(), clock=self._clock)
        self._enqueue(env).add_done_callback(self._report_done)

    def _report_done(self, fut: "asyncio.Future[int]") -> None:
        self._report_queued = False
        if fut.cancelled():
            return
        exc = fut.exception()
        if exc is not None:
            log.warning("the journal's refusal report is not journaled yet (%s); trying again when room returns", exc)
        else:
            log.warning("journaled the journal's refusal report as seq %d", fut.result(), extra={"seq": fut.result()})

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
        """Writer thread: make room under the cap, insert the rows that fit, keep the refusals to
        report, commit (fsync)."""
        conn.execute("BEGIN IMMEDIATE")
        try:
            incoming = sum(r[7] for r in rows)
            room = self._make_room(conn, incoming, rows, self._cap(conn, incoming))
            keep = [r for r in rows if r[0] not in room.refused]
            conn.executemany(SQL_INSERT, keep)
            if room.freed and keep:
                # Evicted rows may include the newest seq; remember it so seqs never repeat.
                conn.execute(SQL_SAVE_LAST_SEQ, (keep[-1][0],))
            # The report first: it carries every refusal before this group; this group's own
            # (rows queued after the report) are kept for the next one.
            if any(r[3] == JOURNAL_REFUSED_KIND for r in keep):
                conn.execute(SQL_CLEAR_REFUSALS)
                room.reported = True
            if room.refused_priorities:
                now_us = int(self._clock.now().timestamp() * 1_000_000)
                for priority in set(room.refused_priorities):
                    conn.execute(SQL_ADD_REFUSALS, (f"refused_{priority}", room.refused_priorities.count(priority)))
                conn.execute(SQL_FIRST_REFUSAL, (now_us,))
                conn.execute(SQL_LAST_REFUSAL, (now_us,))
            conn.execute("COMMIT")
            if self._pressure.low_disk:
                # Below the floor the WAL's growth (up to ~4 MiB between automatic checkpoints) is
                # what eats the alarms' reserve: fold it into the file's free pages now.
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except BaseException:
            # A COMMIT that failed for a full disk was rolled back by SQLite already; a second
            # ROLLBACK would raise and hide why.
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return room

    def _cap(self, conn: sqlite3.Connection, incoming: int) -> int:
        """Writer thread: the envelope bytes the journal may hold now: its byte cap, or less while
        its filesystem is below the free-space floor. The filesystem is read again after
        `check_s` or `check_bytes` appended, whichever comes first (not on every append)."""
        policy = self._disk
        if policy.enabled:
            self._since_check += incoming
            now = self._clock.monotonic()
            if (self._disk_checked_at is None or now - self._disk_checked_at >= policy.check_s
                    or self._since_check >= policy.check_bytes):
                (page_size,), (page_count,), (freelist,) = (
                    conn.execute(f"PRAGMA {p}").fetchone() for p in ("page_size", "page_count", "freelist_count"))
                try:
                    reading = read_disk(policy.statvfs, self._folder, page_size, page_count, freelist)
                except OSError as exc:  # keep the last reading: a failed look must not stop appends
                    log.error("cannot read the journal's filesystem (%s); keeping the last reading", exc)
                else:
                    floor = free_floor(policy.min_free_bytes, policy.min_free_percent, reading.fs_size)
                    self._disk_limit = next_disk_cap(self._disk_limit, self._pressure.disk, reading, floor,
                                                     self.total_bytes)
                    self._pressure.disk, self._pressure.floor = reading, floor
                    self._pressure.low_disk = reading.fs_free < floor
                    FS_FREE.set(reading.fs_free)
                self._disk_checked_at, self._since_check = now, 0
        cap = self.max_bytes if self._disk_limit is None else min(self.max_bytes, self._disk_limit)
        self._pressure.cap = cap
        return cap

    def _make_room(self, conn: sqlite3.Connection, incoming: int, rows: list[tuple], cap: int) -> "_Room":
        """Inside the write transaction: evict rows, in the retention order, until `incoming`
        bytes fit under `cap`; refuse the newest rows when only unforwarded alarms are left."""
        room = _Room()
        need = self.total_bytes + incoming - cap
        for sql in SQL_EVICTION_TIERS:
            while need > 0:
                candidates = conn.execute(sql, (256,)).fetchall()
                if not candidates:
                    break
                for seq, size, lane, kind, priority, forwarded in candidates:
                    if need <= 0:
                        break
                    conn.execute(SQL_DELETE_SEQ, (seq,))
                    room.freed += size
                    need -= size
                    room.evicted.append(Evicted(kind, priority, bool(forwarded)))
                    if not forwarded:
                        room.evicted_unforwarded[lane] = room.evicted_unforwarded.get(lane, 0) + 1
        if need > 0:
            # Only unforwarded CRITICAL/HIGH rows are left: refuse new rows rather than drop an
            # alarm that is already stored. The kept rows are a prefix of the group, so the kept
            # seqs stay gap-free. While the filesystem (not the byte cap) binds, an alarm that no
            # longer fits the cap may still go into the floor's reserve, and so may a row queued
            # ahead of one in the same group (the prefix rule would refuse the alarm with it).
            fits = incoming - need
            reserve = self._alarm_reserve()
            last_alarm = max((i for i, row in enumerate(rows)
                              if row[4] in ALARM_PRIORITIES or row[3] == JOURNAL_REFUSED_KIND), default=-1)
            refusing = False
            for i, row in enumerate(rows):
                if not refusing and row[7] <= fits:
                    fits -= row[7]
                    continue
                if not refusing and i <= last_alarm and row[7] <= reserve:
                    reserve -= row[7]
                    room.reserve_used += row[7]
                    continue
                refusing = True
                room.refused.add(row[0])
                if row[3] == JOURNAL_REFUSED_KIND:
                    continue  # the report of refusals is no refusal itself: it waits for room
                room.refused_priorities.append(row[4])
                log.critical(
                    "JOURNAL FULL: refused %s event %s; %d bytes of unforwarded alarms fill the %d-byte cap",
                    row[4], row[1], self.total_bytes, cap, extra={"event_id": row[1]},
                )
        return room

    def _alarm_reserve(self) -> int:
        """Writer thread: the bytes an alarm may still take below the free-space floor. When
        someone else's files took the disk below the floor, evicting cannot give the space back
        (no VACUUM), and a cap of the journal's own pages would refuse a panel alarm with disk
        left; so CRITICAL/HIGH rows may use the lower half of the floor. 0 while the byte cap,
        not the filesystem, is what binds."""
        reading, floor = self._pressure.disk, self._pressure.floor
        if self._disk_limit is None or self._disk_limit >= self.max_bytes or reading is None:
            return 0
        return max(0, reading.fs_free - self._since_check - floor // 2)

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

    async def recent_alarms(self, limit: int, also_kinds: tuple[str, ...] = ()) -> list[tuple[int, bytes, bool]]:
        """The newest `limit` CRITICAL/HIGH rows still held (and rows of `also_kinds`), newest
        first, as (seq, envelope bytes, forwarded): what the local console lists while the hub is away."""
        async with self._r.execute(SQL_RECENT_ALARMS, (msgspec.json.encode(list(also_kinds)).decode(), limit)) as cur:
            return [(seq, bytes(envelope), forwarded_at is not None) for seq, envelope, forwarded_at in await cur.fetchall()]

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
        if changed:
            # Forwarded rows can be evicted: a journal that refused appends has room again.
            self._pressure.room_returned()
            self._maybe_report_refusals()
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

    def pressure_status(self) -> dict[str, object]:
        """The local page's `disk_pressure` block: state (ok, evicting, refusing) and since when,
        the filesystem, the cap in force, refusals (those not yet reported to the hub with their
        first and last time) and evictions by kind and priority."""
        status = self._pressure.status()
        PRESSURE.set(STATE_LEVEL[str(status["state"])])
        return status

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
    evicted: list[Evicted] = field(default_factory=list)
    refused_priorities: list[str] = field(default_factory=list)  # of the refusals counted (not the report's)
    reserve_used: int = 0  # alarm bytes taken into the free-space floor's reserve (Journal._alarm_reserve)
    reported: bool = False  # the refusal report was committed, and the tally cleared with it
