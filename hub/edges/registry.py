"""The edges table as enrolment changes it: create with a token, redeem the token, revoke.

Each change is one transaction with its audit row, so the log never says an edge was enrolled
when it was not. The rules themselves live in hub.edges.enrolment.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from hub.auth.audit import audit
from hub.edges.enrolment import (DEFAULT_TTL, EdgeUnknown, EnrolmentError, NewToken, TokenRecord, check_may_issue,
                                 check_token, issue_token, token_hash)
from shared.signing import key_id as compute_key_id
from shared.subjects import valid_edge_id

SQL_EDGE_FOR_UPDATE = """
SELECT edge_id, public_key IS NOT NULL AS enrolled, revoked_at IS NOT NULL AS revoked
FROM edges WHERE edge_id = $1 FOR UPDATE
"""
SQL_INSERT_PENDING_EDGE = """
INSERT INTO edges (edge_id, object_id, created_by, created_at, probe) VALUES ($1, $2, $3, $4, $5)
"""
SQL_SET_OBJECT = "UPDATE edges SET object_id = coalesce($2, object_id), probe = $3 WHERE edge_id = $1"
SQL_VOID_TOKENS = """
UPDATE edge_enrolment_tokens SET voided_at = $2 WHERE edge_id = $1 AND used_at IS NULL AND voided_at IS NULL
"""
SQL_INSERT_TOKEN = """
INSERT INTO edge_enrolment_tokens (edge_id, token_hash, created_by, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)
"""
SQL_TOKEN_FOR_UPDATE = """
SELECT id, edge_id, created_at, expires_at, used_at, voided_at FROM edge_enrolment_tokens WHERE token_hash = $1 FOR UPDATE
"""
SQL_USE_TOKEN = "UPDATE edge_enrolment_tokens SET used_at = $2, used_from = $3 WHERE id = $1"
SQL_KEY_OWNER = "SELECT edge_id FROM edges WHERE key_id = $1 AND edge_id <> $2"
SQL_ENROL_EDGE = """
UPDATE edges SET public_key = $2, key_id = $3, enrolled_at = $4, revoked_at = NULL, leaf_password_hash = $5,
                 hardware_id = $6
WHERE edge_id = $1
RETURNING probe
"""
SQL_REVOKE = """
UPDATE edges SET revoked_at = $2, leaf_password_hash = NULL WHERE edge_id = $1 AND revoked_at IS NULL
RETURNING edge_id
"""
SQL_LEAF_USERS = """
SELECT edge_id, leaf_password_hash FROM edges
WHERE revoked_at IS NULL AND leaf_password_hash IS NOT NULL ORDER BY edge_id
"""


@dataclass(frozen=True)
class Enrolled:
    """What the hub knows of a box it just enrolled."""

    edge_id: str
    key_id: str
    client_cert_pem: str
    probe: bool = False  # the synthetic probe edge: its agent sends probe.tick (edge/probe.py)


async def create_edge(conn: asyncpg.Connection, edge_id: str, object_id: int | None, actor: str, now: datetime,
                      ip: str | None, ttl: timedelta = DEFAULT_TTL, probe: bool = False) -> NewToken:
    """Create the edge (or take a revoked / not yet enrolled one) and issue its one-time token;
    any earlier unused token of the edge is voided. `probe`: the edge is the synthetic probe."""
    if not valid_edge_id(edge_id):
        raise EnrolmentError(f"edge id {edge_id!r} must be lower-case letters, digits and dashes (1-63, "
                             "starting with a letter or digit)")
    new = issue_token(now, ttl)
    async with conn.transaction():
        row = await conn.fetchrow(SQL_EDGE_FOR_UPDATE, edge_id)
        if row is None:
            await conn.execute(SQL_INSERT_PENDING_EDGE, edge_id, object_id, actor, now, probe)
        else:
            check_may_issue(row["enrolled"], row["revoked"], edge_id)
            await conn.execute(SQL_SET_OBJECT, edge_id, object_id, probe)
        await conn.execute(SQL_VOID_TOKENS, edge_id, now)
        await conn.execute(SQL_INSERT_TOKEN, edge_id, new.token_hash, actor, now, new.expires_at)
        await audit(conn, now, actor, "edge.token.issued", "edge", edge_id, ip, object_id=object_id,
                    expires_at=new.expires_at.isoformat(), reissued=row is not None, probe=probe)
    return new


async def redeem_token(conn: asyncpg.Connection, token: str, public_key: bytes, leaf_password_hash: str,
                       hardware_id: str, now: datetime, ip: str | None,
                       issue_cert: Callable[[str], str]) -> Enrolled:
    """Enrol the box that presents `token` with `public_key`: the token is spent, the edge gets the
    key and its leaf credential, and a revocation is cleared (this is how a box is re-keyed).

    `issue_cert(edge_id)` makes the box's client certificate inside the transaction: if it refuses
    (a bad certificate request), the token is not spent."""
    if len(public_key) != 32:
        raise EnrolmentError(f"an Ed25519 public key is 32 bytes, got {len(public_key)}")
    kid = compute_key_id(public_key)
    refused: tuple[str, EnrolmentError] | None = None
    async with conn.transaction():
        row = await conn.fetchrow(SQL_TOKEN_FOR_UPDATE, token_hash(token))
        record = None if row is None else TokenRecord(row["edge_id"], row["created_at"], row["expires_at"],
                                                      row["used_at"], row["voided_at"])
        try:
            edge_id = check_token(record, now)
        except EnrolmentError as exc:
            if record is None:
                raise
            refused = (record.edge_id, exc)
        if refused is None:
            owner = await conn.fetchval(SQL_KEY_OWNER, kid, edge_id)
            if owner is not None:
                raise EnrolmentError(f"this box's key is already enrolled as edge {owner!r}: a key belongs to one edge")
            cert = issue_cert(edge_id)
            await conn.execute(SQL_USE_TOKEN, row["id"], now, ip)
            probe = await conn.fetchval(SQL_ENROL_EDGE, edge_id, public_key, kid, now, leaf_password_hash,
                                        hardware_id or None)
            await audit(conn, now, f"edge:{edge_id}", "edge.enrolled", "edge", edge_id, ip, key_id=kid,
                        hardware_id=hardware_id or None)
    if refused is not None:
        # A known token presented again (or late) is worth a line in the audit log: someone holds it.
        await audit(conn, now, f"edge:{refused[0]}", "edge.enrol.refused", "edge", refused[0], ip, reason=refused[1].code)
        raise refused[1]
    return Enrolled(edge_id, kid, cert, probe)


async def revoke_edge(conn: asyncpg.Connection, edge_id: str, actor: str, now: datetime, ip: str | None) -> bool:
    """Revoke an edge: its segments are refused from now on, its leaf credential is gone and its
    unused tokens are void. False when the edge is unknown; revoking twice is a no-op."""
    async with conn.transaction():
        row = await conn.fetchrow(SQL_EDGE_FOR_UPDATE, edge_id)
        if row is None:
            raise EdgeUnknown(f"no edge {edge_id!r}")
        revoked = await conn.fetchval(SQL_REVOKE, edge_id, now) is not None
        await conn.execute(SQL_VOID_TOKENS, edge_id, now)
        if revoked:
            await audit(conn, now, actor, "edge.revoked", "edge", edge_id, ip)
    return revoked


async def leaf_users(conn: asyncpg.Connection | asyncpg.Pool) -> list[tuple[str, str]]:
    """(edge id, bcrypt hash) of every edge that may hold a leaf connection now."""
    return [(r["edge_id"], r["leaf_password_hash"]) for r in await conn.fetch(SQL_LEAF_USERS)]
