"""Access tokens over HTTP: every kind of refused token gets 401 in the error shape; the signing
key rotates with the old key verifying until its grace ends; hub processes share the ring."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import jwt
import pytest
from aiohttp.test_utils import TestClient, make_mocked_request
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from hub.api.openapi import build_openapi
from hub.auth import Auth, KeyRingError
from hub.auth.keys import SKEW_S, KeyRing
from hub.auth.tokens import AccessTokens, TokenRejected
from hub.secret_box import SecretBox
from shared.clock import FakeClock
from test_auth_helpers import (add_user, assert_error, audit_rows, auth, bearer, clock, client,  # noqa: F401
                               login)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unsigned(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(claims).encode())


@pytest.fixture
async def session(client: TestClient, auth: Auth) -> dict[str, Any]:
    """A logged-in operator: the login answer and the claims of its access token."""
    await add_user(auth, "op@example.com")
    body = await login(client, "op@example.com")
    return {**body, "claims": jwt.decode(body["access_token"], options={"verify_signature": False})}


async def _signed(auth: Auth, claims: dict[str, Any], **changes: Any) -> str:
    key = await auth.keyring.signing_key()
    return jwt.encode({**claims, **changes}, key.private_key, algorithm="RS256", headers={"kid": key.kid})


async def test_a_valid_token_is_accepted(client: TestClient, session: dict[str, Any]) -> None:
    assert (await client.get("/api/v1/auth/me", headers=bearer(session["access_token"]))).status == 200


async def test_every_refused_token_kind_gets_401_in_the_error_shape(client: TestClient, auth: Auth,
                                                                    session: dict[str, Any]) -> None:
    claims = session["claims"]
    key = await auth.keyring.signing_key()
    now = int(auth.clock.now().timestamp())
    public_pem = key.public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    hs_input = _unsigned({"alg": "HS256", "typ": "JWT", "kid": key.kid}, claims)
    hs256 = hs_input + "." + _b64(hmac.new(public_pem, hs_input.encode(), hashlib.sha256).digest())
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    head, payload, sig = session["access_token"].split(".")
    forged_payload = _b64(json.dumps({**claims, "role": "MASTER"}).encode())
    # name: (headers, why the token layer refuses it; None when the header itself is wrong)
    cases: dict[str, tuple[dict[str, str], str | None]] = {
        "no header": ({}, None),
        "not bearer": ({"Authorization": f"Basic {session['access_token']}"}, None),
        "garbage": (bearer("not-a-jwt"), "malformed"),
        "alg none": (bearer(_unsigned({"alg": "none", "typ": "JWT", "kid": key.kid}, claims) + "."), "'none'"),
        "HS256 keyed with the public key": (bearer(hs256), "'HS256'"),
        "unknown kid": (bearer(jwt.encode(claims, key.private_key, algorithm="RS256", headers={"kid": "no-such"})),
                        "unknown or retired key"),
        "no kid": (bearer(jwt.encode(claims, key.private_key, algorithm="RS256")), "no key id"),
        "expired": (bearer(await _signed(auth, claims, iat=now - 1000, nbf=now - 1000, exp=now - SKEW_S - 1)),
                    "expired"),
        "not yet valid": (bearer(await _signed(auth, claims, nbf=now + SKEW_S + 60)), "not yet valid"),
        "issued in the future": (bearer(await _signed(auth, claims, iat=now + SKEW_S + 60)), "not yet valid"),
        "wrong issuer": (bearer(await _signed(auth, claims, iss="someone-else")), "InvalidIssuer"),
        "wrong audience": (bearer(await _signed(auth, claims, aud="another-api")), "InvalidAudience"),
        "missing jti": (bearer(await _signed(auth, {k: v for k, v in claims.items() if k != "jti"})), "MissingRequired"),
        "missing sid": (bearer(await _signed(auth, {k: v for k, v in claims.items() if k != "sid"})), "MissingRequired"),
        "non-numeric sub": (bearer(await _signed(auth, claims, sub="admin")), "malformed subject"),
        "string exp": (bearer(await _signed(auth, claims, exp=str(now + 100))), "exp is not a number"),
        "tampered payload": (bearer(f"{head}.{forged_payload}.{sig}"), "InvalidSignature"),
        "signed by another key under our kid": (
            bearer(jwt.encode(claims, other_key, algorithm="RS256", headers={"kid": key.kid})), "InvalidSignature"),
    }
    for name, (headers, reason) in cases.items():
        resp = await client.get("/api/v1/auth/me", headers=headers)
        assert resp.status == 401, name
        assert resp.headers["WWW-Authenticate"].startswith("Bearer"), name
        assert_error(await resp.json(), "unauthorized")
        if reason is not None:
            with pytest.raises(TokenRejected, match=reason):
                await auth.tokens.verify(headers["Authorization"].removeprefix("Bearer "))
    expired = await client.get("/api/v1/auth/me", headers=cases["expired"][0])
    assert "expired" in (await expired.json())["error"]["message"]


async def test_a_token_expires_with_the_clock(client: TestClient, clock: FakeClock, session: dict[str, Any]) -> None:
    headers = bearer(session["access_token"])
    clock.advance(900 + SKEW_S - 1)
    assert (await client.get("/api/v1/auth/me", headers=headers)).status == 200
    clock.advance(1)
    resp = await client.get("/api/v1/auth/me", headers=headers)
    assert resp.status == 401
    assert (await resp.json())["error"]["message"] == "the access token has expired"


async def test_rotation_keeps_the_old_key_verifying_until_it_retires(client: TestClient, auth: Auth, db: asyncpg.Pool,
                                                                     clock: FakeClock,
                                                                     session: dict[str, Any]) -> None:
    old = await auth.keyring.signing_key()
    old_token = session["access_token"]
    new_kid = await auth.keyring.rotate()
    assert new_kid is not None and new_kid != old.kid

    # Both keys are published, the old token still works, new tokens carry the new kid.
    for path in ("/api/v1/auth/jwks", "/.well-known/jwks.json"):
        listed = [k["kid"] for k in (await (await client.get(path)).json())["keys"]]
        assert listed == [new_kid, old.kid]
    assert (await client.get("/api/v1/auth/me", headers=bearer(old_token))).status == 200
    fresh = await login(client, "op@example.com")
    assert jwt.get_unverified_header(fresh["access_token"])["kid"] == new_kid

    # Just before the grace ends a token the old key signed still verifies; afterwards it does not.
    clock.advance(auth.keyring.grace.total_seconds() - 1)
    now = int(clock.now().timestamp())
    late = jwt.encode({**session["claims"], "iat": now, "nbf": now, "exp": now + 900}, old.private_key,
                      algorithm="RS256", headers={"kid": old.kid})
    assert (await client.get("/api/v1/auth/me", headers=bearer(late))).status == 200
    clock.advance(1)
    resp = await client.get("/api/v1/auth/me", headers=bearer(late))
    assert resp.status == 401
    assert_error(await resp.json(), "unauthorized")
    assert [k["kid"] for k in (await (await client.get("/api/v1/auth/jwks")).json())["keys"]] == [new_kid]

    assert await auth.keyring.retire() == [old.kid]
    assert await db.fetchval("SELECT count(*) FROM auth_signing_keys") == 1
    assert [r["target_id"] for r in await audit_rows(db, "auth.key.rotated")] == [new_kid]
    assert [r["target_id"] for r in await audit_rows(db, "auth.key.retired")] == [old.kid]


async def test_jwks_holds_only_public_keys_and_is_cacheable(client: TestClient, auth: Auth) -> None:
    resp = await client.get("/.well-known/jwks.json")
    assert resp.status == 200 and "max-age" in resp.headers["Cache-Control"]
    [jwk] = (await resp.json())["keys"]
    assert set(jwk) == {"kty", "n", "e", "kid", "use", "alg"}
    assert jwk["kty"] == "RSA" and jwk["alg"] == "RS256" and jwk["use"] == "sig"
    assert jwk == (await (await client.get("/api/v1/auth/jwks")).json())["keys"][0]
    public = jwt.PyJWK(jwk).key
    token = (await auth.tokens.issue(1, "OPERATOR", uuid.uuid4())).token
    assert jwt.decode(token, public, algorithms=["RS256"], audience="vigil-api", options={"verify_exp": False})


async def test_hub_processes_share_the_ring_through_the_database(auth: Auth, db: asyncpg.Pool, clock: FakeClock,
                                                                 tmp_path: Path) -> None:
    # A second process: its own ring, on the same database and secret file.
    box = SecretBox.from_file(tmp_path / "secret.key")
    other = KeyRing(db, box, clock, token_ttl_s=900, rotation_days=30)
    await other.start()
    assert (await other.signing_key()).kid == (await auth.keyring.signing_key()).kid
    other_tokens = AccessTokens(other, clock, issuer="vigil-hub", audience="vigil-api", ttl_s=900)

    new_kid = await auth.keyring.rotate()
    token = (await auth.tokens.issue(7, "ADMIN", uuid.uuid4())).token
    claims = await other_tokens.verify(token)  # an unseen kid makes it reload the ring
    assert claims.user_id == 7 and claims.role == "ADMIN"
    # The other process signs with the new key once its cache is due for a reload.
    clock.advance(60)
    assert (await other.signing_key()).kid == new_kid

    with pytest.raises(TokenRejected):
        await other_tokens.verify(jwt.encode({"sub": "7"}, rsa.generate_private_key(65537, 2048), algorithm="RS256",
                                             headers={"kid": "made-up"}))


async def test_rotation_when_due_happens_once_across_processes(auth: Auth, db: asyncpg.Pool, clock: FakeClock,
                                                               tmp_path: Path) -> None:
    other = KeyRing(db, SecretBox.from_file(tmp_path / "secret.key"), clock, token_ttl_s=900, rotation_days=30)
    await other.start()
    assert await auth.keyring.rotate(only_if_due=True) is None
    clock.advance(30 * 86400)
    rotated = [await auth.keyring.rotate(only_if_due=True), await other.rotate(only_if_due=True)]
    assert rotated[0] is not None and rotated[1] is None
    await auth.maintain()
    assert await db.fetchval("SELECT count(*) FROM auth_signing_keys") == 2
    clock.advance(auth.keyring.grace.total_seconds())
    await auth.maintain()
    assert await db.fetchval("SELECT count(*) FROM auth_signing_keys") == 1


async def test_a_ring_sealed_under_another_secret_file_is_refused(auth: Auth, db: asyncpg.Pool,
                                                                  clock: FakeClock) -> None:
    stranger = KeyRing(db, SecretBox.generate(), clock, token_ttl_s=900, rotation_days=30)
    with pytest.raises(KeyRingError, match="secret_file"):
        await stranger.start()


async def test_deactivated_users_token_and_ended_session_are_refused(client: TestClient, auth: Auth,
                                                                     db: asyncpg.Pool,
                                                                     session: dict[str, Any]) -> None:
    headers = bearer(session["access_token"])
    await db.execute("UPDATE users SET active = false")
    resp = await client.get("/api/v1/auth/me", headers=headers)
    assert resp.status == 401 and (await resp.json())["error"]["message"] == "the account is deactivated"
    await db.execute("UPDATE users SET active = true")
    await db.execute("UPDATE auth_sessions SET revoked_at = now()")
    resp = await client.get("/api/v1/auth/me", headers=headers)
    assert resp.status == 401 and "session has ended" in (await resp.json())["error"]["message"]


async def test_principal_carries_assigned_objects_for_assigned_only_roles(client: TestClient, auth: Auth,
                                                                          db: asyncpg.Pool) -> None:
    objects = [await db.fetchval("INSERT INTO objects (name) VALUES ($1) RETURNING id", f"site {i}") for i in range(3)]
    tech = await add_user(auth, "tech@example.com", "TECHNICIAN")
    await add_user(auth, "op@example.com", "OPERATOR")
    await db.execute("INSERT INTO user_object_assignments (user_id, object_id) VALUES ($1, $2), ($1, $3)",
                     tech, objects[0], objects[2])
    for email, expected in (("tech@example.com", frozenset({objects[0], objects[2]})), ("op@example.com", None)):
        token = (await login(client, email))["access_token"]
        principal = await auth.authenticator.authenticate(
            make_mocked_request("GET", "/api/v1/objects", headers=bearer(token)))
        assert principal.objects == expected and principal.email == email


async def test_the_router_fits_the_openapi_document(auth: Auth) -> None:
    doc = build_openapi([auth.router])
    assert {"/api/v1/auth/login", "/api/v1/auth/refresh", "/api/v1/auth/logout", "/api/v1/auth/jwks",
            "/.well-known/jwks.json", "/api/v1/auth/me", "/api/v1/auth/password", "/api/v1/users",
            "/api/v1/users/{id}", "/api/v1/users/{id}/objects"} <= set(doc["paths"])
    assert "security" not in doc["paths"]["/api/v1/auth/login"]["post"]
    assert doc["paths"]["/api/v1/users"]["post"]["security"] == [{"bearer": []}]
