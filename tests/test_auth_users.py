"""The first MASTER account and user management over HTTP: creation, role changes with
optimistic locking (409 on a stale version), escalation guards, object assignments, password
resets and deactivation ending sessions, and the audit rows of each."""
from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from hub.auth import Auth, Bootstrap, BootstrapError
from hub.auth.bootstrap import bootstrap_master
from hub.config import AuthSettings
from shared.clock import FakeClock
from test_auth_helpers import (MASTER_EMAIL, MASTER_PASSWORD, PASSWORD, add_user, as_user, assert_error,  # noqa: F401
                               audit_rows, auth, auth_settings, bearer, clock, client, login)

NEW_PASSWORD = "initial password for the user"


async def test_bootstrap_creates_the_master_once_with_the_configured_password(client: TestClient, auth: Auth,
                                                                              db: asyncpg.Pool) -> None:
    assert await auth.bootstrap_master() is Bootstrap.CONFIGURED
    assert await auth.bootstrap_master() is Bootstrap.EXISTS
    rows = await db.fetch("SELECT email, role, must_change_password, active FROM users")
    assert [dict(r) for r in rows] == [{"email": MASTER_EMAIL, "role": "MASTER", "must_change_password": False,
                                        "active": True}]
    pair = await login(client, MASTER_EMAIL, MASTER_PASSWORD)
    assert pair["password_change_required"] is False
    [created] = await audit_rows(db, "user.created")
    assert created["details"]["bootstrap"] is True and MASTER_PASSWORD not in str(created)


