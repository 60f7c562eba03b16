"""Enrolment tokens and the edges registry (issue 10): single use, expiry, voiding, revocation,
re-keying, audit — the rules in plain functions, the registry on the real PostgreSQL."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import asyncpg
import pytest

from hub.edges import registry
from hub.edges.enrolment import (EdgeActive, EdgeUnknown, EnrolmentError, TokenExpired, TokenRecord, TokenUnknown,
                                 TokenUsed, TokenVoided, check_token, issue_token, token_hash)
from hub.ingest.edge_keys import EdgeKeyCache
from shared.signing import Signer

def _cert(edge_id: str) -> str:
    return f"cert for edge-{edge_id}"


async def _redeem(conn: asyncpg.Connection, *args: object) -> registry.Enrolled:
    return await registry.redeem_token(conn, *args, issue_cert=_cert)  # type: ignore[arg-type]


T0 = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)
ADMIN = "user:1"


def test_token_is_random_prefixed_and_only_its_hash_is_kept() -> None:
    a, b = issue_token(T0), issue_token(T0)
    assert a.token != b.token and a.token.startswith("vet_") and len(a.token) > 40
    assert a.token_hash == token_hash(a.token) and a.token.encode() not in a.token_hash
    assert a.expires_at == T0 + timedelta(hours=24)
    with pytest.raises(EnrolmentError):
        issue_token(T0, timedelta(seconds=10))
    with pytest.raises(EnrolmentError):
        issue_token(T0, timedelta(days=31))


@pytest.mark.parametrize(("record", "error", "words"), [
    (None, TokenUnknown, "not known"),
    (TokenRecord("s", T0, T0 + timedelta(hours=1), T0, None), TokenUsed, "already used"),
    (TokenRecord("s", T0, T0 + timedelta(hours=1), None, T0), TokenVoided, "replaced or the edge revoked"),
    (TokenRecord("s", T0 - timedelta(days=2), T0 - timedelta(days=1), None, None), TokenExpired, "expired"),
])
def test_a_refused_token_says_why(record: TokenRecord | None, error: type, words: str) -> None:
    with pytest.raises(error, match=words):
        check_token(record, T0)


def test_a_token_is_valid_until_its_expiry_exactly() -> None:
    record = TokenRecord("site-1", T0, T0 + timedelta(hours=24), None, None)
    assert check_token(record, T0 + timedelta(hours=24) - timedelta(microseconds=1)) == "site-1"
    with pytest.raises(TokenExpired):
        check_token(record, T0 + timedelta(hours=24))


async def _object(conn: asyncpg.Connection) -> int:
    return await conn.fetchval("INSERT INTO objects (name, type) VALUES ('Bank', 'BANK') RETURNING id")


async def _audit(conn: asyncpg.Connection) -> list[tuple[str, str, str]]:
    rows = await conn.fetch("SELECT actor, action, target_id FROM audit_log WHERE target_type = 'edge' ORDER BY id")
    return [(r["actor"], r["action"], r["target_id"]) for r in rows]


async def test_create_redeem_once_then_used(db: asyncpg.Pool) -> None:
    signer = Signer.generate()
    async with db.acquire() as conn:
        object_id = await _object(conn)
        new = await registry.create_edge(conn, "site-7", object_id, ADMIN, T0, "10.0.0.9")
        row = await conn.fetchrow("SELECT * FROM edges WHERE edge_id = 'site-7'")
        assert row["public_key"] is None and row["enrolled_at"] is None and row["object_id"] == object_id
        stored = await conn.fetchval("SELECT token_hash FROM edge_enrolment_tokens")
        assert bytes(stored) == new.token_hash  # the token itself is nowhere in the database
        assert await conn.fetchval("SELECT count(*) FROM edge_enrolment_tokens WHERE token_hash::text LIKE $1",
                                   f"%{new.token}%") == 0

        # A pending edge has no key: ingest does not know it (its segments are refused).
        cache = EdgeKeyCache(db)
        assert "site-7" not in await cache.keys_for({"site-7"})

        enrolled = await _redeem(conn, new.token, signer.public_raw, "$2b$hash", "hw-1",
                                               T0 + timedelta(minutes=5), "10.0.0.50")
        assert enrolled.edge_id == "site-7" and enrolled.key_id == signer.key_id
        assert await registry.leaf_users(conn) == [("site-7", "$2b$hash")]
        assert (await cache.keys_for({"site-7"}))["site-7"].key_id == signer.key_id

        with pytest.raises(TokenUsed, match="already used"):
            await _redeem(conn, new.token, Signer.generate().public_raw, "$2b$x", "",
                                        T0 + timedelta(minutes=6), "10.0.0.66")
        # The refused second use did not change the key.
        assert bytes(await conn.fetchval("SELECT public_key FROM edges WHERE edge_id = 'site-7'")) == signer.public_raw
        assert await _audit(conn) == [(ADMIN, "edge.token.issued", "site-7"), ("edge:site-7", "edge.enrolled", "site-7"),
                                      ("edge:site-7", "edge.enrol.refused", "site-7")]


async def test_expired_and_voided_tokens_are_refused_and_change_nothing(db: asyncpg.Pool) -> None:
    async with db.acquire() as conn:
        first = await registry.create_edge(conn, "site-8", None, ADMIN, T0, None, timedelta(hours=1))
        with pytest.raises(TokenExpired):
            await _redeem(conn, first.token, Signer.generate().public_raw, "$2b$h", "",
                                        T0 + timedelta(hours=2), None)
        second = await registry.create_edge(conn, "site-8", None, ADMIN, T0 + timedelta(hours=3), None)
        with pytest.raises(TokenVoided):  # a new token replaces the old one even before it expires
            await _redeem(conn, first.token, Signer.generate().public_raw, "$2b$h", "",
                                        T0 + timedelta(minutes=30), None)
        with pytest.raises(TokenUnknown):
            await _redeem(conn, "vet_" + "x" * 43, Signer.generate().public_raw, "$2b$h", "",
                                        T0 + timedelta(hours=3), None)
        assert await conn.fetchval("SELECT public_key FROM edges WHERE edge_id = 'site-8'") is None
        await _redeem(conn, second.token, Signer.generate().public_raw, "$2b$h", "",
                                    T0 + timedelta(hours=4), None)


async def test_an_active_edge_gets_no_token_until_revoked_then_is_rekeyed(db: asyncpg.Pool) -> None:
    old, new_key = Signer.generate(), Signer.generate()
    async with db.acquire() as conn:
        token = await registry.create_edge(conn, "site-9", None, ADMIN, T0, None)
        await _redeem(conn, token.token, old.public_raw, "$2b$old", "", T0, None)
        with pytest.raises(EdgeActive, match="revoke it first"):
            await registry.create_edge(conn, "site-9", None, ADMIN, T0, None)

        assert await registry.revoke_edge(conn, "site-9", ADMIN, T0 + timedelta(hours=1), "10.0.0.9")
        assert not await registry.revoke_edge(conn, "site-9", ADMIN, T0 + timedelta(hours=2), None)  # no-op
        assert await registry.leaf_users(conn) == []
        assert (await EdgeKeyCache(db).keys_for({"site-9"}))["site-9"].revoked
        with pytest.raises(EdgeUnknown):
            await registry.revoke_edge(conn, "nope", ADMIN, T0, None)

        again = await registry.create_edge(conn, "site-9", None, ADMIN, T0 + timedelta(hours=3), None)
        await _redeem(conn, again.token, new_key.public_raw, "$2b$new", "", T0 + timedelta(hours=3), None)
        row = await conn.fetchrow("SELECT key_id, revoked_at FROM edges WHERE edge_id = 'site-9'")
        assert row["key_id"] == new_key.key_id and row["revoked_at"] is None
        assert await registry.leaf_users(conn) == [("site-9", "$2b$new")]
        actions = [a for _, a, _ in await _audit(conn)]
        assert actions.count("edge.revoked") == 1 and actions.count("edge.enrolled") == 2


async def test_revoking_voids_unused_tokens_and_a_key_belongs_to_one_edge(db: asyncpg.Pool) -> None:
    signer = Signer.generate()
    async with db.acquire() as conn:
        pending = await registry.create_edge(conn, "site-10", None, ADMIN, T0, None)
        await registry.revoke_edge(conn, "site-10", ADMIN, T0, None)
        with pytest.raises(TokenVoided):
            await _redeem(conn, pending.token, signer.public_raw, "$2b$h", "", T0, None)

        a = await registry.create_edge(conn, "site-11", None, ADMIN, T0, None)
        await _redeem(conn, a.token, signer.public_raw, "$2b$h", "", T0, None)
        b = await registry.create_edge(conn, "site-12", None, ADMIN, T0, None)
        with pytest.raises(EnrolmentError, match="already enrolled as edge 'site-11'"):
            await _redeem(conn, b.token, signer.public_raw, "$2b$h", "", T0, None)
        # The refused token is still good for a box with its own key.
        await _redeem(conn, b.token, Signer.generate().public_raw, "$2b$h", "", T0, None)


async def test_bad_edge_ids_and_keys_are_refused(db: asyncpg.Pool) -> None:
    async with db.acquire() as conn:
        for bad in ("Site-1", "-x", "a.b", "", "x" * 64, "a b"):
            with pytest.raises(EnrolmentError, match="lower-case"):
                await registry.create_edge(conn, bad, None, ADMIN, T0, None)
        token = await registry.create_edge(conn, "site-13", None, ADMIN, T0, None)
        with pytest.raises(EnrolmentError, match="32 bytes"):
            await _redeem(conn, token.token, b"short", "$2b$h", "", T0, None)
        assert await conn.fetchval("SELECT used_at FROM edge_enrolment_tokens") is None


async def test_a_refused_certificate_request_does_not_spend_the_token(db: asyncpg.Pool) -> None:
    def refuse(_edge_id: str) -> str:
        raise EnrolmentError("csr_pem: the certificate signing request's key must be ECDSA P-256")

    async with db.acquire() as conn:
        token = await registry.create_edge(conn, "site-14", None, ADMIN, T0, None)
        with pytest.raises(EnrolmentError, match="ECDSA"):
            await registry.redeem_token(conn, token.token, Signer.generate().public_raw, "$2b$h", "", T0, None,
                                        issue_cert=refuse)
        assert await conn.fetchval("SELECT used_at FROM edge_enrolment_tokens") is None
        assert await conn.fetchval("SELECT public_key FROM edges WHERE edge_id = 'site-14'") is None
        enrolled = await _redeem(conn, token.token, Signer.generate().public_raw, "$2b$h", "", T0, None)
        assert enrolled.client_cert_pem == "cert for edge-site-14"
