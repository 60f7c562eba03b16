"""Each user's time zone (issue 12): an IANA name or none (the hub's console.time_zone), set by the
user themselves or by an administrator, audited, and answered by /api/v1/auth/me with the hub's
default and the caller's permissions."""
from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from hub.api.app import build_api
from hub.auth import Auth, build_auth
from hub.config import ConsoleSettings, valid_time_zone
from shared.clock import FakeClock
from test_auth_helpers import (add_user, as_user, assert_error, audit_rows, auth, auth_settings, bearer,  # noqa: F401
                               cheap_passwords, clock, client, login)

SETTINGS = "/api/v1/auth/me/settings"


def test_the_hub_time_zone_setting_takes_iana_names_only() -> None:
    assert ConsoleSettings().time_zone == "UTC" and ConsoleSettings(time_zone="Europe/Warsaw").time_zone
    for bad in ("Mars/Olympus", "europe/warsaw", "../../etc/passwd", "", "zone.tab"):
        assert not valid_time_zone(bad)
        with pytest.raises(ValueError, match="console.time_zone"):
            ConsoleSettings(time_zone=bad)


async def _me(client: TestClient, headers: dict[str, str]) -> dict:
    resp = await client.get("/api/v1/auth/me", headers=headers)
    assert resp.status == 200
    return await resp.json()


async def test_me_answers_the_zone_the_hub_default_and_the_permissions(client: TestClient, auth: Auth) -> None:
    operator = await as_user(client, auth, "op@example.com", "OPERATOR")
    me = await _me(client, operator)
    assert (me["time_zone"], me["hub_time_zone"]) == (None, "UTC")
    assert "alarms.work" in me["permissions"] and "alarms.supervise" not in me["permissions"]
    admin = await _me(client, await as_user(client, auth, "admin@example.com", "ADMIN"))
    assert "alarms.supervise" in admin["permissions"] and "alarms.work" not in admin["permissions"]


async def test_the_hub_default_comes_from_its_setting(db: asyncpg.Pool, clock: FakeClock, tmp_path: Path) -> None:
    warsaw = await build_auth(db, auth_settings(tmp_path), clock, passwords=cheap_passwords(),
                              default_time_zone="Europe/Warsaw")
    async with TestClient(TestServer(build_api([warsaw.router], db, warsaw.authenticator))) as c:
        headers = await as_user(c, warsaw, "op@example.com", "OPERATOR")
        assert (await _me(c, headers))["hub_time_zone"] == "Europe/Warsaw"


async def test_a_user_sets_their_own_zone_and_a_bad_one_changes_nothing(client: TestClient, auth: Auth,
                                                                        db: asyncpg.Pool) -> None:
    headers = await as_user(client, auth, "op@example.com", "OPERATOR")
    version = (await _me(client, headers))["version"]
    for body in ({"time_zone": "Mars/Olympus_Mons"}, {"time_zone": "europe/warsaw"}, {"time_zone": "../etc/passwd"},
                 {"time_zone": ""}, {"time_zone": "x" * 65}, {}, {"time_zone": "UTC", "role": "MASTER"},
                 {"time_zone": 1}):
        resp = await client.patch(SETTINGS, json=body, headers=headers)
        assert resp.status == 422, body
        assert_error(await resp.json(), "invalid")
    assert (await _me(client, headers))["version"] == version and await audit_rows(db, "user.time_zone_changed") == []

    resp = await client.patch(SETTINGS, json={"time_zone": "Europe/Warsaw"}, headers=headers)
    me = await resp.json()
    assert resp.status == 200 and (me["time_zone"], me["version"]) == ("Europe/Warsaw", version + 1)
    resp = await client.patch(SETTINGS, json={"time_zone": None}, headers=headers)
    assert (await resp.json())["time_zone"] is None
    changes = await audit_rows(db, "user.time_zone_changed")
    assert [(c["details"]["old"], c["details"]["new"]) for c in changes] == [(None, "Europe/Warsaw"),
                                                                             ("Europe/Warsaw", None)]
    assert changes[0]["actor"] == f"user:{me['id']}" and changes[0]["target_id"] == str(me["id"])


async def test_a_user_who_must_change_their_password_sets_nothing_else(client: TestClient, auth: Auth) -> None:
    await add_user(auth, "new@example.com", must_change=True)
    headers = bearer((await login(client, "new@example.com"))["access_token"])
    assert (await _me(client, headers))["time_zone"] is None  # reading oneself stays open
    resp = await client.patch(SETTINGS, json={"time_zone": "Europe/Warsaw"}, headers=headers)
    assert resp.status == 403
    assert_error(await resp.json(), "password_change_required")


async def test_an_admin_sets_a_users_zone_at_its_version(client: TestClient, auth: Auth, db: asyncpg.Pool) -> None:
    admin = await as_user(client, auth, "admin@example.com", "ADMIN")
    operator = await as_user(client, auth, "op@example.com", "OPERATOR")
    target = await _me(client, operator)
    path = f"/api/v1/users/{target['id']}"
    resp = await client.patch(path, json={"version": target["version"], "time_zone": "Nowhere/Land"}, headers=admin)
    assert resp.status == 422 and (await resp.json())["error"]["details"]["field"] == "time_zone"
    resp = await client.patch(path, json={"version": target["version"], "time_zone": "America/New_York"},
                              headers=operator)
    assert resp.status == 403
    resp = await client.patch(path, json={"version": target["version"], "time_zone": "America/New_York"}, headers=admin)
    changed = await resp.json()
    assert resp.status == 200 and (changed["time_zone"], changed["version"]) == ("America/New_York",
                                                                                 target["version"] + 1)
    resp = await client.patch(path, json={"version": target["version"], "time_zone": "UTC"}, headers=admin)
    assert resp.status == 409  # stale version
    [entry] = await audit_rows(db, "user.time_zone_changed")
    assert entry["details"]["new"] == "America/New_York" and entry["actor"] != f"user:{target['id']}"
    assert (await _me(client, operator))["time_zone"] == "America/New_York"
