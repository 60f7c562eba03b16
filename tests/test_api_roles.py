"""The role matrix of the hub's API, written out here route by route (not asked of
hub.api.permissions, which would make the test agree with the code by construction), and walked
with real tokens: every route × every role. A route the table does not name fails the test until
someone decides who may call it.

The product's matrix (issue 5): alarms are seen by OPERATOR, ADMIN, MASTER (all) and TECHNICIAN
(assigned objects), worked by OPERATOR and MASTER; objects are seen by every role (TECHNICIAN and
FIELD_WORKER: assigned ones, FIELD_WORKER read-only) and edited by ADMIN and MASTER; every role may
reveal a secret (OPERATOR, TECHNICIAN, FIELD_WORKER within an hourly limit); ADMIN and MASTER
manage users and edges; only MASTER reads the audit log. Robots (issue 15) are seen as alarms are
and commanded and edited by OPERATOR, ADMIN and MASTER. What the assigned-only roles see of each
route is walked in tests/test_api_scope.py."""
from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import AsyncIterator

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from hub.api.server import CORE_ROUTERS, build_http
from hub.auth import Auth, build_auth
from hub.secret_box import SecretBox
from hub.stream import HubStream, stream_router
from support.enrolment import enrolment_service
from test_auth_helpers import add_user, auth_settings, bearer, cheap_passwords, login
from test_stream_helpers import FAST

M, A, O, T, F = "MASTER", "ADMIN", "OPERATOR", "TECHNICIAN", "FIELD_WORKER"
ROLES = (M, A, O, T, F)
Route = tuple[str, str]  # (method, path template)

