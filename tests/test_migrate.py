"""hub.db.migrate: ordered, recorded, applied once even by concurrent hubs, tamper-evident."""
from __future__ import annotations

import asyncio

import asyncpg
import pytest

from hub.db import migrate as migrate_mod
from hub.db.migrate import Migration, MigrationError, load_migrations, migrate
from provisioning.scratch_db import ScratchServer


@pytest.fixture
async def fresh_dsn():  # type: ignore[no-untyped-def]
    server = await ScratchServer().start()
    name = "vigil_migrate_test"
    conn = await asyncpg.connect(server.dsn)
    await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    dsn = f"{server.dsn.rpartition('/')[0]}/{name}"
    yield dsn
    await server.drop_database(dsn)
    server.stop()


def test_migration_files_are_numbered_and_ordered() -> None:
    versions = [m.version for m in load_migrations()]
    assert versions == sorted(versions) and versions[0] == 1


async def test_concurrent_hubs_apply_each_migration_once(fresh_dsn: str) -> None:
    conns = [await asyncpg.connect(fresh_dsn) for _ in range(4)]
    try:
        results = await asyncio.gather(*(migrate(c) for c in conns))
        applied = [name for r in results for name in r]
        assert sorted(applied) == sorted(m.name for m in load_migrations())
        assert await migrate(conns[0]) == []
        assert await conns[0].fetchval("SELECT count(*) FROM schema_migrations") == len(load_migrations())
    finally:
        for c in conns:
            await c.close()


async def test_an_edited_applied_migration_is_refused(fresh_dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    conn = await asyncpg.connect(fresh_dsn)
    try:
        await migrate(conn)
        original = load_migrations()
        edited = [Migration(m.version, m.name, m.sql + "\n-- edited") for m in original]
        monkeypatch.setattr(migrate_mod, "load_migrations", lambda: edited)
        with pytest.raises(MigrationError, match="changed after it was applied"):
            await migrate(conn)
    finally:
        await conn.close()


async def test_a_failing_migration_rolls_back_entirely(fresh_dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    conn = await asyncpg.connect(fresh_dsn)
    try:
        broken = [*load_migrations(), Migration(9999, "9999_broken.sql", "CREATE TABLE half_done (x int); SELECT 1/0;")]
        monkeypatch.setattr(migrate_mod, "load_migrations", lambda: broken)
        with pytest.raises(asyncpg.DivisionByZeroError):
            await migrate(conn)
        assert await conn.fetchval("SELECT to_regclass('half_done')") is None
        assert await conn.fetchval("SELECT count(*) FROM schema_migrations WHERE version = 9999") == 0
        # The lock was released despite the failure.
        assert await conn.fetchval("SELECT pg_try_advisory_lock($1)", migrate_mod.MIGRATION_LOCK_KEY)
    finally:
        await conn.close()
