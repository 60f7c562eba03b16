"""Assembles the aiohttp application from routers: request ids, the error shape, authentication,
permissions, body and query decoding, idempotency, and the OpenAPI document."""
from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

import asyncpg
from aiohttp import web
from prometheus_client import Histogram

from hub.api import idempotency
from hub.api.errors import ApiError, error_response
from hub.api.permissions import require
from hub.api.principal import Authenticator
from hub.api.routing import MAX_BODY_BYTES, Call, Route, Router, decode_json, decode_query, to_response
from hub.db.errors import DATABASE_AWAY
from hub.system.store import in_maintenance
from shared.logs import request_id

log = logging.getLogger("vigil.hub.api")

DEPS_KEY = web.AppKey("deps", object)
REQUEST_ID_HEADER = "X-Request-Id"
REQUEST_SECONDS = Histogram(
    "vigil_http_request_seconds", "Time from a request's arrival to its answer (streams: to their end)",
    ["method", "route", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
)


def _route_label(request: web.Request) -> str:
    """The route's template (`/api/v1/alarms/{id}/claim`), never the raw path: ids would make
    every request its own series."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


@dataclass
class Deps:
    """What handlers reach through `call.request.app[DEPS_KEY]`."""

    pool: asyncpg.Pool
    authenticator: Authenticator
    extra: dict[str, Any]


def deps(call: Call) -> Deps:
    return call.request.app[DEPS_KEY]  # type: ignore[return-value]


def _valid_request_id(value: str | None) -> str | None:
    if value and 1 <= len(value) <= 128 and value.isprintable():
        return value
    return None


@web.middleware
async def request_context(request: web.Request, handler):  # type: ignore[no-untyped-def]
    """Request id on every answer and log line; every failure in the one error shape."""
    rid = _valid_request_id(request.headers.get(REQUEST_ID_HEADER)) or str(uuid.uuid4())
    token = request_id.set(rid)
    started = time.perf_counter()
    status = "raised"
    try:
        try:
            response = await handler(request)
        except ApiError as exc:
            response = error_response(exc.status, exc.code, exc.message, exc.details, exc.headers)
        except web.HTTPException as exc:
            if exc.status < 400:
                status = str(exc.status)
                raise
            code = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}.get(
                exc.status, exc.reason.lower().replace(" ", "_"))
            headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
            response = error_response(exc.status, code, exc.reason, None, headers)
        except asyncpg.DataError as exc:
            # PostgreSQL refused a value the schema let through (a NUL character, a number out of
            # the column's range): bad input, not a hub failure.
            response = error_response(422, "invalid", "a value was refused by the database", {"reason": str(exc)})
        except DATABASE_AWAY as exc:
            # PostgreSQL is down or restarting: the hub cannot answer now, and says so; /readyz and
            # GET /api/v1/system/mode (once it is back) tell the rest.
            log.warning("database unavailable for %s %s: %s", request.method, request.path, exc)
            response = error_response(503, "database_unavailable", "the hub's database is unavailable; try again "
                                                                   "shortly", headers={"Retry-After": "5"})
        except Exception:
            log.exception("unhandled error in %s %s", request.method, request.path)
            response = error_response(500, "internal_error", "the hub failed to answer; quote the request id")
        response.headers[REQUEST_ID_HEADER] = rid
        status = str(response.status)
        return response
    finally:
        REQUEST_SECONDS.labels(request.method, _route_label(request), status).observe(time.perf_counter() - started)
        request_id.reset(token)


def _check_content_type(request: web.Request, route: Route) -> None:
    if request.content_type not in route.consumes:
        raise ApiError(415, "unsupported_media_type",
                       f"send the body as {' or '.join(route.consumes)}, not {request.content_type or 'nothing'}")


async def _read_body(request: web.Request, route: Route) -> bytes:
    _check_content_type(request, route)
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise ApiError(413, "body_too_large", f"the body is over {MAX_BODY_BYTES} bytes")
    return await request.read()


async def idempotently(call: Call, fingerprint: bytes,
                       respond: Callable[[], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    """`respond()` under the request's Idempotency-Key, if it has one: a retry with the same key
    and the same `fingerprint` (the request's body, or a digest of what a streaming handler read)
    gets the first answer again, the same key with another fingerprint is refused (422)."""
    key, principal, request = call.request.headers.get("Idempotency-Key"), call.principal, call.request
    if not key or principal is None:
        return await respond()
    pool = deps(call).pool
    if len(key) > idempotency.MAX_KEY_LENGTH:
        raise ApiError(422, "invalid", f"Idempotency-Key is longer than {idempotency.MAX_KEY_LENGTH} characters")
    try:
        stored = await idempotency.begin(pool, principal.user_id, key, request.method, request.path_qs, fingerprint)
    except idempotency.KeyMismatch:
        raise ApiError(422, "idempotency_key_reused", "this Idempotency-Key was used for a different request") from None
    except idempotency.KeyInFlight:
        raise ApiError(409, "idempotency_in_flight", "a request with this Idempotency-Key is still running") from None
    if stored is not None:
        return web.Response(body=stored.body, status=stored.status, content_type=stored.content_type,
                            headers={"Idempotent-Replayed": "true"})
    try:
        response = await respond()
    except ApiError as exc:
        error = error_response(exc.status, exc.code, exc.message, exc.details, exc.headers)
        await idempotency.finish(pool, principal.user_id, key, error.status, error.body, "application/json")  # type: ignore[arg-type]
        raise
    except BaseException:
        await idempotency.release(pool, principal.user_id, key)
        raise
    if isinstance(response, web.Response) and response.body is not None:
        await idempotency.finish(pool, principal.user_id, key, response.status, bytes(response.body),  # type: ignore[arg-type]
                                 response.content_type)
    else:
        await idempotency.release(pool, principal.user_id, key)
    return response


def _wrap(route: Route):  # type: ignore[no-untyped-def]
    async def handle(request: web.Request) -> web.StreamResponse:
        d: Deps = request.app[DEPS_KEY]  # type: ignore[assignment]
        principal = None if route.public else await d.authenticator.authenticate(request)
        if principal is not None and route.permission:
            require(principal, route.permission)
        if route.method != "GET" and not route.in_maintenance and await in_maintenance(d.pool):
            raise ApiError(503, "maintenance", "the centre is in maintenance: the API is read-only until an admin "
                                               "ends it (GET /api/v1/system/mode says who and why)")
        call = Call(request, principal)
        if route.body is not None:
            call.raw_body = await _read_body(request, route)
            if route.consumes == ("application/json",):
                call.body = decode_json(call.raw_body, route.body)
        elif route.form is not None:
            _check_content_type(request, route)  # the handler streams the body itself
        if route.query is not None:
            call.query = decode_query(request, route.query)
        if request.headers.get("Idempotency-Key") and route.carries_secret:
            raise ApiError(400, "idempotency_not_allowed", "this request or its response carries a secret; it is never "
                                                           "stored for replay, so Idempotency-Key is refused here")

        async def respond() -> web.StreamResponse:
            return to_response(await route.handler(call), route)

        if not route.idempotent_post:
            return await respond()
        return await idempotently(call, route.fingerprint(call) if route.fingerprint else call.raw_body, respond)

    handle.__name__ = route.handler.__name__
    return handle


def build_api(routers: list[Router], pool: asyncpg.Pool, authenticator: Authenticator,
              extra: dict[str, Any] | None = None) -> web.Application:
    """The API application with every router's routes installed."""
    app = web.Application(middlewares=[request_context], client_max_size=MAX_BODY_BYTES)
    app[DEPS_KEY] = Deps(pool, authenticator, extra or {})
    for router in routers:
        for route in router.routes:
            app.router.add_route(route.method, route.path, _wrap(route))
    return app
