"""The login in front of the edge's local page and API (issue 10): site accounts (Argon2id), the
session cookie (HttpOnly, SameSite=Strict), the on-box tools' bearer token, brute-force
throttling, who may do what, the accounts CLI, and `who` in journaled commands.

The rules are tested as pure functions with a fake clock; the API with aiohttp's test client in
front of a real Satel link to an emulated panel, so "nothing was sent" is the panel's own word."""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest
from aiohttp.test_utils import TestClient, TestServer

from edge.journal import Journal
from edge.links.satel import LinkState, SatelLink
from edge.local_api import LOGIN_PAGE, build_app
from edge.local_auth import (
    ABSOLUTE_S, FREE_FAILURES, HASH_SLOTS, IDLE_S, LOCK_FAILURES, LOCK_S, MAX_SESSIONS, SESSION_COOKIE, Action,
    LocalAuth, LoginThrottle, Principal, Sessions, may, read_cli_token, retry_after, session_expired, token_path,
)
from edge.site_accounts import (
    ACCOUNTS_FILE, AccountError, AccountExists, AccountStore, AccountStoreError, Role, create_account,
)
from firmware_bridges.satel.emulator import SAMPLE_USER_CODE, SatelEmulator
from firmware_bridges.satel.protocol import PartitionState
from shared.clock import FakeClock
from shared.envelope import decode_envelope
from support.browser import browser_page
from support.edge_login import PASSWORD
from support.panel_link import panel_link_up

CODE = SAMPLE_USER_CODE
EVIL = "http://evil.example"


# --- the rules, pure ------------------------------------------------------------------------------


def test_who_may_do_what() -> None:
    guard = {Action.VIEW, Action.ARM_DISARM}
    installer = guard | {Action.RELEASE, Action.OUTPUTS, Action.BYPASS}
    expected = {Role.GUARD: guard, Role.INSTALLER: installer, Role.ADMIN: installer | {Action.MANAGE_ACCOUNTS}}
    for role, allowed in expected.items():
        assert {action for action in Action if may(role, action)} == allowed, role
    assert Principal("jan", Role.INSTALLER).who == "installer:jan"
    assert Principal("ola", Role.GUARD).as_dict() == {"name": "ola", "role": "guard", "who": "guard:ola",
                                                      "may": ["view", "arm_disarm"]}


def test_a_session_ends_when_idle_or_too_old() -> None:
    assert not session_expired(0, 0, IDLE_S - 1) and session_expired(0, 0, IDLE_S)
    assert not session_expired(0, ABSOLUTE_S - 10, ABSOLUTE_S - 1) and session_expired(0, ABSOLUTE_S - 10, ABSOLUTE_S)

    clock = FakeClock()
    sessions = Sessions(clock)
    token = sessions.open("jan")
    clock.advance(IDLE_S - 1)
    assert sessions.find(token) is not None  # used: the idle time starts again
    clock.advance(IDLE_S - 1)
    assert sessions.find(token) is not None
    clock.advance(IDLE_S)
    assert sessions.find(token) is None and len(sessions) == 0

    token = sessions.open("jan")
    used = 0.0
    while used + IDLE_S / 2 < ABSOLUTE_S:
        clock.advance(IDLE_S / 2)
        used += IDLE_S / 2
        assert sessions.find(token) is not None
    clock.advance(ABSOLUTE_S - used)
    assert sessions.find(token) is None, "12 h in all, however busy"
    assert sessions.find("never-issued") is None


def test_sessions_are_bounded_and_end_with_their_account() -> None:
    clock = FakeClock()
    sessions = Sessions(clock)
    first = sessions.open("first")
    clock.advance(1)
    others = [sessions.open(f"u{n}") for n in range(MAX_SESSIONS - 1)]
    clock.advance(1)
    assert sessions.find(others[0]) is not None  # used: no longer the least recently used…
    newest = sessions.open("newest")
    assert len(sessions) == MAX_SESSIONS
    assert sessions.find(first) is None, "…so the one unused longest made room"
    assert sessions.find(newest) is not None and sessions.find(others[0]) is not None
    again = sessions.open("u3")
    assert sessions.close_account("u3") == 2 and sessions.find(again) is None and sessions.find(others[3]) is None
    sessions.close(newest)
    assert sessions.find(newest) is None


