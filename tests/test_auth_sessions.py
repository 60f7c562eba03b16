"""Refresh tokens over HTTP: rotation on every use, reuse revoking the whole family, expiry by
the fake clock, logout, the password change, and that only hashes are stored."""
from __future__ import annotations

import asyncio
import hashlib

import asyncpg
from aiohttp.test_utils import TestClient

from hub.auth import Auth
from shared.clock import FakeClock
from test_auth_helpers import (PASSWORD, add_user, assert_error, audit_rows, auth, bearer, clock, client,  # noqa: F401
                               login)


async def _refresh(client: TestClient, token: str, status: int = 200) -> dict:
    resp = await client.post("/api/v1/auth/refresh", json={"refresh_token": token})
    body = await resp.json()
    assert resp.status == status, body
    return body


async def test_refresh_rotates_the_token_on_every_use(client: TestClient, auth: Auth, clock: FakeClock) -> None:
    await add_user(auth, "op@example.com")
    first = await login(client, "op@example.com")
    clock.advance(600)
    second = await _refresh(client, first["refresh_token"])
    assert second["refresh_token"] != first["refresh_token"] and second["access_token"] != first["access_token"]
    assert second["token_type"] == "Bearer" and second["expires_in"] == 900
    assert (await client.get("/api/v1/auth/me", headers=bearer(second["access_token"]))).status == 200
    clock.advance(600)
    third = await _refresh(client, second["refresh_token"])
    assert (await client.get("/api/v1/auth/me", headers=bearer(third["access_token"]))).status == 200


async def test_reusing_a_spent_refresh_token_revokes_the_whole_family(client: TestClient, auth: Auth,
                                                                      db: asyncpg.Pool) -> None:
    user_id = await add_user(auth, "op@example.com")
    first = await login(client, "op@example.com")
    other_session = await login(client, "op@example.com")  # another device: not affected
    second = await _refresh(client, first["refresh_token"])

    refused = await _refresh(client, first["refresh_token"], status=401)  # the thief, or the victim
    assert_error(refused, "unauthorized")
    assert "already used" in refused["error"]["message"]
    # The newest token of the family and its access token stop working too.
    assert_error(await _refresh(client, second["refresh_token"], status=401), "unauthorized")
    assert (await client.get("/api/v1/auth/me", headers=bearer(second["access_token"]))).status == 401
    assert (await client.get("/api/v1/auth/me", headers=bearer(other_session["access_token"]))).status == 200
    await _refresh(client, other_session["refresh_token"])

    [reuse] = await audit_rows(db, "auth.refresh.reused")
    assert reuse["target_id"] == str(user_id) and reuse["details"]["ip"] == "127.0.0.1" and reuse["request_id"]
    assert await db.fetchval("SELECT count(*) FROM auth_sessions WHERE revoked_reason = 'refresh_reuse'") == 1


async def test_concurrent_use_of_one_refresh_token_lets_only_one_win(client: TestClient, auth: Auth) -> None:
    await add_user(auth, "op@example.com")
    first = await login(client, "op@example.com")
    answers = await asyncio.gather(*(client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
                                     for _ in range(2)))
    assert sorted(r.status for r in answers) == [200, 401]


async def test_a_refresh_token_expires_after_seven_days(client: TestClient, auth: Auth, db: asyncpg.Pool,
                                                        clock: FakeClock) -> None:
    await add_user(auth, "op@example.com")
    first = await login(client, "op@example.com")
    clock.advance(7 * 86400 - 1)
    second = await _refresh(client, first["refresh_token"])
    clock.advance(7 * 86400)
    assert "expired" in (await _refresh(client, second["refresh_token"], status=401))["error"]["message"]

    await auth.maintain()  # nothing in the family is alive any more: it is forgotten
    assert await db.fetchval("SELECT count(*) FROM auth_sessions") == 0
    assert await db.fetchval("SELECT count(*) FROM auth_refresh_tokens") == 0


