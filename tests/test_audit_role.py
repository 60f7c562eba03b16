"""The audit log is append-only against the hub's own database role (issue 11): the hub runs as a
role that owns no table, so it can neither disable the append-only trigger nor delete, update or
truncate audit rows; the owner role runs migrations and grants (hub/db/roles.py)."""
from __future__ import annotations

import logging
import os
import secrets
import subprocess
import sys
from datetime import datetime, timezone

import asyncpg
import pytest

from hub.db.roles import DatabaseRoleError, prepare_database
from provisioning.db_roles import ensure_runtime_role

TAMPERING = [
    "ALTER TABLE audit_log DISABLE TRIGGER ALL",
    "ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_update",
    "DROP TRIGGER audit_log_no_update ON audit_log",
    "DROP TABLE audit_log",
    "DELETE FROM audit_log",
    "UPDATE audit_log SET actor = 'nobody'",
    "TRUNCATE audit_log",
    "ALTER TABLE audit_log OWNER TO CURRENT_USER",
    "INSERT INTO schema_migrations (version, name, checksum) VALUES (9999, 'x', 'x')",
    "SELECT grant_hub_runtime(current_user)",
    "CREATE TABLE planted (i integer)",
]


@pytest.fixture
async def runtime_dsn(db_dsn: str) -> str:
    dsn = await ensure_runtime_role(db_dsn)
    await prepare_database(dsn, db_dsn)
    return dsn


async def test_the_hub_role_cannot_disable_the_trigger_nor_remove_audit_rows(runtime_dsn: str, db: asyncpg.Pool) -> None:
    await db.execute("INSERT INTO audit_log (actor, action, target_type, target_id) VALUES ('user:1', 'x.done', 't', '1')")
    before = await db.fetch("SELECT * FROM audit_log ORDER BY id")
    conn = await asyncpg.connect(runtime_dsn)
    try:
        for statement in TAMPERING:
            # The role's rights refuse, not the append-only trigger (whose message differs).
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied|must be owner"):
                await conn.execute(statement)
        # What the hub does need still works: append, read, and this month's partitions.
        await conn.execute("INSERT INTO audit_log (actor, action, target_type, target_id) VALUES ('user:2', 'y', 't', '2')")
        assert await conn.fetchval("SELECT count(*) FROM audit_log") == len(before) + 1
        far = datetime(2031, 5, 1, tzinfo=timezone.utc)
        assert await conn.fetchval("SELECT ensure_event_partitions($1, 1)", far) == 1
    finally:
        await conn.close()
    after = await db.fetch("SELECT * FROM audit_log ORDER BY id")
    assert after[: len(before)] == before
    triggers = await db.fetch("SELECT tgname, tgenabled::text AS tgenabled FROM pg_trigger WHERE tgrelid = 'audit_log'::regclass "
                              "AND NOT tgisinternal ORDER BY tgname")
    assert [(t["tgname"], t["tgenabled"]) for t in triggers] == [("audit_log_no_truncate", "O"),
                                                                   ("audit_log_no_update", "O")]
    # The partition the hub asked for belongs to the owner, not to the hub's role.
    owner = await db.fetchval("SELECT pg_get_userbyid(relowner) FROM pg_class WHERE relname = 'events_2031_05'")
    assert owner == await db.fetchval("SELECT current_user")


async def test_a_hub_given_the_owner_as_its_runtime_role_refuses_to_start(db_dsn: str) -> None:
    with pytest.raises(DatabaseRoleError, match="owns audit_log|is a superuser"):
        await prepare_database(db_dsn, db_dsn)


async def test_one_role_for_both_works_and_says_the_audit_log_rests_on_its_trigger(
        db_dsn: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="vigil.hub.db.roles"):
        role = await prepare_database(db_dsn)
    assert not role.separated
    assert "rests on the trigger alone" in caplog.text


async def test_tables_added_by_later_migrations_are_granted_on_the_next_start(runtime_dsn: str, db_dsn: str,
                                                                              db: asyncpg.Pool) -> None:
    await db.execute("CREATE TABLE later_feature (id bigserial PRIMARY KEY, note text)")
    await prepare_database(runtime_dsn, db_dsn)
    conn = await asyncpg.connect(runtime_dsn)
    try:
        await conn.execute("INSERT INTO later_feature (note) VALUES ('hello')")
        assert await conn.fetchval("SELECT note FROM later_feature") == "hello"
    finally:
        await conn.close()


async def test_a_runtime_role_without_an_owner_url_is_told_what_to_set(runtime_dsn: str, db_dsn: str) -> None:
    # A fresh, empty database: creating the schema needs the owner role.
    name = f"vigil_roles_{secrets.token_hex(4)}"
    server = await asyncpg.connect(db_dsn)
    try:
        await server.execute(f'CREATE DATABASE "{name}"')
        try:
            with pytest.raises(DatabaseRoleError, match="set database_owner_url"):
                await prepare_database(f"{runtime_dsn.rpartition('/')[0]}/{name}")
        finally:
            await server.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await server.close()


def test_the_readme_migrate_command_runs_with_both_roles(runtime_dsn: str, db_dsn: str) -> None:
    env = {**os.environ, "VIGIL_HUB_DATABASE_URL": runtime_dsn, "VIGIL_HUB_DATABASE_OWNER_URL": db_dsn}
    done = subprocess.run([sys.executable, "-m", "hub", "migrate"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    swapped = {**env, "VIGIL_HUB_DATABASE_URL": db_dsn}
    refused = subprocess.run([sys.executable, "-m", "hub", "migrate"], env=swapped, capture_output=True, text=True,
                             timeout=60)
    assert refused.returncode == 2 and "owns no table" in refused.stderr