def test_failed_logins_cost_ever_longer_waits_then_a_lock() -> None:
    waits = [retry_after(n, 100.0, 100.0) for n in range(12)]
    assert waits == [0, 0, 0, 1, 2, 4, 8, 16, 32, 60, LOCK_S, LOCK_S]
    assert retry_after(5, 100.0, 103.0) == 1 and retry_after(5, 100.0, 104.0) == 0

    clock = FakeClock()
    throttle = LoginThrottle(clock)
    for _ in range(FREE_FAILURES):
        assert throttle.wait("10.0.0.9") == 0
        throttle.failed("10.0.0.9")
    assert throttle.wait("10.0.0.9") == 1 and throttle.wait("10.0.0.7") == 0, "per address"
    throttle.succeeded("10.0.0.9")
    assert throttle.wait("10.0.0.9") == 0, "a success forgets the failures"
    for _ in range(LOCK_FAILURES):
        throttle.failed("10.0.0.9")
    assert throttle.wait("10.0.0.9") == LOCK_S
    clock.advance(LOCK_S)
    assert throttle.wait("10.0.0.9") == 0
    throttle.failed("10.0.0.9")
    assert throttle.wait("10.0.0.9") == 0, "a quarter-hour of quiet starts the count afresh"


# --- accounts -------------------------------------------------------------------------------------


def test_accounts_are_checked_hashed_and_private(tmp_path: Path) -> None:
    account = create_account(tmp_path, "  Jan.Kowalski ", PASSWORD, "installer")
    assert (account.name, account.role, account.active) == ("jan.kowalski", Role.INSTALLER, True)
    assert account.password_hash.startswith("$argon2id$") and PASSWORD not in account.password_hash
    path = tmp_path / ACCOUNTS_FILE
    assert path.stat().st_mode & 0o777 == 0o600
    assert PASSWORD.encode() not in path.read_bytes()
    for name, password, role, message in [
        ("jan.kowalski", PASSWORD, "guard", "already an account 'jan.kowalski'"),
        ("ola", "short pw!", "guard", "at least 10 characters"),
        ("ola", "x" * 257, "guard", "at most 256 characters"),
        ("ola", PASSWORD, "root", "role must be one of admin, installer, guard"),
        ("installer:ola", PASSWORD, "guard", "must be 1..64 letters"),
        ("", PASSWORD, "guard", "must be 1..64 letters"),
        ("local-cli", PASSWORD, "installer", "the name the on-box tools act under"),
    ]:
        with pytest.raises(AccountError, match=message):
            create_account(tmp_path, name, password, role)
    assert [a.name for a in AccountStore(tmp_path).all()] == ["jan.kowalski"]
    with pytest.raises(AccountExists):
        create_account(tmp_path, "JAN.KOWALSKI", PASSWORD, "admin")

    path.chmod(0o644)
    with pytest.raises(AccountStoreError, match="must be 600"):
        AccountStore(tmp_path).all()
    path.chmod(0o600)
    path.write_bytes(b"not a database at all, just some bytes" * 100)
    with pytest.raises(AccountStoreError, match="cannot use the site accounts"):
        AccountStore(tmp_path).get("jan.kowalski")


def test_the_token_file_is_private_and_new_at_every_start(tmp_path: Path) -> None:
    first = LocalAuth.start(tmp_path)
    path = token_path(tmp_path)
    token = read_cli_token(path)
    assert path.stat().st_mode & 0o777 == 0o600 and len(token) >= 40
    LocalAuth.start(tmp_path)
    assert read_cli_token(path) != token
    first.stop()
    assert not path.exists()


