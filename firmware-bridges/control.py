"""What every emulator's HTTP control endpoint shares: its routes listed at `GET /`, bad input
answered in the project's error shape (shared/error_shape.py), and JSON bodies read into Structs.

A control endpoint stands in for what a person does to the hardware (trips a zone, sends an SMS,
presses a robot's emergency stop); it listens on 127.0.0.1 only.
"""
from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import msgspec
from aiohttp import web

from shared.error_shape import error_response

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Body = TypeVar("Body", bound=msgspec.Struct)

#: JSON a person reads with curl: indented.
readable_json = functools.partial(web.json_response, dumps=functools.partial(json.dumps, indent=2))


@dataclass(frozen=True)
class ControlRoute:
    """One route of a control endpoint: what it is, what it does, and who serves it."""

    method: str
    path: str
    does: str
    handler: Handler
    body: dict[str, Any] | None = None  # an example JSON body, for routes that take one

    def listing(self) -> dict[str, Any]:
        """The route as `GET /` lists it."""
        entry: dict[str, Any] = {"method": self.method, "path": self.path, "does": self.does}
        if self.body is not None:
            entry["body"] = self.body
        return entry


def error_shape(not_found: tuple[type[Exception], ...] = ()) -> Callable[..., Awaitable[web.StreamResponse]]:
    """The middleware that answers a refused request in the error shape: 404 for `not_found`
    errors, 400 for a body or value that does not read, the HTTP error's own status otherwise."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        request_id = request.headers.get("X-Request-Id") or uuid.uuid4().hex
        headers = {"X-Request-Id": request_id}
        try:
            return await handler(request)
        except not_found as exc:
            return error_response(404, "not_found", str(exc), request_id, {}, headers)
        except (msgspec.ValidationError, msgspec.DecodeError, ValueError) as exc:
            return error_response(400, "bad_request", str(exc), request_id, {}, headers)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            return error_response(exc.status, exc.reason.lower().replace(" ", "_"), exc.reason, request_id, {},
                                  headers)

    return middleware


async def read_body(request: web.Request, kind: type[Body]) -> Body:
    """The request's JSON body as `kind` (an empty body is `{}`); msgspec errors mean 400."""
    return msgspec.json.decode(await request.read() or b"{}", type=kind)


def add_routes(app: web.Application, routes: Sequence[ControlRoute]) -> web.Application:
    """Serve `routes` on `app`; returns the app."""
    for route in routes:
        app.router.add_route(route.method, route.path, route.handler)
    return app
