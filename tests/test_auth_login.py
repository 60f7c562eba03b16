"""Login over HTTP on real PostgreSQL: the token pair, identical failures for unknown emails and
wrong passwords, the per-address delay and IP blocking driven by a fake clock, and their audit rows."""
from __future__ import annotations

import statistics
import time

from pathlib import Path

import asyncpg
import jwt
from aiohttp.test_utils import TestClient, TestServer

from hub.api.app import build_api
from hub.auth import Auth, build_auth
from hub.auth.passwords import Passwords
from shared.clock import FakeClock
from test_auth_helpers import (PASSWORD, add_user, assert_error, audit_rows, auth, auth_settings,  # noqa: F401
                               bearer, clock, client, login)


async def test_login_answers_a_token_pair_that_opens_the_api(client: TestClient, auth: Auth, db: asyncpg.Pool) -> None:
    user_id = await add_user(auth, "Op@Example.com", "OPERATOR")
    resp = await client.post("/api/v1/auth/login", json={"email": " op@example.COM ", "password": PASSWORD},
                             headers={"X-Request-Id": "req-login-1"})
    body = await resp.json()
    assert resp.status == 200, body
    assert body["token_type"] == "Bearer" and body["expires_in"] == 900 and body["refresh_expires_in"] == 604800
    assert body["password_change_required"] is False
    header = jwt.get_unverified_header(body["access_token"])
    assert header["alg"] == "RS256" and header["kid"] == (await auth.keyring.signing_key()).kid
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert set(claims) == {"sub", "role", "sid", "iat", "nbf", "exp", "iss", "aud", "jti"}
    assert claims["sub"] == str(user_id) and claims["role"] == "OPERATOR"
    assert claims["iss"] == "vigil-hub" and claims["aud"] == "vigil-api"
    assert claims["exp"] - claims["iat"] == 900 and claims["iat"] == int(auth.clock.now().timestamp())

    me = await client.get("/api/v1/auth/me", headers=bearer(body["access_token"]))
    assert me.status == 200
    assert (await me.json())["email"] == "op@example.com"

    [row] = await audit_rows(db, "auth.login")
    assert row["actor"] == f"user:{user_id}" and row["target_id"] == str(user_id)
    assert row["details"]["ip"] == "127.0.0.1" and row["request_id"] == "req-login-1"
    assert body["access_token"] not in str(await audit_rows(db)) and body["refresh_token"] not in str(await audit_rows(db))


async def test_unknown_email_and_wrong_password_get_the_same_answer(client: TestClient, auth: Auth,
                                                                    db: asyncpg.Pool, clock: FakeClock) -> None:
    await add_user(auth, "op@example.com")
    answers = []
    for email, password in [("nobody@example.com", PASSWORD), ("op@example.com", "wrong password!")]:
        resp = await client.post("/api/v1/auth/login", json={"email": email, "password": password})
        body = await resp.json()
        body["error"].pop("request_id")
        answers.append((resp.status, body, resp.headers.get("WWW-Authenticate")))
    assert answers[0] == answers[1]
    status, body, _ = answers[0]
    assert status == 401 and body["error"]["code"] == "invalid_credentials"

    failed = await audit_rows(db, "auth.login.failed")
    assert [r["details"]["reason"] for r in failed] == ["unknown_email", "wrong_password"]
    assert all(r["details"]["ip"] == "127.0.0.1" and r["request_id"] for r in failed)
    assert "wrong password!" not in str(failed)