# --- the API in front of a real link ----------------------------------------------------------------


@dataclass
class Edge:
    client: TestClient
    clock: FakeClock
    data_dir: Path
    link: SatelLink
    journal: Journal
    emulator: SatelEmulator
    token: str

    @property
    def base(self) -> str:
        return f"/api/v1/links/satel/{self.link.panel_id}"

    def armed(self) -> frozenset[int]:
        return self.emulator.panel.partition_set(PartitionState.ARMED)

    async def post(self, path: str, body: Any, **headers: str) -> tuple[int, dict[str, Any]]:
        response = await self.client.post(path, data=json.dumps(body),
                                          headers={"Content-Type": "application/json", **headers})
        return response.status, await response.json()

    async def get(self, path: str, **headers: str) -> tuple[int, Any]:
        response = await self.client.get(path, headers=headers)
        return response.status, await response.json()

    async def log_in(self, name: str, role: str | None = None, password: str = PASSWORD) -> tuple[int, dict[str, Any]]:
        """Log in as `name` (created first with `role`, when given)."""
        if role is not None:
            create_account(self.data_dir, name, PASSWORD, role)
        return await self.post("/api/v1/login", {"username": name, "password": password})

    def log_out_locally(self) -> None:
        """Forget the cookie on this side only (the server's session lives on)."""
        self.client.session.cookie_jar.clear()


@pytest.fixture
async def edge(tmp_path: Path) -> AsyncIterator[Edge]:
    clock = FakeClock()
    async with panel_link_up(tmp_path) as (journal, emulator, link):
        data_dir = tmp_path / "edge"
        auth = LocalAuth.start(data_dir, clock)

        def status() -> dict[str, Any]:  # what the agent's page shows, minus the hub side
            return {"edge_id": "site-1", "journal": journal.stats(), "refusal": {},
                    "forwarder": {"lanes": {}, "last_error": None}, "nats": {"connected": False},
                    "links": {"satel": [link.status()]}}

        app = build_app(status, auth, {link.panel_id: link})
        async with TestClient(TestServer(app)) as client:
            yield Edge(client, clock, data_dir, link, journal, emulator, read_cli_token(token_path(data_dir)))


def _error(body: dict[str, Any], code: str) -> dict[str, Any]:
    error = body["error"]
    assert error["code"] == code and error["message"] and error["request_id"], body
    return error


async def test_without_a_login_nothing_but_health_and_metrics_answers(edge: Edge) -> None:
    status, body = await edge.post(f"{edge.base}/arm", {"partitions": [1], "code": CODE})
    assert status == 401 and "log in" in _error(body, "login_required")["message"]
    assert edge.armed() == frozenset(), "nothing reached the panel"
    for path in ("/api/v1/status", "/api/v1/links/satel", f"{edge.base}/diagnostics", "/api/v1/me",
                 "/api/v1/accounts", "/api/v1/no-such-thing", "/api/v1/login", "/api/v1%2Fstatus", "/healthz/"):
        status, body = await edge.get(path)
        assert status == 401 and _error(body, "login_required"), path
    for path, request in [(f"{edge.base}/release", {"minutes": 5, "why": "x"}), (f"{edge.base}/resume", {}),
                          ("/api/v1/accounts", {"username": "eve", "password": PASSWORD, "role": "admin"})]:
        status, body = await edge.post(path, request)
        assert status == 401 and _error(body, "login_required"), path
    assert not AccountStore(edge.data_dir).path.exists() or AccountStore(edge.data_dir).get("eve") is None
    assert edge.link.link_state is LinkState.UP
    for path in ("/healthz", "/metrics"):
        assert (await edge.client.get(path)).status == 200, path
    page = await edge.client.get("/")
    text = await page.text()
    assert page.status == 200 and text == LOGIN_PAGE and '<form id="login">' in text
    # The login page works offline: nothing it needs comes from elsewhere.
    assert "src=" not in text and "href=" not in text and "@import" not in text


