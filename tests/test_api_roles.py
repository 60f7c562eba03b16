"""Every route × every role, with real tokens: the permission matrix holds everywhere, in one
place. A role without the permission gets 403; a role with it gets anything but 401/403."""
from __future__ import annotations

import re
from pathlib import Path
from typing import AsyncIterator

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from hub.api.permissions import MATRIX, allowed
from hub.api.principal import Role
from hub.api.server import CORE_ROUTERS, build_http
from hub.auth import Auth, build_auth
from hub.secret_box import SecretBox
from support.enrolment import enrolment_service
from test_auth_helpers import add_user, auth_settings, bearer, cheap_passwords, login

ROLES = [Role.MASTER, Role.ADMIN, Role.OPERATOR, Role.TECHNICIAN, Role.FIELD_WORKER]


@pytest.fixture
async def setup(db: asyncpg.Pool, tmp_path: Path) -> AsyncIterator[tuple[TestClient, Auth, dict[Role, dict[str, str]]]]:
    auth = await build_auth(db, auth_settings(tmp_path), passwords=cheap_passwords())
    enrol = enrolment_service(tmp_path, "https://127.0.0.1:1").service
    app = build_http(db, auth.authenticator, [auth.router], SecretBox.generate(), enrolment=enrol)
    async with TestClient(TestServer(app)) as client:
        headers = {}
        for role in ROLES:
            email = f"{role.value.lower()}@example.com"
            await add_user(auth, email, role.value)
            headers[role] = bearer((await login(client, email))["access_token"])
        yield client, auth, headers


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", path)


async def test_every_route_for_every_role(setup) -> None:  # type: ignore[no-untyped-def]
    client, auth, headers = setup
    routes = [r for router in [*CORE_ROUTERS, auth.router] for r in router.routes if not r.public]
    assert len(routes) > 40
    checked = 0
    for route in routes:
        for role in ROLES:
            resp = await client.request(route.method, _concrete(route.path), headers=headers[role], json={})
            assert resp.status != 401, f"{route.method} {route.path} as {role.value}: {await resp.text()}"
            expected_allowed = allowed(role, route.permission)  # type: ignore[arg-type]
            if expected_allowed:
                assert resp.status != 403 or (await resp.json())["error"]["code"] != "forbidden", \
                    f"{role.value} should be allowed {route.method} {route.path}: {await resp.text()}"
            else:
                assert resp.status == 403, f"{role.value} should be refused {route.method} {route.path}: {resp.status}"
                assert (await resp.json())["error"]["code"] == "forbidden"
            assert resp.status < 500, f"{route.method} {route.path} as {role.value}: {await resp.text()}"
            checked += 1
    assert checked == len(routes) * len(ROLES)


async def test_the_matrix_is_the_one_in_the_issue() -> None:
    expect = {
        "alarms.view": {"OPERATOR", "TECHNICIAN", "ADMIN", "MASTER"},
        "alarms.work": {"OPERATOR", "MASTER"},
        "objects.edit": {"ADMIN", "MASTER"},
        "objects.view": {"OPERATOR", "TECHNICIAN", "FIELD_WORKER", "ADMIN", "MASTER"},
        "secrets.reveal": {"OPERATOR", "TECHNICIAN", "FIELD_WORKER", "ADMIN", "MASTER"},
        "users.manage": {"ADMIN", "MASTER"},
        "panels.command": {"ADMIN", "MASTER"},
        "audit.view": {"MASTER"},
    }
    for permission, roles in expect.items():
        assert {r.value for r in MATRIX[permission]} == roles, permission


async def test_no_token_or_a_bad_one_is_401_everywhere(setup) -> None:  # type: ignore[no-untyped-def]
    client, auth, _ = setup
    for route in [r for router in CORE_ROUTERS for r in router.routes if not r.public][:20]:
        for headers in ({}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic eDp5"}):
            resp = await client.request(route.method, _concrete(route.path), headers=headers, json={})
            assert resp.status == 401, (route.path, headers)
            assert (await resp.json())["error"]["code"] in ("unauthorized", "invalid_token")
