"""An edge with panels on objects, feeding envelopes straight into the hub's commit_batch on a
real PostgreSQL: the lifecycle's tests without NATS in the way."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import asyncpg
import msgspec

from hub.ingest.commit import BatchResult, commit_batch
from hub.ingest.verify import Accepted
from shared.envelope import Envelope, JournalEpoch, Priority
from shared.ids import uuid7
from shared.signing import Signer

T0 = datetime(2026, 11, 22, 14, 0, tzinfo=timezone.utc)


class Site:
    """An edge with panels on objects, and a counter of seqs, for feeding commit_batch."""

    def __init__(self, pool: asyncpg.Pool, edge_id: str = "site-1") -> None:
        self.pool = pool
        self.edge_id = edge_id
        self.seq = 0
        self.epoch = JournalEpoch("a" * 32, 1)
        self.objects: dict[str, int] = {}
        self.panels: dict[str, int] = {}

    async def setup(self, panels: dict[str, str]) -> "Site":
        """`panels` maps panel source id → object name."""
        signer = Signer.generate()
        await self.pool.execute("INSERT INTO edges (edge_id, public_key, key_id) VALUES ($1, $2, $3)",
                                self.edge_id, signer.public_raw, signer.key_id)
        for source, obj in panels.items():
            if obj not in self.objects:
                self.objects[obj] = await self.pool.fetchval("INSERT INTO objects (name) VALUES ($1) RETURNING id", obj)
            self.panels[source] = await self.pool.fetchval(
                "INSERT INTO panels (object_id, edge_id, source) VALUES ($1, $2, $3) RETURNING id",
                self.objects[obj], self.edge_id, source)
        return self

    def env(self, kind: str, body: dict[str, Any], ts: datetime, priority: Priority = Priority.HIGH,
            source: str = "panel-1", seq: int | None = None) -> Envelope:
        if seq is None:
            self.seq += 1
            seq = self.seq
        return Envelope(id=uuid7(), seq=seq, ts=ts, kind=kind, source=source, priority=priority,
                        body=msgspec.Raw(msgspec.json.encode(body)))

    def new_journal(self, epoch_id: str) -> None:
        """The box's journal was lost: a new epoch, numbering from seq 1 again."""
        self.epoch = JournalEpoch(epoch_id, 1)
        self.seq = 0

    async def ingest(self, *envs: Envelope, now: datetime | None = None) -> int:
        """Commit the envelopes as the hub would receive them (by default the moment the newest
        was observed); returns how many were stored."""
        return (await self.commit(*envs, now=now)).stored

    async def commit(self, *envs: Envelope, now: datetime | None = None) -> BatchResult:
        by_lane: dict[str, list[Envelope]] = {"evt": [], "alarm": []}
        for e in envs:
            by_lane["alarm" if e.priority.is_alarm_lane else "evt"].append(e)
        accepted = [Accepted(self.edge_id, lane, self.epoch, es) for lane, es in by_lane.items() if es]
        async with self.pool.acquire() as conn:
            return await commit_batch(conn, accepted, [], now or max(e.ts for e in envs))