# Who may call each authenticated route. Object scope (which objects TECHNICIAN and FIELD_WORKER
# see) is not in this table: tests/test_api_scope.py walks it.
ROLE_MATRIX: dict[Route, frozenset[str]] = {
    # Alarms: view, work, the dispatch journal.
    ("GET", "/api/v1/alarms"): frozenset({M, A, O, T}),
    ("GET", "/api/v1/alarms/{id}"): frozenset({M, A, O, T}),
    ("POST", "/api/v1/alarms/{id}/claim"): frozenset({M, O}),
    ("POST", "/api/v1/alarms/{id}/start"): frozenset({M, O}),
    ("POST", "/api/v1/alarms/{id}/ack"): frozenset({M, O}),
    ("POST", "/api/v1/alarms/{id}/resolve"): frozenset({M, O}),
    ("POST", "/api/v1/alarms/{id}/close"): frozenset({M, O}),
    ("POST", "/api/v1/alarms/{id}/dispatch-log"): frozenset({M, O}),
    ("GET", "/api/v1/alarms/{id}/timeline"): frozenset({M, A, O, T}),
    ("POST", "/api/v1/alarms/{id}/checklist/{index}"): frozenset({M, O}),
    # A supervisor takes an alarm out of another operator's hands (ADMIN may only reassign it).
    ("POST", "/api/v1/alarms/{id}/take-over"): frozenset({M, A}),
    # The fixed code lists the console's pickers show.
    ("GET", "/api/v1/meta/resolutions"): frozenset({M, A, O, T, F}),
    ("GET", "/api/v1/meta/call-outcomes"): frozenset({M, A, O, T, F}),
    # The system mode: read by every console's header, switched to maintenance by admins.
    ("GET", "/api/v1/system/mode"): frozenset({M, A, O, T, F}),
    ("PUT", "/api/v1/system/mode"): frozenset({M, A}),
    # Objects with their contacts and procedures.
    ("GET", "/api/v1/objects"): frozenset({M, A, O, T, F}),
    ("GET", "/api/v1/objects/{id}"): frozenset({M, A, O, T, F}),
    ("POST", "/api/v1/objects"): frozenset({M, A}),
    ("PATCH", "/api/v1/objects/{id}"): frozenset({M, A}),
    ("POST", "/api/v1/objects/{id}/deactivate"): frozenset({M, A}),
    ("POST", "/api/v1/objects/{id}/service-mode"): frozenset({M, A}),
    ("GET", "/api/v1/objects/{id}/contacts"): frozenset({M, A, O, T, F}),
    ("POST", "/api/v1/objects/{id}/contacts"): frozenset({M, A}),
    ("PATCH", "/api/v1/contacts/{id}"): frozenset({M, A}),
    ("DELETE", "/api/v1/contacts/{id}"): frozenset({M, A}),
    ("GET", "/api/v1/objects/{id}/procedures"): frozenset({M, A, O, T, F}),
    ("POST", "/api/v1/objects/{id}/procedures"): frozenset({M, A}),
    ("PATCH", "/api/v1/procedures/{id}"): frozenset({M, A}),
    ("DELETE", "/api/v1/procedures/{id}"): frozenset({M, A}),
    ("POST", "/api/v1/admin/import/objects"): frozenset({M, A}),
    # Object documents: seen (and downloaded) as objects are, uploaded and deleted by who edits them.
    ("GET", "/api/v1/objects/{id}/documents"): frozenset({M, A, O, T, F}),
    ("POST", "/api/v1/objects/{id}/documents"): frozenset({M, A}),
    ("GET", "/api/v1/documents/{id}"): frozenset({M, A, O, T, F}),
    ("DELETE", "/api/v1/documents/{id}"): frozenset({M, A}),
    # Panels with their zones, partitions, outputs, state and history.
    ("POST", "/api/v1/panels"): frozenset({M, A}),
    ("GET", "/api/v1/panels/{id}"): frozenset({M, A, O, T, F}),
    ("PATCH", "/api/v1/panels/{id}"): frozenset({M, A}),
    ("GET", "/api/v1/panels/{id}/zones"): frozenset({M, A, O, T, F}),
    ("POST", "/api/v1/panels/{id}/zones"): frozenset({M, A}),
    ("PATCH", "/api/v1/zones/{id}"): frozenset({M, A}),
    ("GET", "/api/v1/panels/{id}/partitions"): frozenset({M, A, O, T, F}),
    ("POST", "/api/v1/panels/{id}/partitions"): frozenset({M, A}),
    ("PATCH", "/api/v1/partitions/{id}"): frozenset({M, A}),
    ("GET", "/api/v1/panels/{id}/outputs"): frozenset({M, A, O, T, F}),
    ("POST", "/api/v1/panels/{id}/outputs"): frozenset({M, A}),
    ("PATCH", "/api/v1/outputs/{id}"): frozenset({M, A}),
    ("GET", "/api/v1/panels/{id}/state"): frozenset({M, A, O, T, F}),
    ("GET", "/api/v1/panels/{id}/history"): frozenset({M, A, O, T, F}),
    # Panel commands: given by who commands panels, followed by whoever sees the panel; the stored
    # user codes (write-only) only by who commands panels.
    ("POST", "/api/v1/panels/{id}/commands"): frozenset({M, A}),
    ("GET", "/api/v1/panels/{id}/commands"): frozenset({M, A, O, T, F}),
    ("GET", "/api/v1/commands/{id}"): frozenset({M, A, O, T, F}),
    ("GET", "/api/v1/panels/{id}/user-codes"): frozenset({M, A}),
    ("PUT", "/api/v1/panels/{id}/user-codes/{partition}"): frozenset({M, A}),
    ("DELETE", "/api/v1/panels/{id}/user-codes/{partition}"): frozenset({M, A}),
    # Auto-arm schedules and their runs, open/close supervision, holidays: seen as panels and objects
    # are; schedules and supervision changed by who commands panels, holidays by who edits objects.
    ("GET", "/api/v1/panels/{id}/auto-arm"): frozenset({M, A, O, T, F}),
    ("POST", "/api/v1/panels/{id}/auto-arm"): frozenset({M, A}),
    ("GET", "/api/v1/auto-arm/{id}"): frozenset({M, A, O, T, F}),
    ("PATCH", "/api/v1/auto-arm/{id}"): frozenset({M, A}),
    ("DELETE", "/api/v1/auto-arm/{id}"): frozenset({M, A}),
    ("GET", "/api/v1/panels/{id}/auto-arm/runs"): frozenset({M, A, O, T, F}),
    ("GET", "/api/v1/panels/{id}/supervision"): frozenset({M, A, O, T, F}),
    ("POST", "/api/v1/panels/{id}/supervision"): frozenset({M, A}),
    ("GET", "/api/v1/supervision/{id}"): frozenset({M, A, O, T, F}),
    ("PATCH", "/api/v1/supervision/{id}"): frozenset({M, A}),
    ("DELETE", "/api/v1/supervision/{id}"): frozenset({M, A}),
    ("GET", "/api/v1/holidays"): frozenset({M, A, O, T, F}),
    ("POST", "/api/v1/holidays"): frozenset({M, A}),
    ("PATCH", "/api/v1/holidays/{id}"): frozenset({M, A}),
    ("DELETE", "/api/v1/holidays/{id}"): frozenset({M, A}),
    # Robots: seen as alarms are (TECHNICIAN: assigned objects); leases, commands and desired
    # settings, and their metadata, by OPERATOR, ADMIN, MASTER (forcing a lease: MASTER, in the handler).
    ("GET", "/api/v1/robots"): frozenset({M, A, O, T}),
    ("GET", "/api/v1/robots/{id}"): frozenset({M, A, O, T}),
    ("PUT", "/api/v1/robots/{id}"): frozenset({M, A, O}),
    ("GET", "/api/v1/robots/{id}/identity"): frozenset({M, A, O, T}),
    ("GET", "/api/v1/robots/{id}/capability"): frozenset({M, A, O, T}),
    ("GET", "/api/v1/robots/{id}/telemetry"): frozenset({M, A, O, T}),
    ("GET", "/api/v1/robots/{id}/lease"): frozenset({M, A, O, T}),
    ("POST", "/api/v1/robots/{id}/lease"): frozenset({M, A, O}),
    ("DELETE", "/api/v1/robots/{id}/lease/{lease_id}"): frozenset({M, A, O}),
    ("GET", "/api/v1/robots/{id}/commands"): frozenset({M, A, O, T}),
    ("POST", "/api/v1/robots/{id}/commands"): frozenset({M, A, O}),
    ("GET", "/api/v1/robots/{id}/commands/{command_id}"): frozenset({M, A, O, T}),
    ("POST", "/api/v1/robots/{id}/commands/{command_id}/cancel"): frozenset({M, A, O}),
    ("GET", "/api/v1/robots/{id}/settings/desired"): frozenset({M, A, O, T}),
    ("PUT", "/api/v1/robots/{id}/settings/desired"): frozenset({M, A, O}),
    ("GET", "/api/v1/robots/{id}/settings/reported"): frozenset({M, A, O, T}),
    # An object's robot site plan: seen with its robots, chosen and removed by who edits objects.
    ("GET", "/api/v1/objects/{id}/robot-plan"): frozenset({M, A, O, T}),
    ("PUT", "/api/v1/objects/{id}/robot-plan"): frozenset({M, A}),
    ("DELETE", "/api/v1/objects/{id}/robot-plan"): frozenset({M, A}),
    # Recorder and camera secrets.
    ("POST", "/api/v1/objects/{id}/secrets"): frozenset({M, A}),
    ("GET", "/api/v1/objects/{id}/secrets"): frozenset({M, A, O, T, F}),
    ("POST", "/api/v1/secrets/{id}/reveal"): frozenset({M, A, O, T, F}),
    ("DELETE", "/api/v1/secrets/{id}"): frozenset({M, A}),
    # Reports are alarm data; the audit log is MASTER's alone.
    ("GET", "/api/v1/reports/alarms"): frozenset({M, A, O, T}),
    ("GET", "/api/v1/reports/response-times"): frozenset({M, A, O, T}),
    ("GET", "/api/v1/reports/resolutions"): frozenset({M, A, O, T}),
    ("GET", "/api/v1/reports/auto-arm"): frozenset({M, A, O, T}),
    ("GET", "/api/v1/audit"): frozenset({M}),
    # The raw SMS archive holds message texts and full numbers: MASTER's alone, every read audited.
    ("GET", "/api/v1/sms-archive"): frozenset({M}),
    ("GET", "/api/v1/sms-archive/{id}"): frozenset({M}),
    # Edges: their status is object data; creating (the enrolment token) and revoking is ADMIN's.
    ("GET", "/api/v1/edges"): frozenset({M, A, O, T, F}),
    ("POST", "/api/v1/edges"): frozenset({M, A}),
    ("POST", "/api/v1/edges/{edge_id}/revoke"): frozenset({M, A}),
    # The caller's own account, and the live stream (which shows each caller what they may see).
    ("GET", "/api/v1/auth/me"): frozenset({M, A, O, T, F}),
    ("POST", "/api/v1/auth/password"): frozenset({M, A, O, T, F}),
    ("PATCH", "/api/v1/auth/me/settings"): frozenset({M, A, O, T, F}),
    ("POST", "/api/v1/auth/ws-ticket"): frozenset({M, A, O, T, F}),
    ("GET", "/api/v1/events/stream"): frozenset({M, A, O, T, F}),
    # Users.
    ("GET", "/api/v1/users"): frozenset({M, A}),
    ("POST", "/api/v1/users"): frozenset({M, A}),
    ("GET", "/api/v1/users/{id}"): frozenset({M, A}),
    ("PATCH", "/api/v1/users/{id}"): frozenset({M, A}),
    ("PUT", "/api/v1/users/{id}/objects"): frozenset({M, A}),
}

