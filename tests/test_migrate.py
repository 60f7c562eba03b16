"""hub.db.migrate: ordered, recorded, applied once even by concurrent hubs, tamper-evident."""
from __future__ import annotations

import asyncio
import secrets

import asyncpg
import pytest

from hub.db import migrate as migrate_mod
from hub.db.migrate import Migration, MigrationError, load_migrations, migrate
from provisioning.scratch_db import ScratchServer


@pytest.fixture
async def fresh_dsn():  # type: ignore[no-untyped-def]
    server = await ScratchServer().start()
    name = f"vigil_migrate_test_{secrets.token_hex(4)}"  # its own, also beside another test worker
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


async def test_identity_migration_keeps_existing_data(fresh_dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """0007 starts from the schema as it was (minute dedup keys, bare seqs) with rows in it: the
    committed seqs become epoch '' of each edge, stored order keys keep their meaning, the
    minute key is gone, and a flapping zone's second restore is now stored."""
    conn = await asyncpg.connect(fresh_dsn)
    try:
        everything = load_migrations()
        monkeypatch.setattr(migrate_mod, "load_migrations", lambda: [m for m in everything if m.version < 7])
        await migrate(conn)
        await conn.execute("""
            INSERT INTO edges (edge_id, public_key, key_id, committed) VALUES ('site-1', decode(repeat('ab', 32), 'hex'),
                'k1', '{[1,4), [5,7)}');
            INSERT INTO objects (name) VALUES ('Bank');
            INSERT INTO panels (object_id, edge_id, source, link_status, link_seq) VALUES (1, 'site-1', 'panel-1',
                'CONNECTED', 6);
            INSERT INTO panel_state (panel_id, element, number, state, seq, updated_at)
                VALUES (1, 'zone', 3, '{"violated": false}', 6, now());
            INSERT INTO events (id, edge_id, seq, ts, minute, kind, source, priority, body, lane, dedup_key)
                VALUES (gen_random_uuid(), 'site-1', 6, '2026-11-22T14:00:30Z', '2026-11-22T14:00:00Z',
                        'satel.zone.restore', 'panel-1', 'LOW', '{"zone": 3}', 'evt',
                        'site-1/panel-1:satel.zone.restore:zone3:20261122T1400');
        """)
        monkeypatch.setattr(migrate_mod, "load_migrations", lambda: everything)
        applied = await migrate(conn)
        assert "0007_identity_epochs.sql" in applied
        epoch = await conn.fetchrow("SELECT * FROM edge_epoch_status WHERE edge_id = 'site-1'")
        assert (epoch["epoch"], epoch["ordinal"], epoch["contiguous_seq"], epoch["highest_seq"], epoch["missing"]) \
            == ("", 0, 3, 6, 1)
        assert await conn.fetchval("SELECT ord FROM panel_state") == 6
        assert await conn.fetchval("SELECT link_ord FROM panels") == 6
        columns = {r["column_name"] for r in await conn.fetch(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'events'")}
        assert "dedup_key" not in columns and {"epoch", "occurrence", "ts_suspect"} <= columns
        # The same restore again in the same minute, a new seq: stored, not "a duplicate".
        await conn.execute("""
            INSERT INTO events (id, edge_id, seq, ts, minute, kind, source, priority, body, lane)
            VALUES (gen_random_uuid(), 'site-1', 8, '2026-11-22T14:00:50Z', '2026-11-22T14:00:00Z',
                    'satel.zone.restore', 'panel-1', 'LOW', '{"zone": 3}', 'evt')""")
        assert await conn.fetchval("SELECT count(*) FROM events WHERE kind = 'satel.zone.restore'") == 2
    finally:
        await conn.close()
