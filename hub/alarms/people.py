"""Who did what, as people know them: an actor (`user:<id>`, as Principal.actor and the lifecycle
name callers, or `system` for the hub itself) becomes `{id, email, name}` on the wire instead of
`user:1` (docs/architecture.md §5 "Working an alarm")."""
from __future__ import annotations

import re
from typing import Any, Iterable

import asyncpg
import msgspec

SYSTEM_NAME = "Vigil hub"  # the hub's own moves: reaper, auto-close, escalation
_USER_ACTOR = re.compile(r"^user:([0-9]{1,18})$")
SQL_PEOPLE = "SELECT id, email, display_name FROM users WHERE id = ANY($1::int8[])"


class Who(msgspec.Struct):
    """A person (or the hub) in an answer: `name` is their display name, None when they have none."""

    id: int | None
    email: str | None
    name: str | None


def user_id_of(actor: str | None) -> int | None:
    """The user id an actor names, or None for the hub or anything else."""
    match = _USER_ACTOR.match(actor or "")
    return int(match.group(1)) if match else None


def who(actor: str | None, email: str | None = None, name: str | None = None) -> Who | None:
    """The Who for an actor, with the email and display name looked up for it (None: no actor)."""
    if actor is None:
        return None
    user_id = user_id_of(actor)
    if user_id is None:
        return Who(None, None, SYSTEM_NAME if actor == "system" else actor)
    return Who(user_id, email, name or None)


def actor_join(alias: str, actor_sql: str) -> str:
    """`LEFT JOIN users <alias>` on the user the actor expression `actor_sql` names."""
    return (f"LEFT JOIN users {alias} ON {alias}.id = CASE WHEN {actor_sql} ~ '^user:[0-9]{{1,18}}$' "
            f"THEN substr({actor_sql}, 6)::int8 END")


async def people(conn: asyncpg.Connection | asyncpg.Pool, actors: Iterable[str | None]) -> dict[str, Who]:
    """Every named actor as a Who, in one query."""
    wanted = {a for a in actors if a is not None}
    ids = sorted({i for a in wanted if (i := user_id_of(a)) is not None})
    rows: dict[int, Any] = {r["id"]: r for r in await conn.fetch(SQL_PEOPLE, ids)} if ids else {}
    found: dict[str, Who] = {}
    for actor in wanted:
        row = rows.get(user_id_of(actor))  # type: ignore[arg-type]
        person = who(actor, row["email"] if row else None, row["display_name"] if row else None)
        assert person is not None
        found[actor] = person
    return found


def name_of(person: Who | None) -> str:
    """How a sentence names someone: display name, else email, else `user <id>`."""
    if person is None:
        return "nobody"
    return person.name or person.email or f"user {person.id}"