async def test_a_wrong_password_gets_401_and_no_cookie(edge: Edge) -> None:
    create_account(edge.data_dir, "jan", PASSWORD, "installer")
    create_account(edge.data_dir, "ex", PASSWORD, "installer")
    await asyncio.to_thread(AccountStore(edge.data_dir).disable, "ex", "2026-01-01T00:00:00+00:00")
    for name, password in [("jan", PASSWORD + "!"), ("nobody", PASSWORD), ("ex", PASSWORD), ("local-cli", PASSWORD),
                           ("jan", PASSWORD * 100), ("x" * 500, PASSWORD)]:
        response = await edge.client.post("/api/v1/login", json={"username": name, "password": password})
        body = await response.json()
        assert response.status == 401, name
        assert _error(body, "invalid_credentials")["message"] == "wrong account name or password", name
        assert "Set-Cookie" not in response.headers and not edge.client.session.cookie_jar.filter_cookies(
            edge.client.make_url("/")), name
        edge.clock.advance(LOCK_S)  # keep the throttle out of this test
    status, body = await edge.post("/api/v1/login", {"username": "jan"})
    assert status == 400 and "username and password must be strings" in _error(body, "bad_request")["message"]


async def test_the_session_cookie_is_httponly_and_samesite_strict(edge: Edge) -> None:
    create_account(edge.data_dir, "ola", PASSWORD, "guard")
    response = await edge.client.post("/api/v1/login", json={"username": "Ola", "password": PASSWORD})
    assert response.status == 200
    assert await response.json() == {"name": "ola", "role": "guard", "who": "guard:ola", "may": ["view", "arm_disarm"]}
    [header] = response.headers.getall("Set-Cookie")
    attributes = [part.strip() for part in header.split(";")]
    assert attributes[0].startswith(f"{SESSION_COOKIE}=") and len(attributes[0]) > len(SESSION_COOKIE) + 40
    lowered = {a.lower() for a in attributes[1:]}
    assert {"httponly", "samesite=strict", "path=/"} <= lowered
    assert "secure" not in lowered, "served over plain HTTP here: a Secure cookie would never come back"
    assert not any(a.startswith(("expires", "max-age")) for a in lowered), "it ends with the browser"

    assert await edge.get("/api/v1/me") == (200, {"name": "ola", "role": "guard", "who": "guard:ola",
                                                   "may": ["view", "arm_disarm"]})
    page = await (await edge.client.get("/")).text()
    assert "guard:ola" in page and 'id="logout"' in page and '<form id="login">' not in page
    status, body = await edge.post("/api/v1/logout", {})
    assert (status, body) == (200, {"logged_out": True})
    status, body = await edge.get("/api/v1/status")
    assert status == 401 and _error(body, "login_required")


async def test_a_logged_out_session_token_is_dead_on_the_server_too(edge: Edge) -> None:
    await edge.log_in("ola", "guard")
    [cookie] = edge.client.session.cookie_jar.filter_cookies(edge.client.make_url("/")).values()
    stolen = cookie.value
    assert (await edge.post("/api/v1/logout", {}))[0] == 200
    edge.log_out_locally()
    status, body = await edge.get("/api/v1/status", Cookie=f"{SESSION_COOKIE}={stolen}")
    assert status == 401 and "session has ended" in _error(body, "login_required")["message"]


