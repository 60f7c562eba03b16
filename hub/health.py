"""The hub's health checks, shared by /readyz and the system mode: PostgreSQL with the schema this
hub expects, NATS connected with JetStream answering, and the supervised tasks (shared/supervise.py)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg
from nats.aio.client import Client as NatsClient

from hub.db.errors import DB_ERRORS
from hub.db.migrate import unapplied
from shared import health as shared_health
from shared.health import OK
from shared.supervise import Supervisor


@dataclass(frozen=True)
class Health:
    checks: dict[str, str]  # each check: "ok" or what is wrong
    tasks: dict[str, dict[str, Any]]  # the supervisor's view of each task

    @property
    def problems(self) -> dict[str, str]:
        """Each failing check and each failing task, with why."""
        failing = {name: detail for name, detail in self.checks.items() if detail != OK}
        failing.update({name: str(t["last_error"]) for name, t in self.tasks.items() if t["state"] == "failing"})
        return failing


async def database_checks(pool: asyncpg.Pool) -> dict[str, str]:
    """`database` and `migrations`."""
    try:
        async with pool.acquire() as conn:
            missing = await unapplied(conn)
    except DB_ERRORS as exc:
        return {"database": f"PostgreSQL is unreachable: {exc}", "migrations": "unknown: no database"}
    return {"database": OK, "migrations": OK if not missing else f"{len(missing)} not applied: {', '.join(missing[:5])}"}


async def nats_checks(nc: NatsClient | None) -> dict[str, str]:
    """`nats` and `jetstream` (none without a NATS client)."""
    if nc is None:
        return {}
    return await shared_health.nats_checks(nc, "not connected (reconnecting)")


async def health(pool: asyncpg.Pool, nc: NatsClient | None, supervisor: Supervisor | None) -> Health:
    """Every check now."""
    checks = {**await database_checks(pool), **await nats_checks(nc)}
    return Health(checks, supervisor.health() if supervisor is not None else {})