async def test_bootstrap_without_a_password_generates_a_one_time_one(client: TestClient, auth: Auth,
                                                                     db: asyncpg.Pool, tmp_path: Path,
                                                                     caplog: pytest.LogCaptureFixture,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    settings = auth_settings(tmp_path, master_password="")
    with caplog.at_level(logging.INFO):
        assert await bootstrap_master(db, settings, auth.passwords, auth.clock) is Bootstrap.ONE_TIME
    shown = capsys.readouterr().err
    [password] = [line.strip() for line in shown.splitlines() if line.startswith("    ")]
    assert len(password) >= 20 and password not in caplog.text
    assert await bootstrap_master(db, settings, auth.passwords, auth.clock) is Bootstrap.EXISTS
    assert capsys.readouterr().err == ""  # shown once only

    pair = await login(client, MASTER_EMAIL, password)
    assert pair["password_change_required"] is True
    resp = await client.get("/api/v1/users", headers=bearer(pair["access_token"]))
    assert_error(await resp.json(), "password_change_required")


async def test_generated_passwords_differ_and_no_default_exists(db: asyncpg.Pool, auth: Auth, tmp_path: Path) -> None:
    assert AuthSettings().master_password == ""
    seen: list[str] = []
    for _ in range(2):
        await db.execute("DELETE FROM users")
        await bootstrap_master(db, auth_settings(tmp_path, master_password=""), auth.passwords, auth.clock,
                               reveal=lambda email, password: seen.append(password))
    assert len(seen) == 2 and seen[0] != seen[1]


async def test_hub_processes_bootstrapping_together_make_one_master(auth: Auth, db: asyncpg.Pool) -> None:
    results = await asyncio.gather(*(auth.bootstrap_master() for _ in range(4)))
    assert sorted(r.value for r in results) == ["configured", "exists", "exists", "exists"]
    assert await db.fetchval("SELECT count(*) FROM users WHERE role = 'MASTER'") == 1


async def test_bootstrap_refuses_bad_settings(auth: Auth, db: asyncpg.Pool, tmp_path: Path) -> None:
    with pytest.raises(BootstrapError, match="master_password"):
        await bootstrap_master(db, auth_settings(tmp_path, master_password="short"), auth.passwords, auth.clock)
    with pytest.raises(BootstrapError, match="master_email"):
        await bootstrap_master(db, auth_settings(tmp_path, master_email="not an email"), auth.passwords, auth.clock)
    await add_user(auth, MASTER_EMAIL, "OPERATOR")
    with pytest.raises(BootstrapError, match="not a MASTER"):
        await bootstrap_master(db, auth_settings(tmp_path), auth.passwords, auth.clock)
    assert await db.fetchval("SELECT count(*) FROM users WHERE role = 'MASTER'") == 0


async def test_create_list_and_change_a_user_with_optimistic_locking(client: TestClient, auth: Auth,
                                                                     db: asyncpg.Pool) -> None:
    master = await as_user(client, auth, "boss@example.com", "MASTER")
    resp = await client.post("/api/v1/users", headers={**master, "X-Request-Id": "req-create"},
                             json={"email": "New.Op@Example.com", "role": "OPERATOR", "password": NEW_PASSWORD,
                                   "display_name": "New Op"})
    created = await resp.json()
    assert resp.status == 201, created
    assert created["email"] == "new.op@example.com" and created["role"] == "OPERATOR"
    assert created["must_change_password"] is True and created["version"] == 1 and created["objects"] == []
    assert "password" not in str(created).lower().replace("must_change_password", "")

    listed = await (await client.get("/api/v1/users", headers=master)).json()
    assert [u["email"] for u in listed] == ["boss@example.com", "new.op@example.com"]
    uid = created["id"]
    assert (await (await client.get(f"/api/v1/users/{uid}", headers=master)).json()) == created

    resp = await client.patch(f"/api/v1/users/{uid}", json={"version": 1, "role": "ADMIN"},
                              headers={**master, "X-Request-Id": "req-promote"})
    assert resp.status == 200
    assert (await resp.json())["role"] == "ADMIN" and (await resp.json())["version"] == 2

    stale = await client.patch(f"/api/v1/users/{uid}", json={"version": 1, "role": "OPERATOR"}, headers=master)
    assert stale.status == 409
    body = await stale.json()
    assert_error(body, "conflict")
    assert body["error"]["details"] == {"version": 1, "current_version": 2}
    assert (await (await client.get(f"/api/v1/users/{uid}", headers=master)).json())["role"] == "ADMIN"

    [row] = await audit_rows(db, "user.created")
    assert row["target_id"] == str(uid) and row["request_id"] == "req-create"
    [role_change] = await audit_rows(db, "user.role_changed")
    assert role_change["actor"] == "user:1" and role_change["target_id"] == str(uid)
    assert role_change["details"] == {"ip": "127.0.0.1", "old": "OPERATOR", "new": "ADMIN"}
    assert role_change["request_id"] == "req-promote"
    assert NEW_PASSWORD not in str(await audit_rows(db))


async def test_user_management_refuses_bad_input(client: TestClient, auth: Auth) -> None:
    master = await as_user(client, auth, "boss@example.com", "MASTER")
    base = {"email": "x@example.com", "role": "OPERATOR", "password": NEW_PASSWORD}
    cases = [
        ({**base, "role": "SYSTEM"}, 422, "invalid", "role"),
        ({**base, "role": "KING"}, 422, "invalid", "role"),
        ({**base, "password": "short"}, 422, "invalid", "password"),
        ({**base, "email": "no-at-sign"}, 422, "invalid", "email"),
        ({**base, "email": "x\u0000@example.com"}, 422, "invalid", "email"),
        ({**base, "display_name": "nul\u0000"}, 422, "invalid", "display_name"),
        ({**base, "email": "boss@EXAMPLE.com"}, 409, "email_taken", "email"),
        ({k: v for k, v in base.items() if k != "password"}, 422, "invalid", "password"),
    ]
    for body, status, code, field in cases:
        resp = await client.post("/api/v1/users", json=body, headers=master)
        answer = await resp.json()
        assert resp.status == status, body
        assert_error(answer, code)
        assert answer["error"]["details"]["field"] == field
    uid = (await (await client.post("/api/v1/users", json=base, headers=master)).json())["id"]
    for body, status in [({"version": 1}, 422), ({"version": 0, "role": "ADMIN"}, 422),
                         ({"version": 1, "active": "yes"}, 422), ({"version": 1, "email": "a@b.c"}, 422)]:
        resp = await client.patch(f"/api/v1/users/{uid}", json=body, headers=master)
        assert resp.status == status, body
        assert_error(await resp.json(), "invalid")
    for path in ("/api/v1/users/999", "/api/v1/users/abc"):
        resp = await client.patch(path, json={"version": 1, "active": False}, headers=master)
        assert resp.status == 404
        assert_error(await resp.json(), "not_found")


async def test_only_users_managers_reach_user_management(client: TestClient, auth: Auth) -> None:
    for i, role in enumerate(("OPERATOR", "TECHNICIAN", "FIELD_WORKER")):
        headers = await as_user(client, auth, f"u{i}@example.com", role)
        resp = await client.get("/api/v1/users", headers=headers)
        assert resp.status == 403
        assert_error(await resp.json(), "forbidden")
    assert (await client.get("/api/v1/users")).status == 401


async def test_an_admin_cannot_create_change_or_make_a_master(client: TestClient, auth: Auth) -> None:
    await add_user(auth, "boss@example.com", "MASTER")
    admin = await as_user(client, auth, "admin@example.com", "ADMIN")
    resp = await client.post("/api/v1/users", headers=admin,
                             json={"email": "m2@example.com", "role": "MASTER", "password": NEW_PASSWORD})
    assert resp.status == 403
    assert (await client.patch("/api/v1/users/1", json={"version": 1, "active": False}, headers=admin)).status == 403
    op = (await (await client.post("/api/v1/users", headers=admin,
                                   json={"email": "op@example.com", "role": "OPERATOR",
                                         "password": NEW_PASSWORD})).json())["id"]
    resp = await client.patch(f"/api/v1/users/{op}", json={"version": 1, "role": "MASTER"}, headers=admin)
    assert resp.status == 403
    assert_error(await resp.json(), "forbidden")


async def test_the_last_active_master_stays(client: TestClient, auth: Auth, db: asyncpg.Pool) -> None:
    master = await as_user(client, auth, "boss@example.com", "MASTER")
    for change in ({"role": "ADMIN"}, {"active": False}):
        resp = await client.patch("/api/v1/users/1", json={"version": 1, **change}, headers=master)
        assert resp.status == 409
        assert_error(await resp.json(), "last_master")
    second = await add_user(auth, "boss2@example.com", "MASTER")
    resp = await client.patch("/api/v1/users/1", json={"version": 1, "role": "ADMIN"}, headers=master)
    assert resp.status == 200
    resp = await client.patch(f"/api/v1/users/{second}", json={"version": 1, "active": False}, headers=master)
    assert resp.status == 403  # now an ADMIN: may not touch a MASTER


async def test_deactivation_and_password_reset_end_the_users_sessions(client: TestClient, auth: Auth,
                                                                      db: asyncpg.Pool, clock: FakeClock) -> None:
    master = await as_user(client, auth, "boss@example.com", "MASTER")
    op = await add_user(auth, "op@example.com")
    pair = await login(client, "op@example.com")

    resp = await client.patch(f"/api/v1/users/{op}", json={"version": 1, "password": NEW_PASSWORD}, headers=master)
    assert resp.status == 200 and (await resp.json())["must_change_password"] is True
    assert (await client.get("/api/v1/auth/me", headers=bearer(pair["access_token"]))).status == 401
    assert (await client.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})).status == 401
    await login(client, "op@example.com", PASSWORD, status=401)
    pair = await login(client, "op@example.com", NEW_PASSWORD)
    assert pair["password_change_required"] is True

    resp = await client.patch(f"/api/v1/users/{op}", json={"version": 2, "active": False}, headers=master)
    assert resp.status == 200 and (await resp.json())["active"] is False
    assert (await client.get("/api/v1/auth/me", headers=bearer(pair["access_token"]))).status == 401
    assert (await client.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})).status == 401
    await login(client, "op@example.com", NEW_PASSWORD, status=401)

    actions = [r["action"] for r in await audit_rows(db) if r["target_id"] == str(op) and r["action"].startswith("user.")]
    assert actions == ["user.password_reset", "user.deactivated"]
    assert await db.fetchval("SELECT count(*) FROM auth_sessions WHERE user_id = $1 AND revoked_at IS NULL", op) == 0