async def test_repeated_failures_slow_an_address_down_then_lock_it(edge: Edge) -> None:
    create_account(edge.data_dir, "jan", PASSWORD, "installer")
    wrong = {"username": "jan", "password": "not the password"}
    for _ in range(FREE_FAILURES):
        assert (await edge.post("/api/v1/login", wrong))[0] == 401
    for failures in range(FREE_FAILURES, LOCK_FAILURES):
        response = await edge.client.post("/api/v1/login", json={"username": "jan", "password": PASSWORD})
        wait = retry_after(failures, 0, 0)
        assert response.status == 429, "the right password waits its turn too"
        assert response.headers["Retry-After"] == str(round(wait))
        assert _error(await response.json(), "too_many_attempts")["details"] == {"retry_after_s": round(wait)}
        edge.clock.advance(wait)
        assert (await edge.post("/api/v1/login", wrong))[0] == 401
    status, body = await edge.post("/api/v1/login", {"username": "jan", "password": PASSWORD})
    assert status == 429 and body["error"]["details"]["retry_after_s"] == LOCK_S
    edge.clock.advance(LOCK_S - 1)
    assert (await edge.post("/api/v1/login", {"username": "jan", "password": PASSWORD}))[0] == 429
    edge.clock.advance(1)
    assert (await edge.post("/api/v1/login", {"username": "jan", "password": PASSWORD}))[0] == 200
    assert (await edge.post("/api/v1/login", wrong))[0] == 401, "the success forgot the failures"


async def test_a_burst_of_logins_runs_few_password_checks(edge: Edge) -> None:
    """Many wrong logins at once: the queued ones meet the failures of those before them, so only
    a handful cost an Argon2 check (the agent's device links share the event loop)."""
    create_account(edge.data_dir, "jan", PASSWORD, "installer")
    answers = await asyncio.gather(*(edge.post("/api/v1/login", {"username": "jan", "password": f"guess {n}"})
                                     for n in range(12)))
    statuses = sorted(status for status, _ in answers)
    assert set(statuses) == {401, 429}
    assert statuses.count(401) <= FREE_FAILURES + HASH_SLOTS - 1, statuses


async def test_a_cross_site_text_plain_disarm_with_a_valid_cookie_is_403(edge: Edge) -> None:
    await edge.log_in("ola", "guard")
    status, body = await edge.post(f"{edge.base}/arm", {"partitions": [1], "code": CODE})
    assert (status, body["result"]) == (200, "ACK") and edge.armed() == {1}
    attack = json.dumps({"partitions": [1], "code": CODE})
    for headers in ({"Content-Type": "text/plain", "Origin": EVIL},
                    {"Content-Type": "application/x-www-form-urlencoded", "Origin": EVIL},
                    {"Content-Type": "application/json", "Origin": EVIL}):
        response = await edge.client.post(f"{edge.base}/disarm", data=attack, headers=headers)
        assert response.status == 403 and _error(await response.json(), "cross_origin"), headers
    assert edge.armed() == {1}, "still armed"
    # A cross-site login is refused the same way (no logging a visitor in to the attacker's account).
    response = await edge.client.post("/api/v1/login", data=json.dumps({"username": "ola", "password": PASSWORD}),
                                      headers={"Content-Type": "text/plain", "Origin": EVIL})
    assert response.status == 403 and "Set-Cookie" not in response.headers


async def test_a_disarm_without_the_user_code_is_400_even_logged_in(edge: Edge) -> None:
    await edge.log_in("ola", "guard")
    assert (await edge.post(f"{edge.base}/arm", {"partitions": [1], "code": CODE}))[0] == 200
    status, body = await edge.post(f"{edge.base}/disarm", {"partitions": [1]})
    assert status == 400 and "user code" in _error(body, "user_code_required")["message"]
    assert body["error"]["details"] == {} and edge.armed() == {1}


async def test_a_guard_may_arm_but_not_release_switch_or_manage(edge: Edge) -> None:
    await edge.log_in("ola", "guard")
    for path, request in [("release", {"minutes": 5, "why": "DLOADX"}), ("resume", {}),
                          ("outputs", {"outputs": [2], "on": True, "code": CODE}),
                          ("bypass", {"zones": [4], "code": CODE})]:
        status, body = await edge.post(f"{edge.base}/{path}", request)
        assert status == 403 and "a guard account may not" in _error(body, "forbidden")["message"], path
    assert edge.link.link_state is LinkState.UP and edge.link.release_info is None
    assert (await edge.get("/api/v1/accounts"))[0] == 403
    status, _ = await edge.post("/api/v1/accounts", {"username": "eve", "password": PASSWORD, "role": "admin"})
    assert status == 403 and AccountStore(edge.data_dir).get("eve") is None
    assert (await edge.get(f"{edge.base}/diagnostics"))[0] == 200
    status, body = await edge.post(f"{edge.base}/clear-alarm", {"partitions": [1], "code": CODE})
    assert (status, body["result"]) == (200, "ACK")


