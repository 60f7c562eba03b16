"""Shared fixtures: a fresh PostgreSQL database per test run, and NATS topologies on free ports."""
from __future__ import annotations

import asyncio
from pathlib import Path
from typing import AsyncIterator, Iterator

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from hub.api.server import build_http
from hub.secret_box import SecretBox
from provisioning.scratch_db import DatabaseUnavailable, ScratchServer
from shared import nats_server
from support.api import HeaderAuthenticator, start_client
from support.topology import Topology

# The NATS password hashes this process makes (every topology's users, ~12 a topology) at bcrypt's
# lowest cost: ~1.5 ms each instead of ~75 ms, and as cheap for nats-server to check at each
# connect. Real bcrypt all the same; the hub and agent processes keep their own cost.
nats_server.BCRYPT_ROUNDS = 4

# Every table but the migrations' record and the outbox counter (reset to 0 instead); the events
# table's partitions are emptied through it.
SQL_TABLES_TO_EMPTY = """
SELECT tablename FROM pg_tables WHERE schemaname = 'public'
AND tablename NOT IN ('schema_migrations', 'outbox_counter') AND tablename NOT LIKE 'events_%'
"""
# Each identity column starts again from its start (what TRUNCATE … RESTART IDENTITY did).
SQL_RESTART_SEQUENCES = """
SELECT setval(s.seqrelid, s.seqstart, false) FROM pg_sequence s
JOIN pg_class c ON c.oid = s.seqrelid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'
"""


@pytest.fixture(scope="session")
def db_dsn() -> Iterator[str]:
    """A migrated database of its own for this test run (see provisioning.scratch_db), dropped at
    the end."""
    try:
        server = asyncio.run(ScratchServer().start())
    except DatabaseUnavailable as exc:
        pytest.exit(str(exc), returncode=2)
    dsn = asyncio.run(server.create_database("vigil_test"))
    try:
        yield dsn
    finally:
        asyncio.run(server.drop_database(dsn))
        server.stop()


@pytest.fixture
async def db(db_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on the test database, every table emptied before each test."""
    pool = await asyncpg.create_pool(db_dsn, min_size=1, max_size=4)
    tables = await pool.fetch(SQL_TABLES_TO_EMPTY)
    async with pool.acquire() as conn, conn.transaction():
        # Replica mode: no trigger fires, so neither the foreign keys' order nor the audit log's
        # refusal to be deleted from stands in the way. DELETE, not TRUNCATE: on tables of a few
        # rows it takes milliseconds where TRUNCATE's new files took ~0.3 s a test.
        await conn.execute("SET LOCAL session_replication_role = replica")
        await conn.execute("; ".join(f'DELETE FROM "{r["tablename"]}"' for r in tables))
        await conn.execute(SQL_RESTART_SEQUENCES)
        await conn.execute("UPDATE outbox_counter SET value = 0")
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture
async def topology(tmp_path: Path, db: asyncpg.Pool, db_dsn: str) -> AsyncIterator[Topology]:
    """Hub NATS ← WAN proxy ← edge leaf NATS, on free ports, with the test database."""
    async with Topology(tmp_path, db_dsn, db) as topo:
        yield topo


@pytest.fixture
async def api_client(db: asyncpg.Pool) -> AsyncIterator[TestClient]:
    """The hub's HTTP app on the test database, callers named by support.api.as_role headers."""
    client = await start_client(build_http(db, HeaderAuthenticator(), [], SecretBox.generate()))
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
def box(tmp_path: Path) -> SecretBox:
    """The hub's secret box, in a file as the hub keeps it."""
    return SecretBox.from_file(tmp_path / "secret.key")


@pytest.fixture
async def boxed_client(db: asyncpg.Pool, box: SecretBox) -> AsyncIterator[TestClient]:
    """The hub's HTTP app with `box`, callers named by support.api.as_role headers."""
    c = await start_client(build_http(db, HeaderAuthenticator(), [], box))
    try:
        yield c
    finally:
        await c.close()
