"""Sign-in that an attacker cannot turn against the operators (issue 11), on real PostgreSQL:
failures slow down only the address that made them, the address block holds against a parallel
burst, X-Forwarded-For counts only from trusted proxies, and a session has an absolute lifetime."""
from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from hub.api.app import build_api
from hub.api.errors import ApiError
from hub.auth import Auth, build_auth
from hub.auth.passwords import Passwords
from shared.clock import FakeClock
from test_auth_helpers import (MASTER_EMAIL, PASSWORD, add_user, audit_rows, auth, auth_settings,  # noqa: F401
                               clock, client, login)

ADDRESS_X = "198.51.100.7"
ADDRESS_Y = "203.0.113.20"
BURST = 20


async def attempt(auth: Auth, email: str, password: str, ip: str) -> int:
    """The HTTP status a login through the service would answer."""
    try:
        await auth.login.login(email, password, ip)
    except ApiError as exc:
        return exc.status
    return 200


async def test_fifty_failures_from_one_address_do_not_lock_the_master_out_elsewhere(auth: Auth,
                                                                                      clock: FakeClock) -> None:
    await add_user(auth, MASTER_EMAIL, "MASTER")
    statuses = []
    for _ in range(50):
        statuses.append(await attempt(auth, MASTER_EMAIL, "wrong password!", ADDRESS_X))
        clock.advance(15)  # 4 a minute: under the address block, so every try reaches the account
    assert set(statuses) == {401}
    # X has earned a delay: even the right password is refused there ...
    assert await attempt(auth, MASTER_EMAIL, PASSWORD, ADDRESS_X) == 401
    # ... while the operator at Y gets in at once.
    assert await attempt(auth, MASTER_EMAIL, PASSWORD, ADDRESS_Y) == 200


class CountingPasswords(Passwords):
    """Cheap Argon2 that counts verifications and holds each until the burst has played out (every
    attempt either verifying or finished), so without the reservation all of them would verify."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_kib=64, parallelism=1)
        self.verified = 0
        self.finished = 0
        self.settled = asyncio.Event()

    def settle(self) -> None:
        if self.verified + self.finished >= BURST:
            self.settled.set()

    async def verify(self, password_hash: str | None, password: str) -> bool:
        self.verified += 1
        self.settle()
        await self.settled.wait()
        return await super().verify(password_hash, password)


async def test_a_parallel_burst_cannot_outrun_the_address_block(db: asyncpg.Pool, clock: FakeClock,
                                                                tmp_path: Path) -> None:
    passwords = CountingPasswords()
    auth = await build_auth(db, auth_settings(tmp_path), clock, passwords=passwords)
    await add_user(auth, "op@example.com")
    passwords.verified = 0  # add_user hashes; only the burst's verifications count

    async def one() -> int:
        try:
            return await attempt(auth, "op@example.com", "wrong password!", ADDRESS_X)
        finally:
            passwords.finished += 1
            passwords.settle()

    statuses = await asyncio.wait_for(asyncio.gather(*(one() for _ in range(BURST))), 30)
    assert passwords.verified <= 5, passwords.verified
    assert statuses.count(401) == passwords.verified and statuses.count(429) == BURST - passwords.verified
    # The block still stands for the right password.
    assert await attempt(auth, "op@example.com", PASSWORD, ADDRESS_X) == 429


async def failed_ips(db: asyncpg.Pool) -> list[str]:
    return [r["details"]["ip"] for r in await audit_rows(db, "auth.login.failed")]


async def test_a_spoofed_forwarded_for_from_an_untrusted_peer_is_ignored(client: TestClient, auth: Auth,
                                                                        db: asyncpg.Pool) -> None:
    await add_user(auth, "op@example.com")
    for i in range(5):  # a fresh "address" each time would dodge the block if the header counted
        resp = await client.post("/api/v1/auth/login", json={"email": "op@example.com", "password": "wrong!"},
                                 headers={"X-Forwarded-For": f"192.0.2.{i}"})
        assert resp.status == 401
    assert await failed_ips(db) == ["127.0.0.1"] * 5
    resp = await client.post("/api/v1/auth/login", json={"email": "op@example.com", "password": PASSWORD},
                             headers={"X-Forwarded-For": "192.0.2.99"})
    assert resp.status == 429


async def test_forwarded_for_from_a_trusted_proxy_names_the_client(db: asyncpg.Pool, clock: FakeClock,
                                                                   tmp_path: Path) -> None:
    settings = auth_settings(tmp_path, trusted_proxies=["127.0.0.0/8", "10.0.0.5"])
    auth = await build_auth(db, settings, clock, passwords=Passwords(time_cost=1, memory_kib=64, parallelism=1))
    await add_user(auth, "op@example.com")
    async with TestClient(TestServer(build_api([auth.router], db, auth.authenticator))) as client:
        # Right to left past our proxies (the peer 127.0.0.1 and 10.0.0.5); the left hop is the client's claim.
        for _ in range(5):
            resp = await client.post("/api/v1/auth/login", json={"email": "op@example.com", "password": "wrong!"},
                                     headers={"X-Forwarded-For": f"192.0.2.1, {ADDRESS_X}, 10.0.0.5"})
            assert resp.status == 401
        assert await failed_ips(db) == [ADDRESS_X] * 5
        blocked = await client.post("/api/v1/auth/login", json={"email": "op@example.com", "password": PASSWORD},
                                    headers={"X-Forwarded-For": ADDRESS_X})
        assert blocked.status == 429
        # The block is X's, not the proxy's: another client behind the same proxy gets in.
        resp = await client.post("/api/v1/auth/login", json={"email": "op@example.com", "password": PASSWORD},
                                 headers={"X-Forwarded-For": ADDRESS_Y})
        assert resp.status == 200
        [ok] = await audit_rows(db, "auth.login")
        assert ok["details"]["ip"] == ADDRESS_Y


def test_trusted_proxies_must_be_addresses_or_networks(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="trusted_proxies"):
        auth_settings(tmp_path, trusted_proxies=["proxy.example.com"])


async def test_a_session_cannot_be_refreshed_past_its_absolute_lifetime(client: TestClient, auth: Auth,
                                                                        clock: FakeClock) -> None:
    await add_user(auth, "op@example.com")
    refresh = (await login(client, "op@example.com"))["refresh_token"]
    for _ in range(4):  # each refresh inside the 7-day window, up to day 24
        clock.advance(timedelta(days=6).total_seconds())
        resp = await client.post("/api/v1/auth/refresh", json={"refresh_token": refresh})
        assert resp.status == 200
        refresh = (await resp.json())["refresh_token"]
    clock.advance(timedelta(days=6).total_seconds())  # day 30: the token itself is 6 days old
    resp = await client.post("/api/v1/auth/refresh", json={"refresh_token": refresh})
    assert resp.status == 401
    assert "expired" in (await resp.json())["error"]["message"]
