"""User management for `users.manage`: list, create, change role/active/password/name/time zone,
assign objects; and each user's own settings (their time zone).

Every change is versioned (a stale `version` is 409) and audited. An ADMIN may not create,
change or promote to MASTER; the last active MASTER cannot be demoted or deactivated, so the
hub always keeps someone who can manage it. Deactivation and a password reset end the user's
sessions at once.
"""
from __future__ import annotations

import re
import uuid
from typing import Any

import asyncpg
import msgspec
from msgspec import UNSET

from hub.api.errors import ApiError, conflict, forbidden, invalid, not_found
from hub.api.permissions import ASSIGNED_ONLY, MATRIX
from hub.api.principal import Principal, Role
from hub.auth.audit import audit
from hub.auth.login import normalise_email
from hub.auth.passwords import PasswordPolicyError, Passwords, check_policy
from hub.auth.schemas import MeOut, MySettingsIn, ObjectsIn, UserCreateIn, UserOut, UserPatchIn
from hub.auth.sessions import Sessions
from hub.config import valid_time_zone
from shared.clock import Clock

USERS_LOCK_KEY = 0x56494755  # "VIGU": serialises user changes, so two cannot remove the last MASTER
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+$")

SQL_USER_OUT = """
SELECT u.id, u.email, u.display_name, u.role, u.active, u.must_change_password, u.version,
       u.created_at, u.updated_at, u.time_zone,
       -- The longest login delay any address has earned (hub.auth.throttle): only those addresses wait.
       (SELECT max(f.delayed_until) FROM auth_account_failures f WHERE f.user_id = u.id) AS locked_until,
       ARRAY(SELECT a.object_id FROM user_object_assignments a WHERE a.user_id = u.id ORDER BY a.object_id) AS objects
FROM users u
"""
SQL_LIST = SQL_USER_OUT + " ORDER BY u.id"
SQL_GET = SQL_USER_OUT + " WHERE u.id = $1"
SQL_EMAIL = "SELECT email FROM users WHERE id = $1"
SQL_LOCK = "SELECT pg_advisory_xact_lock($1)"
SQL_LOCK_USER = "SELECT id, email, role, active, display_name, time_zone, version FROM users WHERE id = $1 FOR UPDATE"
SQL_CREATE = """
INSERT INTO users (email, display_name, role, password_hash, must_change_password, created_at, updated_at)
VALUES ($1, $2, $3, $4, true, $5, $5)
ON CONFLICT (email) DO NOTHING
RETURNING id
"""
SQL_OTHER_ACTIVE_MASTERS = "SELECT count(*) FROM users WHERE role = 'MASTER' AND active AND id <> $1"
SQL_UPDATE = """
UPDATE users SET role = $2, active = $3, display_name = $4, version = version + 1, updated_at = $5, time_zone = $6
WHERE id = $1
"""
# A reset password is one the admin knows: the user must change it, and every address's login delay ends.
SQL_RESET_PASSWORD = """
WITH forgotten AS (DELETE FROM auth_account_failures WHERE user_id = $1)
UPDATE users SET password_hash = $2, must_change_password = true WHERE id = $1
"""
SQL_BUMP = "UPDATE users SET version = version + 1, updated_at = $2 WHERE id = $1"
SQL_SET_TIME_ZONE = """
WITH old AS (SELECT time_zone FROM users WHERE id = $1 FOR UPDATE)
UPDATE users u SET time_zone = $2, version = u.version + 1, updated_at = $3 FROM old WHERE u.id = $1
RETURNING old.time_zone AS old
"""
SQL_ASSIGNED = "SELECT object_id FROM user_object_assignments WHERE user_id = $1"
SQL_EXISTING_OBJECTS = "SELECT id FROM objects WHERE id = ANY($1::bigint[])"
SQL_UNASSIGN = "DELETE FROM user_object_assignments WHERE user_id = $1 AND object_id = ANY($2::bigint[])"
SQL_ASSIGN = """
INSERT INTO user_object_assignments (user_id, object_id) SELECT $1, unnest($2::bigint[])
"""


def _to_out(row: asyncpg.Record, clock: Clock) -> UserOut:
    data = dict(row)
    if data["locked_until"] is not None and data["locked_until"] <= clock.now():
        data["locked_until"] = None  # an ended delay is no longer news
    data["objects"] = list(data["objects"])
    return UserOut(**data)