async def test_the_on_box_token_gets_the_tools_in_and_a_wrong_one_does_not(edge: Edge) -> None:
    status, body = await edge.get("/api/v1/me", Authorization=f"Bearer {edge.token}")
    assert (status, body["who"], body["role"]) == (200, "local-cli", "installer")
    status, body = await edge.get("/api/v1/status", Authorization=f"Bearer {edge.token}")
    assert (status, body["edge_id"]) == (200, "site-1")
    status, body = await edge.post(f"{edge.base}/release", {"minutes": 5, "who": "Jan", "why": "WO-9"},
                                   Authorization=f"Bearer {edge.token}")
    assert status == 200 and body["released"]["who"] == "local-cli (Jan)"
    assert (await edge.post(f"{edge.base}/resume", {}, Authorization=f"Bearer {edge.token}"))[0] == 200
    for header in (f"Bearer {edge.token}x", "Bearer ", f"Basic {edge.token}", edge.token):
        status, body = await edge.get("/api/v1/status", Authorization=header)
        assert status == 401 and _error(body, "invalid_token"), header
    # A bearer request without a cookie is no browser's: still JSON-only for state changes.
    response = await edge.client.post(f"{edge.base}/resume", data="{}",
                                      headers={"Authorization": f"Bearer {edge.token}", "Content-Type": "text/plain"})
    assert response.status == 403
    # The token is the agent's alone: admin rights (the accounts) are not in it.
    assert (await edge.get("/api/v1/accounts", Authorization=f"Bearer {edge.token}"))[0] == 403