async def test_an_unknown_email_costs_one_password_verification_like_a_known_one(
        client: TestClient, auth: Auth, clock: FakeClock, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    await add_user(auth, "op@example.com")
    seen: list[str | None] = []
    verify = auth.passwords._verify

    def spy(password_hash: str | None, password: str) -> bool:
        seen.append(password_hash)
        return verify(password_hash, password)

    monkeypatch.setattr(auth.passwords, "_verify", spy)
    await login(client, "nobody@example.com", status=401)
    await login(client, "op@example.com", "wrong password!", status=401)
    assert len(seen) == 2 and seen[0] is None and seen[1] is not None


async def test_unknown_email_and_wrong_password_take_comparable_time(db: asyncpg.Pool, clock: FakeClock,
                                                                     tmp_path: Path) -> None:
    # A realistic hasher cost, so the hash rather than the database dominates each answer.
    auth = await build_auth(db, auth_settings(tmp_path), clock,
                            passwords=Passwords(time_cost=2, memory_kib=16384, parallelism=1))
    await add_user(auth, "op@example.com")
    timings: dict[str, list[float]] = {"unknown": [], "wrong": []}
    async with TestClient(TestServer(build_api([auth.router], db, auth.authenticator))) as client:
        for _ in range(4):
            for kind, email in (("unknown", "nobody@example.com"), ("wrong", "op@example.com")):
                start = time.perf_counter()
                await login(client, email, "wrong password!", status=401)
                timings[kind].append(time.perf_counter() - start)
                clock.advance(20)  # stay under the IP limit of 5 failures a minute
    ratio = statistics.median(timings["unknown"]) / statistics.median(timings["wrong"])
    assert 0.5 < ratio < 2.0, timings


async def test_failures_from_an_address_delay_it_progressively(client: TestClient, auth: Auth,
                                                               db: asyncpg.Pool, clock: FakeClock) -> None:
    user_id = await add_user(auth, "op@example.com")
    for _ in range(9):  # delays after the 4th..9th failure: 1, 2, 4, 8, 16, 32 s
        await login(client, "op@example.com", "wrong password!", status=401)
        clock.advance(20)  # 3 a minute: the address limit is not what stops this
    [delayed] = await audit_rows(db, "auth.account.delayed")
    assert delayed["target_id"] == str(user_id) and delayed["details"]["ip"] == "127.0.0.1"
    assert delayed["request_id"] and delayed["details"]["failures"] == 4

    # Delayed: even the right password gets the ordinary failure answer, and is not counted.
    refused = await login(client, "op@example.com", status=401)
    assert_error(refused, "invalid_credentials")
    assert (await audit_rows(db, "auth.login.failed"))[-1]["details"]["reason"] == "delayed"
    clock.advance(11)  # the delay, set by the ninth failure 31 s ago, has 1 s left
    await login(client, "op@example.com", status=401)
    assert await db.fetchval("SELECT failures FROM auth_account_failures WHERE user_id = $1", user_id) == 9

    clock.advance(1)
    await login(client, "op@example.com")
    assert await db.fetchval("SELECT count(*) FROM auth_account_failures WHERE user_id = $1", user_id) == 0
    assert len(await audit_rows(db, "auth.account.delayed")) == 1


async def test_a_success_resets_the_consecutive_failure_count(client: TestClient, auth: Auth,
                                                              db: asyncpg.Pool, clock: FakeClock) -> None:
    await add_user(auth, "op@example.com")
    for round_ in range(2):
        for _ in range(3):  # the free failures: no delay yet
            await login(client, "op@example.com", "wrong password!", status=401)
            clock.advance(20)
        await login(client, "op@example.com")
    assert await audit_rows(db, "auth.account.delayed") == []


async def test_five_failures_in_a_minute_block_the_ip_for_a_minute(client: TestClient, auth: Auth,
                                                                   db: asyncpg.Pool, clock: FakeClock) -> None:
    await add_user(auth, "op@example.com")
    for i in range(5):
        await login(client, f"nobody{i}@example.com", status=401)
        clock.advance(10)
    [blocked] = await audit_rows(db, "auth.ip.blocked")
    assert blocked["target_type"] == "ip" and blocked["target_id"] == "127.0.0.1" and blocked["request_id"]

    resp = await client.post("/api/v1/auth/login", json={"email": "op@example.com", "password": PASSWORD})
    body = await resp.json()
    assert resp.status == 429
    assert_error(body, "too_many_attempts")
    assert resp.headers["Retry-After"] == "50" and body["error"]["details"] == {"retry_after_s": 50}

    clock.advance(49)
    assert (await client.post("/api/v1/auth/login", json={"email": "op@example.com", "password": PASSWORD})).status == 429
    clock.advance(1)  # a minute after the fifth failure
    await login(client, "op@example.com")
    assert len(await audit_rows(db, "auth.ip.blocked")) == 1


async def test_failures_spread_over_more_than_a_minute_do_not_block(client: TestClient, auth: Auth,
                                                                    db: asyncpg.Pool, clock: FakeClock) -> None:
    await add_user(auth, "op@example.com")
    for _ in range(12):
        await login(client, "nobody@example.com", status=401)
        clock.advance(16)  # never 5 within 60 s
    await login(client, "op@example.com")
    assert await audit_rows(db, "auth.ip.blocked") == []


async def test_deactivated_user_cannot_log_in(client: TestClient, auth: Auth, db: asyncpg.Pool) -> None:
    await add_user(auth, "gone@example.com", active=False)
    assert_error(await login(client, "gone@example.com", status=401), "invalid_credentials")
    assert (await audit_rows(db, "auth.login.failed"))[0]["details"]["reason"] == "inactive"


async def test_bad_login_bodies_get_4xx_in_the_error_shape(client: TestClient) -> None:
    cases = [
        (b'{"email": "a@b.c"}', 422, "invalid"),
        (b'{"email": "a@b.c", "password": ""}', 422, "invalid"),
        (b'{"email": "a@b.c", "password": "x", "extra": 1}', 422, "invalid"),
        (b"{", 400, "bad_json"),
        (b'{"email": "a\\u0000b@c.d", "password": "x"}', 422, "invalid"),
        (b'{"email": "a@b.c", "password": "' + b"x" * 2000 + b'"}', 422, "invalid"),
    ]
    for raw, status, code in cases:
        resp = await client.post("/api/v1/auth/login", data=raw, headers={"Content-Type": "application/json"})
        assert resp.status == status, raw
        assert_error(await resp.json(), code)
