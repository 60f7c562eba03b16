"""Local HTTP control endpoint (JSON) for scripting the emulator from outside Python.

Routes::

    GET  /state                                 diagnostics, secrets redacted
    POST /zones/{n}/violate|restore|tamper|restore-tamper
    POST /zones/{n}/temperature                 {"celsius": 21.5}  (null: unknown)
    POST /zones|partitions|outputs/{n}/name     {"name": "Hall"}  (control bytes such as NUL kept)
    POST /partitions/{n}/entry-time|exit-time
    POST /troubles/{name}/trigger|clear
    POST /event-log/clear
    POST /connections/cut
    POST /response-delay                        {"seconds": 1.5}
    POST /corrupt-next-frame

Errors use the project's one error shape: ``{"error": {"code", "message", "request_id", "details"}}``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from aiohttp import web

from shared.error_shape import error_response

from .devices import UnknownDevice

if TYPE_CHECKING:
    from .ethm import SatelEmulator

_EMULATOR: web.AppKey[SatelEmulator] = web.AppKey("emulator")
_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _error(status: int, code: str, message: str, request_id: str) -> web.Response:
    return error_response(status, code, message, request_id, {}, {"X-Request-Id": request_id})


@web.middleware
async def _error_shape(request: web.Request, handler: _Handler) -> web.StreamResponse:
    request_id = request.headers.get("X-Request-Id") or uuid.uuid4().hex
    try:
        return await handler(request)
    except UnknownDevice as exc:
        return _error(404, "not_found", str(exc), request_id)
    except ValueError as exc:
        return _error(400, "bad_request", str(exc), request_id)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _error(exc.status, exc.reason.lower().replace(" ", "_"), exc.reason, request_id)


def _emulator(request: web.Request) -> SatelEmulator:
    return request.app[_EMULATOR]


def _number(request: web.Request, what: str) -> int:
    text = request.match_info["number"]
    if not (text.isascii() and text.isdigit()):
        raise ValueError(f"{what} number must be a positive integer, got {text!r}")
    return int(text)


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except json.JSONDecodeError as exc:
        raise ValueError(f"request body is not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise ValueError("request body must be a JSON object")
    return body


async def _state(request: web.Request) -> web.Response:
    return web.json_response(_emulator(request).diagnostics())


async def _zone_action(request: web.Request) -> web.Response:
    emulator = _emulator(request)
    number = _number(request, "zone")
    actions = {
        "violate": emulator.violate_zone,
        "restore": emulator.restore_zone,
        "tamper": emulator.tamper_zone,
        "restore-tamper": emulator.restore_tamper,
    }
    action = request.match_info["action"]
    if action not in actions:
        raise web.HTTPNotFound()
    actions[action](number)
    return web.json_response({"zone": asdict(emulator.panel.zone(number))})


async def _zone_temperature(request: web.Request) -> web.Response:
    emulator = _emulator(request)
    number = _number(request, "zone")
    celsius = (await _json_body(request)).get("celsius")
    if celsius is not None and (isinstance(celsius, bool) or not isinstance(celsius, int | float)):
        raise ValueError("celsius must be a number or null")
    emulator.set_temperature(number, celsius)
    return web.json_response({"zone": asdict(emulator.panel.zone(number))})


def _rename(device: str) -> _Handler:
    """The handler renaming one kind of device (``"zone"``, ``"partition"``, ``"output"``)."""

    async def rename(request: web.Request) -> web.Response:
        number = _number(request, device)
        name = (await _json_body(request)).get("name")
        if not isinstance(name, str):
            raise ValueError("name must be a string")
        _emulator(request).rename(device, number, name)
        return web.json_response({device: number, "name": name})

    return rename


async def _clear_event_log(request: web.Request) -> web.Response:
    emulator = _emulator(request)
    emulator.clear_event_log()
    return web.json_response({"newest_event_index": emulator.panel.events.newest_index})


async def _partition_action(request: web.Request) -> web.Response:
    emulator = _emulator(request)
    number = _number(request, "partition")
    actions = {"entry-time": emulator.start_entry_time, "exit-time": emulator.start_exit_time}
    action = request.match_info["action"]
    if action not in actions:
        raise web.HTTPNotFound()
    actions[action](number)
    return web.json_response({"partition": asdict(emulator.panel.partition(number))})


async def _trouble_action(request: web.Request) -> web.Response:
    emulator = _emulator(request)
    name = request.match_info["name"]
    actions = {"trigger": emulator.trigger_trouble, "clear": emulator.clear_trouble}
    action = request.match_info["action"]
    if action not in actions:
        raise web.HTTPNotFound()
    actions[action](name)
    return web.json_response({"trouble": name, "active": action == "trigger"})


async def _cut(request: web.Request) -> web.Response:
    _emulator(request).cut_connections()
    return web.json_response({"cut": True})


async def _response_delay(request: web.Request) -> web.Response:
    seconds = (await _json_body(request)).get("seconds")
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise ValueError("seconds must be a number")
    _emulator(request).set_response_delay(float(seconds))
    return web.json_response({"response_delay": float(seconds)})


async def _corrupt(request: web.Request) -> web.Response:
    _emulator(request).corrupt_next_frame()
    return web.json_response({"corrupt_next_frame": True})


def create_control_app(emulator: SatelEmulator) -> web.Application:
    """The aiohttp application serving the control routes for ``emulator``."""
    app = web.Application(middlewares=[_error_shape])
    app[_EMULATOR] = emulator
    app.router.add_get("/state", _state)
    app.router.add_post("/zones/{number}/temperature", _zone_temperature)
    # Before the action routes, which would take "name" for an action.
    for device in ("zone", "partition", "output"):
        app.router.add_post(f"/{device}s/{{number}}/name", _rename(device))
    app.router.add_post("/zones/{number}/{action}", _zone_action)
    app.router.add_post("/partitions/{number}/{action}", _partition_action)
    app.router.add_post("/troubles/{name}/{action}", _trouble_action)
    app.router.add_post("/event-log/clear", _clear_event_log)
    app.router.add_post("/connections/cut", _cut)
    app.router.add_post("/response-delay", _response_delay)
    app.router.add_post("/corrupt-next-frame", _corrupt)
    return app