async def test_only_hashes_of_refresh_tokens_are_stored(client: TestClient, auth: Auth, db: asyncpg.Pool) -> None:
    await add_user(auth, "op@example.com")
    pair = await login(client, "op@example.com")
    [stored] = await db.fetch("SELECT token_hash FROM auth_refresh_tokens")
    assert bytes(stored["token_hash"]) == hashlib.sha256(pair["refresh_token"].encode()).digest()
    dump = str([dict(r) for r in await db.fetch("SELECT * FROM auth_refresh_tokens")])
    dump += str([dict(r) for r in await db.fetch("SELECT * FROM auth_sessions")])
    assert pair["refresh_token"] not in dump


async def test_unknown_and_malformed_refresh_tokens(client: TestClient) -> None:
    assert_error(await _refresh(client, "no-such-token", status=401), "unauthorized")
    assert_error(await _refresh(client, "x" * 150, status=401), "unauthorized")
    resp = await client.post("/api/v1/auth/refresh", json={})
    assert resp.status == 422
    body = await resp.json()
    assert_error(body, "invalid")
    assert body["error"]["details"]["field"] == "refresh_token"


async def test_logout_ends_the_family_and_its_access_tokens(client: TestClient, auth: Auth, db: asyncpg.Pool) -> None:
    user_id = await add_user(auth, "op@example.com")
    pair = await login(client, "op@example.com")
    resp = await client.post("/api/v1/auth/logout", json={"refresh_token": pair["refresh_token"]},
                             headers={"X-Request-Id": "req-logout"})
    assert resp.status == 204
    assert (await client.get("/api/v1/auth/me", headers=bearer(pair["access_token"]))).status == 401
    assert_error(await _refresh(client, pair["refresh_token"], status=401), "unauthorized")
    [row] = await audit_rows(db, "auth.logout")
    assert row["actor"] == f"user:{user_id}" and row["request_id"] == "req-logout" and row["details"]["ip"]

    # Logging out again, or with a token nobody issued, answers the same and audits nothing more.
    for token in (pair["refresh_token"], "never-issued"):
        resp = await client.post("/api/v1/auth/logout", json={"refresh_token": token})
        assert resp.status == 204
    assert len(await audit_rows(db, "auth.logout")) == 1


async def test_must_change_password_allows_only_the_change_then_opens_everything(
        client: TestClient, auth: Auth, db: asyncpg.Pool) -> None:
    user_id = await add_user(auth, "admin@example.com", "ADMIN", must_change=True)
    pair = await login(client, "admin@example.com")
    assert pair["password_change_required"] is True
    headers = bearer(pair["access_token"])
    resp = await client.get("/api/v1/users", headers=headers)
    assert resp.status == 403
    assert_error(await resp.json(), "password_change_required")
    assert (await client.get("/api/v1/auth/me", headers=headers)).status == 200

    cases = [
        ({"current_password": "wrong password!", "new_password": "a brand new passphrase"}, 403, "invalid_credentials"),
        ({"current_password": PASSWORD, "new_password": "short"}, 422, "invalid"),
        ({"current_password": PASSWORD, "new_password": "ADMIN@example.com"}, 422, "invalid"),
        ({"current_password": PASSWORD, "new_password": PASSWORD}, 422, "invalid"),
    ]
    for body, status, code in cases:
        resp = await client.post("/api/v1/auth/password", json=body, headers=headers)
        assert resp.status == status, body
        assert_error(await resp.json(), code)

    resp = await client.post("/api/v1/auth/password", headers=headers,
                             json={"current_password": PASSWORD, "new_password": "a brand new passphrase"})
    assert resp.status == 200
    fresh = await resp.json()
    assert fresh["password_change_required"] is False
    # The old session has ended; the new pair works everywhere.
    assert (await client.get("/api/v1/auth/me", headers=headers)).status == 401
    assert_error(await _refresh(client, pair["refresh_token"], status=401), "unauthorized")
    assert (await client.get("/api/v1/users", headers=bearer(fresh["access_token"]))).status == 200
    await login(client, "admin@example.com", PASSWORD, status=401)
    await login(client, "admin@example.com", "a brand new passphrase")

    assert [r["target_id"] for r in await audit_rows(db, "auth.password.changed")] == [str(user_id)]
    assert len(await audit_rows(db, "auth.password.change_failed")) == 1
    assert "a brand new passphrase" not in str(await audit_rows(db))