# Routes that take no bearer token, and why that is right.
PUBLIC: dict[Route, str] = {
    ("POST", "/api/v1/auth/login"): "how a token is obtained",
    ("POST", "/api/v1/auth/refresh"): "the refresh token in the body is the credential",
    ("POST", "/api/v1/auth/logout"): "the refresh token in the body is the credential",
    ("GET", "/api/v1/auth/jwks"): "public keys that verify tokens",
    ("GET", "/.well-known/jwks.json"): "public keys that verify tokens",
    ("GET", "/api/v1/openapi.json"): "the API's description, no data",
    ("GET", "/api/v1/health"): "liveness for clients",
    ("POST", "/api/v1/enrol"): "the one-time enrolment token in the body is the credential (HTTPS only)",
    ("GET", "/api/v1/ws"): "a browser cannot set headers on a WebSocket: a single-use ticket from "
                           "POST /api/v1/auth/ws-ticket is the credential",
    ("GET", "/healthz"): "load balancer probe",
    ("GET", "/readyz"): "load balancer probe",
    ("GET", "/metrics"): "Prometheus scrape: route templates and counts, no object data",
    ("GET", "/"): "redirect to the console",
    ("GET", "/console"): "redirect to the console",
    ("GET", "/console/{tail}"): "the console's static files; it signs in through the API",
}


