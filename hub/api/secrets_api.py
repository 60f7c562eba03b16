"""Recorder and camera passwords: stored encrypted with the hub's secret file, revealed for 60 s
with a reason, limited per role per hour, and every reveal (granted or refused) audited."""
from __future__ import annotations

from typing import Annotated, Any

import msgspec

from hub.api.app import deps
from hub.api.common import NonEmpty
from hub.api.crud import Table, audit, delete_owned
from hub.api.errors import ApiError, invalid, not_found
from hub.api.objects_api import visible_object
from hub.api.permissions import REVEALS_PER_HOUR, object_filter, require_object
from hub.api.routing import Call, Router
from hub.secret_box import SecretBox, SecretBoxError

router = Router()

SECRET_BOX_KEY = "secret_box"
REVEAL_SECONDS = 60
MIN_REASON = 5
SECRETS = Table("object_secrets", (), "secret")
# What a deletion's audit entry keeps of a secret: never its value, sealed or not.
SECRET_LABELS = ("object_id", "label", "username")


class SecretIn(msgspec.Struct, forbid_unknown_fields=True):
    label: NonEmpty
    secret: Annotated[str, msgspec.Meta(min_length=1, max_length=500)]
    username: Annotated[str, msgspec.Meta(max_length=200)] = ""


class SecretOut(msgspec.Struct):
    id: int
    object_id: int
    label: str
    username: str
    version: int


class RevealBody(msgspec.Struct, forbid_unknown_fields=True):
    reason: Annotated[str, msgspec.Meta(max_length=500)]


class Revealed(msgspec.Struct):
    id: int
    label: str
    username: str
    secret: str
    expires_in: int


SQL_INSERT = """
INSERT INTO object_secrets (object_id, label, username, secret_enc) VALUES ($1, $2, $3, $4)
RETURNING id, object_id, label, username, version
"""
SQL_LIST = "SELECT id, object_id, label, username, version FROM object_secrets WHERE object_id = $1 ORDER BY label, id"
SQL_ONE = "SELECT * FROM object_secrets WHERE id = $1"
# Reveals in the last hour by this user, granted ones only; serialised per user by the lock below.
SQL_RECENT_REVEALS = """
SELECT count(*) FROM audit_log
WHERE actor = $1 AND action = 'secret.reveal' AND at > now() - interval '1 hour'
"""
SQL_USER_LOCK = "SELECT pg_advisory_xact_lock(hashtext('secret-reveal:' || $1))"


def object_secret_aad(object_id: int) -> bytes:
    # Binds the ciphertext to its object: a row copied under another object does not decrypt.
    return f"object_secret:{object_id}".encode()


def _box(call: Call) -> SecretBox:
    return deps(call).extra[SECRET_BOX_KEY]  # type: ignore[no-any-return]


# carries_secret: the idempotency table keeps a plain SHA-256 of the request, and a short
# recorder password beside known fields could be guessed against it offline.
@router.post("/api/v1/objects/{id}/secrets", body=SecretIn, response=SecretOut, permission="objects.edit", status=201,
             tags=("secrets",), carries_secret=True)
async def create_secret(call: Call) -> SecretOut:
    """Store a recorder or camera password, encrypted."""
    object_id = call.path_int("id")
    await visible_object(call, object_id)
    body: SecretIn = call.body
    sealed = _box(call).encrypt(body.secret.encode(), object_secret_aad(object_id))
    async with deps(call).pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(SQL_INSERT, object_id, body.label, body.username, sealed)
        await audit(conn, call, "secret.create", "object_secret", row["id"], {"object_id": object_id, "label": body.label})
    return SecretOut(**dict(row))


@router.get("/api/v1/objects/{id}/secrets", response=list[SecretOut], permission="objects.view", tags=("secrets",))
async def list_secrets(call: Call) -> list[SecretOut]:
    """The object's stored secrets, without their values."""
    object_id = call.path_int("id")
    await visible_object(call, object_id)
    return [SecretOut(**dict(r)) for r in await deps(call).pool.fetch(SQL_LIST, object_id)]


@router.post("/api/v1/secrets/{id}/reveal", body=RevealBody, response=Revealed, permission="secrets.reveal",
             carries_secret=True, tags=("secrets",))
async def reveal_secret(call: Call) -> Revealed:
    """Show a secret for 60 s. Needs a reason; limited per role per hour; always audited."""
    secret_id = call.path_int("id")
    reason = call.body.reason.strip()
    pool = deps(call).pool
    row = await pool.fetchrow(SQL_ONE, secret_id)
    if row is None:
        raise not_found("secret")
    require_object(call.user, row["object_id"], "secret")
    limit = REVEALS_PER_HOUR.get(call.user.role)
    async with pool.acquire() as conn:
        async with conn.transaction():
            await conn.execute(SQL_USER_LOCK, call.user.actor)
            refusal: ApiError | None = None
            if len(reason) < MIN_REASON:
                refusal = invalid(f"give a reason of at least {MIN_REASON} characters", {"field": "reason"})
            elif limit is not None and await conn.fetchval(SQL_RECENT_REVEALS, call.user.actor) >= limit:
                refusal = ApiError(429, "rate_limited", f"at most {limit} reveals an hour for {call.user.role.value}",
                                   headers={"Retry-After": "3600"})
            details: dict[str, Any] = {"object_id": row["object_id"], "label": row["label"], "reason": reason}
            if refusal is not None:
                await audit(conn, call, "secret.reveal_refused", "object_secret", secret_id,
                            {**details, "why_refused": refusal.code})
            else:
                await audit(conn, call, "secret.reveal", "object_secret", secret_id, details)
        if refusal is not None:
            raise refusal
    try:
        secret = _box(call).decrypt(bytes(row["secret_enc"]), object_secret_aad(row["object_id"])).decode()
    except SecretBoxError:
        raise ApiError(500, "secret_unreadable", "the secret cannot be decrypted with this hub's secret file") from None
    return Revealed(secret_id, row["label"], row["username"], secret, REVEAL_SECONDS)


@router.delete("/api/v1/secrets/{id}", permission="objects.edit", status=204, tags=("secrets",))
async def delete_secret(call: Call) -> None:
    """Remove a stored secret; the audit entry names it (object, label, user name), never its value."""
    secret_id = call.path_int("id")
    async with deps(call).pool.acquire() as conn, conn.transaction():
        row = await delete_owned(conn, SECRETS, secret_id, object_filter(call.user), SECRET_LABELS)
        await audit(conn, call, "secret.delete", "object_secret", secret_id, dict(row))