def _may_touch_master(actor: Principal) -> bool:
    return actor.role in (Role.MASTER, Role.SYSTEM)


def _time_zone(value: str | None) -> str | None:
    """A time zone a user may choose: an IANA name this machine knows, or None (the hub's)."""
    if value is not None and not valid_time_zone(value):
        raise invalid(f"{value!r} is not an IANA time zone name (such as Europe/Warsaw)", {"field": "time_zone"})
    return value


class UserStore:
    """Reads and changes users on behalf of an administrator."""

    def __init__(self, pool: asyncpg.Pool, clock: Clock, passwords: Passwords, sessions: Sessions,
                 default_time_zone: str = "UTC") -> None:
        self._pool = pool
        self._clock = clock
        self._passwords = passwords
        self._sessions = sessions
        self._default_time_zone = default_time_zone

    async def list(self) -> list[UserOut]:
        """Every user, by id."""
        return [_to_out(r, self._clock) for r in await self._pool.fetch(SQL_LIST)]

    async def get(self, user_id: int, conn: asyncpg.Connection | asyncpg.Pool | None = None) -> UserOut:
        """One user; 404 when there is none."""
        row = await (conn or self._pool).fetchrow(SQL_GET, user_id)
        if row is None:
            raise not_found("user")
        return _to_out(row, self._clock)

    async def me(self, principal: Principal) -> MeOut:
        """The calling user, with the hub's default time zone and their role's permissions."""
        user = await self.get(principal.user_id)
        return MeOut(**msgspec.structs.asdict(user), hub_time_zone=self._default_time_zone,
                     permissions=sorted(p for p, roles in MATRIX.items() if principal.role in roles))

    async def set_own(self, principal: Principal, body: MySettingsIn, ip: str) -> MeOut:
        """Change the caller's own settings (their time zone; None: the hub's); audited."""
        if body.time_zone is UNSET:
            raise invalid("the change changes nothing: give time_zone")
        time_zone = _time_zone(body.time_zone)
        now = self._clock.now()
        async with self._pool.acquire() as conn:
            async with conn.transaction():
                old = await conn.fetchval(SQL_SET_TIME_ZONE, principal.user_id, time_zone, now)
                if old != time_zone:
                    await audit(conn, now, principal.actor, "user.time_zone_changed", "user", principal.user_id, ip,
                                old=old, new=time_zone)
        return await self.me(principal)

    async def create(self, actor: Principal, body: UserCreateIn, ip: str) -> UserOut:
        """A new user with an initial password they must change; 409 when the email is taken."""
        email = normalise_email(body.email)
        if not EMAIL_RE.match(email):
            raise invalid("the email is not an email address", {"field": "email"})
        if body.role == Role.MASTER.value and not _may_touch_master(actor):
            raise forbidden("only a MASTER may create a MASTER")
        password_hash = await self._hash_new(body.password, email)
        now = self._clock.now()
        async with self._pool.acquire() as conn:
            async with conn.transaction():
                user_id = await conn.fetchval(SQL_CREATE, email, body.display_name, body.role, password_hash, now)
                if user_id is None:
                    raise ApiError(409, "email_taken", "a user with this email exists", {"field": "email"})
                await audit(conn, now, actor.actor, "user.created", "user", user_id, ip, email=email, role=body.role)
                return await self.get(user_id, conn)

    async def patch(self, actor: Principal, user_id: int, body: UserPatchIn, ip: str) -> UserOut:
        """Change role, active flag, display name, time zone and/or reset the password, at `body.version`."""
        if all(v is UNSET for v in (body.role, body.active, body.password, body.display_name, body.time_zone)):
            raise invalid("the patch changes nothing: give role, active, password, display_name or time_zone")
        if body.time_zone is not UNSET:
            _time_zone(body.time_zone)
        email = await self._pool.fetchval(SQL_EMAIL, user_id)
        if email is None:
            raise not_found("user")
        # Hashed before the transaction: it takes long and needs no lock.
        password_hash = None if body.password is UNSET else await self._hash_new(body.password, email)
        now = self._clock.now()
        async with self._pool.acquire() as conn:
            async with conn.transaction():
                await conn.execute(SQL_LOCK, USERS_LOCK_KEY)
                row = await self._lock_at_version(conn, user_id, body.version)
                role = row["role"] if body.role is UNSET else body.role
                active = row["active"] if body.active is UNSET else body.active
                name = row["display_name"] if body.display_name is UNSET else body.display_name
                time_zone = row["time_zone"] if body.time_zone is UNSET else body.time_zone
                if Role.MASTER.value in (row["role"], role) and not _may_touch_master(actor):
                    raise forbidden("only a MASTER may change a MASTER or make one")
                if (row["role"] == Role.MASTER.value and row["active"] and (role != Role.MASTER.value or not active)
                        and await conn.fetchval(SQL_OTHER_ACTIVE_MASTERS, user_id) == 0):
                    raise ApiError(409, "last_master", "the last active MASTER cannot be demoted or deactivated")
                await conn.execute(SQL_UPDATE, user_id, role, active, name, now, time_zone)
                await self._audit_changes(conn, actor, row, role, active, name, password_hash is not None, ip)
                if time_zone != row["time_zone"]:
                    await audit(conn, now, actor.actor, "user.time_zone_changed", "user", user_id, ip,
                                old=row["time_zone"], new=time_zone)
                ended: list[uuid.UUID] = []
                if password_hash is not None:
                    await conn.execute(SQL_RESET_PASSWORD, user_id, password_hash)
                    ended += await self._sessions.revoke_user(conn, user_id, "password_reset")
                if not active:
                    ended += await self._sessions.revoke_user(conn, user_id, "deactivated")
                user = await self.get(user_id, conn)
        self._sessions.announce(ended)
        return user

    async def set_objects(self, actor: Principal, user_id: int, body: ObjectsIn, ip: str) -> UserOut:
        """Replace the objects a TECHNICIAN or FIELD_WORKER is assigned to, at `body.version`."""
        wanted = set(body.object_ids)
        now = self._clock.now()
        async with self._pool.acquire() as conn:
            async with conn.transaction():
                row = await self._lock_at_version(conn, user_id, body.version)
                if Role(row["role"]) not in ASSIGNED_ONLY:
                    raise invalid(f"a {row['role']} sees every object; only TECHNICIAN and FIELD_WORKER users "
                                  "have object assignments", {"field": "object_ids"})
                existing = {r["id"] for r in await conn.fetch(SQL_EXISTING_OBJECTS, sorted(wanted))}
                if missing := sorted(wanted - existing):
                    raise invalid("some objects do not exist", {"field": "object_ids", "missing": missing})
                current = {r["object_id"] for r in await conn.fetch(SQL_ASSIGNED, user_id)}
                added, removed = sorted(wanted - current), sorted(current - wanted)
                await conn.execute(SQL_UNASSIGN, user_id, removed)
                await conn.execute(SQL_ASSIGN, user_id, added)
                await conn.execute(SQL_BUMP, user_id, now)
                await audit(conn, now, actor.actor, "user.objects_changed", "user", user_id, ip,
                            added=added, removed=removed)
                return await self.get(user_id, conn)

    async def _lock_at_version(self, conn: asyncpg.Connection, user_id: int, version: int) -> asyncpg.Record:
        row = await conn.fetchrow(SQL_LOCK_USER, user_id)
        if row is None:
            raise not_found("user")
        if row["version"] != version:
            raise conflict("the user was changed by someone else; reload it and try again",
                           {"version": version, "current_version": row["version"]})
        return row

    async def _hash_new(self, password: str, email: str) -> str:
        try:
            check_policy(password, email)
        except PasswordPolicyError as exc:
            raise invalid(str(exc), {"field": "password", "reason": str(exc)}) from None
        return await self._passwords.hash(password)

    async def _audit_changes(self, conn: asyncpg.Connection, actor: Principal, row: asyncpg.Record, role: str,
                             active: bool, name: str, password_reset: bool, ip: str) -> None:
        now = self._clock.now()
        target: dict[str, Any] = {"target_type": "user", "target_id": row["id"], "ip": ip}
        if role != row["role"]:
            await audit(conn, now, actor.actor, "user.role_changed", **target, old=row["role"], new=role)
        if active != row["active"]:
            await audit(conn, now, actor.actor, "user.activated" if active else "user.deactivated", **target)
        if name != row["display_name"]:
            await audit(conn, now, actor.actor, "user.renamed", **target, display_name=name)
        if password_reset:
            await audit(conn, now, actor.actor, "user.password_reset", **target)
