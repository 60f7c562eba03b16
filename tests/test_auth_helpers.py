"""Fixtures and helpers shared by the tests/test_auth_*.py modules: auth built on the test
database with a fake clock and cheap Argon2 parameters, and an aiohttp test client on its router."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, AsyncIterator

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from hub.api.app import build_api
from hub.auth import Auth, build_auth
from hub.auth.passwords import Passwords
from hub.config import AuthSettings
from shared.clock import FakeClock

PASSWORD = "correct horse battery staple"
MASTER_EMAIL = "master@example.com"
MASTER_PASSWORD = "master password of the test hub"

SQL_ADD_USER = """
INSERT INTO users (email, role, password_hash, must_change_password, active, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING id
"""
SQL_AUDIT = "SELECT actor, action, target_type, target_id, details, request_id FROM audit_log ORDER BY id"


def cheap_passwords() -> Passwords:
    """Argon2id at a cost that keeps tests fast (production uses the RFC 9106 profile)."""
    return Passwords(time_cost=1, memory_kib=64, parallelism=1)


def auth_settings(tmp_path: Path, **kw: Any) -> AuthSettings:
    base: dict[str, Any] = {"secret_file": str(tmp_path / "secret.key"), "master_email": MASTER_EMAIL,
                            "master_password": MASTER_PASSWORD}
    return AuthSettings(**{**base, **kw})


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 3, 2, 8, 0, tzinfo=timezone.utc))


@pytest.fixture
async def auth(db: asyncpg.Pool, clock: FakeClock, tmp_path: Path) -> Auth:
    return await build_auth(db, auth_settings(tmp_path), clock, passwords=cheap_passwords())


@pytest.fixture
async def client(db: asyncpg.Pool, auth: Auth) -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(build_api([auth.router], db, auth.authenticator))) as c:
        yield c


async def add_user(auth: Auth, email: str, role: str = "OPERATOR", password: str = PASSWORD, *,
                   must_change: bool = False, active: bool = True) -> int:
    """A user inserted directly (not through the API), ready to log in."""
    return await auth.pool.fetchval(SQL_ADD_USER, email.lower(), role, await auth.passwords.hash(password), must_change,
                                    active, auth.clock.now())


async def login(client: TestClient, email: str, password: str = PASSWORD, status: int = 200) -> dict[str, Any]:
    """POST /api/v1/auth/login, asserting the status; the answer's JSON."""
    resp = await client.post("/api/v1/auth/login", json={"email": email, "password": password})
    body = await resp.json()
    assert resp.status == status, body
    return body


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def as_user(client: TestClient, auth: Auth, email: str, role: str) -> dict[str, str]:
    """Headers of a freshly created and logged-in user of `role`."""
    await add_user(auth, email, role)
    return bearer((await login(client, email))["access_token"])


def assert_error(body: dict[str, Any], status_code: str) -> None:
    """The one error shape, with the expected code and a request id."""
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "request_id", "details"}, body
    assert body["error"]["code"] == status_code, body
    assert body["error"]["request_id"], body


async def audit_rows(db: asyncpg.Pool, action: str | None = None) -> list[dict[str, Any]]:
    """Audit rows (details decoded), optionally only those of `action`."""
    rows = [dict(r, details=json.loads(r["details"])) for r in await db.fetch(SQL_AUDIT)]
    return [r for r in rows if action is None or r["action"] == action]