async def test_a_session_expires_on_the_injected_clock(edge: Edge) -> None:
    await edge.log_in("ola", "guard")
    edge.clock.advance(IDLE_S - 1)
    assert (await edge.get("/api/v1/status"))[0] == 200
    edge.clock.advance(IDLE_S - 1)
    assert (await edge.get("/api/v1/status"))[0] == 200
    edge.clock.advance(IDLE_S)
    status, body = await edge.get("/api/v1/status")
    assert status == 401 and "session has ended" in _error(body, "login_required")["message"]
    page = await (await edge.client.get("/")).text()
    assert page == LOGIN_PAGE

    assert (await edge.log_in("ola"))[0] == 200
    for _ in range(int(ABSOLUTE_S // (IDLE_S / 2)) - 1):
        edge.clock.advance(IDLE_S / 2)
        assert (await edge.get("/api/v1/me"))[0] == 200
    edge.clock.advance(IDLE_S / 2)
    assert (await edge.get("/api/v1/me"))[0] == 401, "12 h in all"


async def test_an_admin_manages_accounts_and_a_disabled_accounts_session_stops(edge: Edge) -> None:
    await edge.log_in("boss", "admin")
    status, body = await edge.post("/api/v1/accounts", {"username": "Piotr", "password": PASSWORD, "role": "installer"})
    assert status == 201 and (body["name"], body["role"], body["disabled"]) == ("piotr", "installer", False)
    status, body = await edge.post("/api/v1/accounts", {"username": "piotr", "password": PASSWORD, "role": "guard"})
    assert status == 409 and _error(body, "account_exists")
    status, body = await edge.post("/api/v1/accounts", {"username": "kasia", "password": "short", "role": "guard"})
    assert status == 400 and "at least 10 characters" in _error(body, "bad_request")["message"]
    status, body = await edge.post("/api/v1/accounts", {"username": "kasia", "password": PASSWORD, "role": "owner"})
    assert status == 400 and "role must be one of" in body["error"]["message"]
    status, listing = await edge.get("/api/v1/accounts")
    assert status == 200 and [(a["name"], a["role"]) for a in listing] == [("boss", "admin"), ("piotr", "installer")]
    assert "password_hash" not in json.dumps(listing) and "$argon2" not in json.dumps(listing)

    # piotr logs in elsewhere (a browser of his own), then the admin disables him.
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as other:
        login = {"username": "piotr", "password": PASSWORD}
        async with other.post(edge.client.make_url("/api/v1/login"), json=login) as response:
            assert response.status == 200
        async with other.get(edge.client.make_url("/api/v1/status")) as response:
            assert response.status == 200
        status, body = await edge.post("/api/v1/accounts/piotr/disable", {})
        assert status == 200 and body["disabled"] and body["disabled_at"]
        async with other.get(edge.client.make_url("/api/v1/status")) as response:
            assert response.status == 401 and _error(await response.json(), "login_required")
        async with other.post(edge.client.make_url("/api/v1/login"), json=login) as response:
            assert response.status == 401
    status, body = await edge.post("/api/v1/accounts/nobody/disable", {})
    assert status == 404 and _error(body, "not_found")


async def test_a_journaled_command_names_the_account(edge: Edge) -> None:
    await edge.log_in("ola", "guard")
    assert (await edge.post(f"{edge.base}/arm", {"partitions": [1], "code": CODE}))[0] == 200
    edge.log_out_locally()
    assert (await edge.post(f"{edge.base}/disarm", {"partitions": [1], "code": "9999"}))[0] == 401
    await edge.log_in("jan", "installer")
    assert (await edge.post(f"{edge.base}/disarm", {"partitions": [1], "code": "9999"}))[0] == 409  # wrong code
    assert (await edge.post(f"{edge.base}/outputs", {"outputs": [2], "on": True, "code": CODE},
                            Authorization=f"Bearer {edge.token}"))[0] == 200
    rows = [row for lane in ("evt", "alarm") for row in await edge.journal.read_unforwarded(lane, 0, 10_000, 1 << 30)]
    commands = sorted((env for env in map(decode_envelope, (row.envelope for row in rows)) if env.kind == "satel.command"),
                      key=lambda env: env.seq)
    bodies = [msgspec.json.decode(env.body) for env in commands]
    assert [(b["command"], b["who"], b["result"]) for b in bodies] == [
        ("arm mode 0", "guard:ola", "ACK"), ("disarm", "installer:jan", "NACK"), ("outputs on", "local-cli", "ACK")]
    assert all("127.0.0.1" not in b["who"] and CODE not in json.dumps(b) for b in bodies)


# --- python -m edge accounts ----------------------------------------------------------------------


def _accounts_cli(data_dir: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    env |= {"VIGIL_EDGE_EDGE_ID": "site-1", "VIGIL_EDGE_DATA_DIR": str(data_dir)}
    # A session of its own: no controlling terminal, so getpass reads the typed passwords from stdin.
    return subprocess.run([sys.executable, "-m", "edge", "accounts", *args], env=env, input=stdin,
                          capture_output=True, text=True, timeout=60, start_new_session=True)


async def test_the_accounts_cli_adds_lists_and_disables(edge: Edge, tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text(PASSWORD + "\n")
    result = await asyncio.to_thread(_accounts_cli, edge.data_dir, "add", "Jan", "--role", "installer",
                                     "--password-file", str(secret))
    assert result.returncode == 0 and "account jan (installer) added" in result.stdout, result.stderr
    result = await asyncio.to_thread(_accounts_cli, edge.data_dir, "add", "jan", "--role", "guard",
                                     "--password-file", str(secret))
    assert result.returncode == 1 and "already an account 'jan'" in result.stderr
    secret.write_text("too short\n")
    result = await asyncio.to_thread(_accounts_cli, edge.data_dir, "add", "ola", "--role", "guard",
                                     "--password-file", str(secret))
    assert result.returncode == 1 and "at least 10 characters" in result.stderr
    result = await asyncio.to_thread(_accounts_cli, edge.data_dir, "add", "ola", "--role", "guard",
                                     stdin=f"{PASSWORD}\n{PASSWORD}x\n")
    assert result.returncode == 1 and "the two passwords differ" in result.stderr
    result = await asyncio.to_thread(_accounts_cli, edge.data_dir, "add", "ola", "--role", "guard",
                                     stdin=f"{PASSWORD}\n{PASSWORD}\n")
    assert result.returncode == 0 and "account ola (guard) added" in result.stdout, result.stderr
    result = await asyncio.to_thread(_accounts_cli, edge.data_dir, "add", "kasia", "--role", "owner",
                                     "--password-file", str(secret))
    assert result.returncode == 2 and "invalid choice: 'owner'" in result.stderr

    # The running agent sees the CLI's accounts at once…
    assert (await edge.log_in("jan"))[0] == 200
    assert (await edge.get("/api/v1/status"))[0] == 200
    result = await asyncio.to_thread(_accounts_cli, edge.data_dir, "list")
    lines = result.stdout.splitlines()
    assert result.returncode == 0 and [line.split()[:2] for line in lines] == [["jan", "installer"], ["ola", "guard"]]
    assert "$argon2" not in result.stdout
    # …and its disabling: jan's open session stops, and he cannot log in again.
    result = await asyncio.to_thread(_accounts_cli, edge.data_dir, "disable", "JAN")
    assert result.returncode == 0 and "account jan disabled" in result.stdout, result.stderr
    status, body = await edge.get("/api/v1/status")
    assert status == 401 and "the account 'jan' is disabled" in _error(body, "login_required")["message"]
    assert (await edge.log_in("jan"))[0] == 401
    result = await asyncio.to_thread(_accounts_cli, edge.data_dir, "list")
    assert "jan" in result.stdout and "disabled 20" in result.stdout
    result = await asyncio.to_thread(_accounts_cli, edge.data_dir, "disable", "nobody")
    assert result.returncode == 1 and "there is no account 'nobody'" in result.stderr

    (edge.data_dir / ACCOUNTS_FILE).chmod(0o640)
    result = await asyncio.to_thread(_accounts_cli, edge.data_dir, "list")
    assert result.returncode == 1 and "must be 600" in result.stderr
    status, body = await edge.log_in("ola")
    assert status == 503 and "must be 600" in _error(body, "accounts_unavailable")["message"]


# --- the page in a browser --------------------------------------------------------------------------


async def test_the_page_logs_in_shows_the_links_and_logs_out_in_a_browser(edge: Edge) -> None:
    """The login form and the page's logout really work in Chromium (no external resource), and
    the page's script cannot read the session cookie."""
    create_account(edge.data_dir, "ola", PASSWORD, "guard")
    url = str(edge.client.make_url("/"))
    async with browser_page() as page:
        await page.goto(url)
        await page.fill("input[name=username]", "ola")
        await page.fill("input[name=password]", "not the password")
        await page.click("button")
        await page.locator("#error", has_text="wrong").wait_for()
        assert await page.text_content("#error") == "wrong account name or password"
        await page.fill("input[name=password]", PASSWORD)
        await page.click("button")
        await page.wait_for_selector("#logout")
        assert "guard:ola" in await page.text_content("#me")
        await page.locator("#links", has_text="up").wait_for()
        assert edge.link.panel_id in await page.text_content("#links")
        assert await page.evaluate("document.cookie") == "", "HttpOnly: out of the script's reach"
        await page.click("#logout")
        await page.wait_for_selector("form#login")
        assert page.js_errors == []
    status, _ = await edge.get("/api/v1/status")
    assert status == 401