async def test_a_password_reset_lifts_a_lockout(client: TestClient, auth: Auth, db: asyncpg.Pool,
                                                clock: FakeClock) -> None:
    master = await as_user(client, auth, "boss@example.com", "MASTER")
    op = await add_user(auth, "op@example.com")
    for _ in range(9):  # the ninth failure delays this address 32 s
        await login(client, "op@example.com", "wrong password!", status=401)
        clock.advance(20)
    user = await (await client.get(f"/api/v1/users/{op}", headers=master)).json()
    assert user["locked_until"] is not None
    resp = await client.patch(f"/api/v1/users/{op}", json={"version": 1, "password": NEW_PASSWORD}, headers=master)
    assert (await resp.json())["locked_until"] is None
    await login(client, "op@example.com", NEW_PASSWORD)


async def test_object_assignments(client: TestClient, auth: Auth, db: asyncpg.Pool) -> None:
    admin = await as_user(client, auth, "admin@example.com", "ADMIN")
    objects = [await db.fetchval("INSERT INTO objects (name) VALUES ($1) RETURNING id", f"site {i}") for i in range(3)]
    tech = await add_user(auth, "tech@example.com", "TECHNICIAN")
    op = await add_user(auth, "op@example.com", "OPERATOR")

    resp = await client.put(f"/api/v1/users/{tech}/objects", json={"version": 1, "object_ids": objects[:2]},
                            headers=admin)
    assert resp.status == 200
    assert (await resp.json())["objects"] == objects[:2] and (await resp.json())["version"] == 2
    resp = await client.put(f"/api/v1/users/{tech}/objects", json={"version": 2, "object_ids": objects[1:]},
                            headers=admin)
    assert (await resp.json())["objects"] == objects[1:]
    tech_pair = await login(client, "tech@example.com")
    assert (await (await client.get("/api/v1/auth/me", headers=bearer(tech_pair["access_token"]))).json())[
        "objects"] == objects[1:]

    stale = await client.put(f"/api/v1/users/{tech}/objects", json={"version": 2, "object_ids": []}, headers=admin)
    assert stale.status == 409
    assert_error(await stale.json(), "conflict")
    missing = await client.put(f"/api/v1/users/{tech}/objects", json={"version": 3, "object_ids": [objects[0], 999]},
                               headers=admin)
    assert missing.status == 422
    assert (await missing.json())["error"]["details"] == {"field": "object_ids", "missing": [999]}
    not_assignable = await client.put(f"/api/v1/users/{op}/objects", json={"version": 1, "object_ids": objects},
                                      headers=admin)
    assert not_assignable.status == 422
    assert_error(await not_assignable.json(), "invalid")
    assert (await db.fetch("SELECT object_id FROM user_object_assignments WHERE user_id = $1 ORDER BY 1", tech)) == [
        (objects[1],), (objects[2],)]

    changes = [r["details"] for r in await audit_rows(db, "user.objects_changed")]
    assert changes == [{"ip": "127.0.0.1", "added": objects[:2], "removed": []},
                       {"ip": "127.0.0.1", "added": [objects[2]], "removed": [objects[0]]}]