@dataclass
class ServedHub:
    """The hub's HTTP app composed as hub/service.py composes it, on the test database."""

    app: web.Application
    client: TestClient
    auth: Auth
    stream: HubStream

    async def user(self, email: str, role: str) -> dict[str, str]:
        """Bearer headers of a new, logged-in user of `role`."""
        await add_user(self.auth, email, role)
        return bearer((await login(self.client, email))["access_token"])


@contextlib.asynccontextmanager
async def serving_hub(db: asyncpg.Pool, dsn: str, tmp_path: Path) -> AsyncIterator[ServedHub]:
    """Every router production mounts (core, auth, stream) with enrolment configured, so no route
    answers 503 for want of a part."""
    auth = await build_auth(db, auth_settings(tmp_path), passwords=cheap_passwords())
    stream = HubStream(db, dsn, FAST)
    await stream.start()
    enrolment = enrolment_service(tmp_path, "https://127.0.0.1:1").service
    app = build_http(db, auth.authenticator, [auth.router, stream_router(stream)], SecretBox.generate(),
                     enrolment=enrolment)
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield ServedHub(app, client, auth, stream)
    finally:
        await stream.close()
        await client.close()


def app_routes(app: web.Application) -> set[Route]:
    """Every (method, path template) the app answers; aiohttp's HEAD twins of GET routes left out."""
    routes = {(r.method, r.resource.canonical) for r in app.router.routes() if r.resource is not None}
    heads = {path for method, path in routes if method == "HEAD"}
    assert heads <= {path for method, path in routes if method == "GET"}, "a HEAD route without its GET"
    return {(method, path) for method, path in routes if method != "HEAD"}


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", path)


@pytest.fixture
async def hub(db: asyncpg.Pool, db_dsn: str, tmp_path: Path) -> AsyncIterator[ServedHub]:
    async with serving_hub(db, db_dsn, tmp_path) as served:
        yield served


async def test_the_table_names_every_route_and_nothing_else(hub: ServedHub) -> None:
    assert not set(ROLE_MATRIX) & set(PUBLIC)
    assert app_routes(hub.app) == set(ROLE_MATRIX) | set(PUBLIC)
    # The declarations agree: what the table calls public is declared public, and the reverse.
    declared = [r for router in [*CORE_ROUTERS, hub.auth.router, stream_router(hub.stream)] for r in router.routes]
    assert {(r.method, r.path) for r in declared if not r.public} == set(ROLE_MATRIX)
    assert {(r.method, r.path) for r in declared if r.public} <= set(PUBLIC)
    assert all(roles and roles <= set(ROLES) for roles in ROLE_MATRIX.values())


async def test_every_route_for_every_role(hub: ServedHub) -> None:
    headers = {role: await hub.user(f"{role.lower()}@example.com", role) for role in ROLES}
    for (method, path), may in ROLE_MATRIX.items():
        for role in ROLES:
            resp = await hub.client.request(method, concrete(path), headers=headers[role], json={})
            where = f"{role} {method} {path}: {resp.status}"
            if resp.content_type == "text/event-stream":
                resp.close()  # a live stream that opened: the role was let in
                assert role in may and resp.status == 200, where
                continue
            body = await resp.json()
            assert resp.status != 401, f"{where} {body}"
            assert resp.status < 500, f"{where} {body}"
            if role in may:
                assert not (resp.status == 403 and body["error"]["code"] == "forbidden"), f"{where} {body}"
            else:
                assert resp.status == 403 and body["error"]["code"] == "forbidden", f"{where} {body}"


async def test_no_token_or_a_bad_one_is_401_on_every_authenticated_route(hub: ServedHub) -> None:
    for method, path in ROLE_MATRIX:
        for headers in ({}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic eDp5"}):
            resp = await hub.client.request(method, concrete(path), headers=headers, json={})
            assert resp.status == 401, (method, path, headers)
            assert (await resp.json())["error"]["code"] == "unauthorized"
