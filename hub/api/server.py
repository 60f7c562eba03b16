"""The hub's whole HTTP surface: the API routers, /healthz, /readyz and /metrics for monitoring."""
from __future__ import annotations

import asyncpg
from aiohttp import web
from nats.aio.client import Client as NatsClient
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from hub.api import (alarms_api, audit_api, commands_api, documents_api, edges_api, enrol_api, import_api, meta_api, objects_api,
                     panels_api, pdf_export, reports_api, robot_plan_api, robots_api, schedules_api, secrets_api,
                     sms_archive_api, system_api)
from hub.api.app import build_api
from hub.api.errors import error_response
from hub.api.openapi import build_openapi
from hub.api.principal import Authenticator
from hub.api.routing import Router
from hub.commands.publisher import CommandPublisher
from hub.config import DocumentSettings, ReportSettings, RobotSettings
from hub.db.errors import DB_ERRORS
from hub.health import Health, health
from hub.console.routes import console_routes
from hub.edges.service import EnrolmentService
from hub.secret_box import SecretBox
from shared.supervise import Supervisor

POOL_KEY = web.AppKey("pool", asyncpg.Pool)
SUPERVISOR_KEY = web.AppKey("supervisor", Supervisor)
NATS_KEY = web.AppKey("nats", NatsClient)

CORE_ROUTERS: list[Router] = [
    meta_api.router, alarms_api.router, objects_api.router, panels_api.router, reports_api.router,
    audit_api.router, import_api.router, edges_api.router, enrol_api.router, secrets_api.router,
    documents_api.router, commands_api.router, sms_archive_api.router, schedules_api.router, robots_api.router,
    robot_plan_api.router, system_api.router,
]


async def healthz(request: web.Request) -> web.Response:
    pool = request.app[POOL_KEY]
    try:
        await pool.fetchval("SELECT 1")
    except DB_ERRORS as exc:
        return error_response(503, "database_unavailable", f"PostgreSQL is unreachable: {exc}")
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """200 when PostgreSQL answers with the schema this hub expects, NATS is connected with
    JetStream answering, and no background task keeps failing; otherwise 503 naming what is wrong,
    so a load balancer stops sending work to a hub that only looks alive (hub/health.py)."""
    found = await health(request.app[POOL_KEY], request.app.get(NATS_KEY), request.app.get(SUPERVISOR_KEY))
    if found.problems:
        return web.json_response({"status": "not_ready", "failing": found.problems, "checks": found.checks,
                                  "tasks": found.tasks}, status=503)
    return web.json_response({"status": "ready", "checks": found.checks, "tasks": found.tasks})


async def metrics(_request: web.Request) -> web.Response:
    return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})


def build_http(pool: asyncpg.Pool, authenticator: Authenticator, extra_routers: list[Router],
               secret_box: SecretBox, enrolment: EnrolmentService | None = None,
               supervisor: Supervisor | None = None, documents: DocumentSettings | None = None,
               reports: ReportSettings | None = None, commands: CommandPublisher | None = None,
               robots: RobotSettings | None = None, nats_client: NatsClient | None = None) -> web.Application:
    """The application: every router's routes, the OpenAPI document built from them, and the
    unauthenticated monitoring endpoints. Without `enrolment` (no CA, no HTTPS listener) the
    enrolment routes answer 503; /readyz reports `supervisor`'s tasks and `nats_client`'s link and
    JetStream. `documents` and `reports`
    (their caps) and `robots` (leases, command expiry, telemetry cap) default to the config's
    defaults. `commands`, when given, is woken by every panel or robot command given through the
    API, so it is published at once."""
    routers = CORE_ROUTERS + extra_routers
    extra = {meta_api.OPENAPI_KEY: build_openapi(routers), secrets_api.SECRET_BOX_KEY: secret_box,
             documents_api.SETTINGS_KEY: documents or DocumentSettings(),
             pdf_export.SETTINGS_KEY: reports or ReportSettings(), robots_api.SETTINGS_KEY: robots or RobotSettings()}
    if enrolment is not None:
        extra[enrol_api.ENROLMENT_KEY] = enrolment
    if commands is not None:
        extra[commands_api.PUBLISHER_KEY] = commands

    async def hub_health() -> Health:
        return await health(pool, nats_client, supervisor)

    extra[system_api.HEALTH_KEY] = hub_health
    app = build_api(routers, pool, authenticator, extra)
    app[POOL_KEY] = pool
    if supervisor is not None:
        app[SUPERVISOR_KEY] = supervisor
    if nats_client is not None:
        app[NATS_KEY] = nats_client
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    console_routes(app)
    return app
