"""Throw-away PostgreSQL databases for tests and benchmarks.

The server is VIGIL_TEST_DATABASE_URL if set, else the local server (127.0.0.1:5432, database
`test`), else an embedded PostgreSQL started for the purpose. Each caller gets a fresh,
migrated database of its own, dropped again afterwards.
"""
from __future__ import annotations

import asyncio
import os
import secrets
import tempfile
from pathlib import Path

import asyncpg

from hub.db.migrate import migrate
from provisioning.embedded_pg import EmbeddedPostgres
from shared.process import free_port

DEFAULT_SERVER_DSN = "postgresql://127.0.0.1:5432/test"


class DatabaseUnavailable(Exception):
    """The configured test database server cannot be reached."""


async def reachable(dsn: str) -> bool:
    """True when a connection to `dsn` succeeds within a few seconds."""
    try:
        conn = await asyncpg.connect(dsn, timeout=3)
    except (OSError, asyncpg.PostgresError, asyncio.TimeoutError):
        return False
    await conn.close()
    return True


class ScratchServer:
    """A PostgreSQL server to create scratch databases on; embedded if nothing else is there."""

    def __init__(self) -> None:
        self.dsn = ""
        self._embedded: EmbeddedPostgres | None = None

    async def start(self) -> "ScratchServer":
        explicit = os.environ.get("VIGIL_TEST_DATABASE_URL")
        candidate = explicit or DEFAULT_SERVER_DSN
        if await reachable(candidate):
            self.dsn = candidate
        elif explicit:
            raise DatabaseUnavailable(f"VIGIL_TEST_DATABASE_URL={explicit} is not reachable")
        else:
            self._embedded = EmbeddedPostgres(Path(tempfile.mkdtemp(prefix="vigil-pg-")) / "data", free_port())
            await self._embedded.start()
            self.dsn = self._embedded.dsn()
        return self

    def stop(self) -> None:
        if self._embedded is not None:
            self._embedded.stop()

    async def create_database(self, prefix: str = "vigil_scratch") -> str:
        """A new, migrated database; returns its DSN."""
        name = f"{prefix}_{os.getpid()}_{secrets.token_hex(3)}"
        conn = await asyncpg.connect(self.dsn)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        dsn = f"{self.dsn.rpartition('/')[0]}/{name}"
        conn = await asyncpg.connect(dsn)
        try:
            await migrate(conn)
        finally:
            await conn.close()
        return dsn

    async def drop_database(self, dsn: str) -> None:
        name = dsn.rpartition("/")[2]
        conn = await asyncpg.connect(self.dsn)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()
