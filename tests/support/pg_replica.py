"""A PostgreSQL primary with a synchronous streaming standby, for the failover scenario (CH-02).

Both run from the embedded server's binaries on free ports. The standby is a `pg_basebackup -R`
copy that streams the primary's WAL; with `synchronous_standby_names = '*'` the primary answers a
COMMIT only once the standby has the commit record, so a row the hub committed (and acked to
JetStream) is on the standby when the primary's host dies.
"""
from __future__ import annotations

import os
import signal
from pathlib import Path

import asyncpg

from provisioning.embedded_pg import EmbeddedPostgres
from shared.process import free_port
from support.waiting import wait_until

HOST = "127.0.0.1"


class ReplicatedPostgres:
    """`primary` and `standby`; `dsn(db)` names both for libpq-style failover."""

    def __init__(self, root: Path) -> None:
        self.primary = EmbeddedPostgres(root / "primary" / "data", free_port(), HOST)
        self.standby = EmbeddedPostgres(root / "standby" / "data", free_port(), HOST)

    def dsn(self, database: str) -> str:
        """Both servers, the writable one wanted: the hub's failover URL (docs/operations.md)."""
        return (f"postgresql://postgres@{HOST}:{self.primary.port},{HOST}:{self.standby.port}/{database}"
                "?target_session_attrs=read-write")

    async def start(self) -> None:
        """Start the primary, copy it into a standby, start that, and make replication synchronous."""
        await self.primary.start()
        self.standby.run_tool("pg_basebackup", "-h", HOST, "-p", str(self.primary.port), "-U", "postgres",
                              "-D", str(self.standby.data_dir), "-X", "stream", "-c", "fast", "-R")
        await self.standby.start()
        conn = await asyncpg.connect(self.primary.dsn())
        try:
            await conn.execute("ALTER SYSTEM SET synchronous_standby_names TO '*'")
            await conn.execute("SELECT pg_reload_conf()")

            async def synchronous() -> bool:
                return await conn.fetchval("SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync'") == 1

            await wait_until(synchronous, timeout=30, what="the standby streaming synchronously")
        finally:
            await conn.close()

    def crash_primary(self) -> None:
        """The primary's host gone: SIGKILL the postmaster and every backend at once."""
        process = self.primary.process
        assert process is not None and process.proc is not None
        os.killpg(process.proc.pid, signal.SIGKILL)  # its own session: see ManagedProcess.start
        process.proc.wait()

    async def promote(self) -> None:
        """What the operator (or a failover manager) does: the standby takes over, writable."""
        conn = await asyncpg.connect(self.standby.dsn())
        try:
            assert await conn.fetchval("SELECT pg_promote(true, 60)"), "the standby did not promote within 60 s"
        finally:
            await conn.close()

    def stop(self) -> None:
        """Both servers down (a crashed primary is already)."""
        for server in (self.standby, self.primary):
            if server.process is not None and server.process.running():
                server.stop()
