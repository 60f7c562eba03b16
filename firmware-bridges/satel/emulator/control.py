"""Local HTTP control endpoint (JSON) for scripting the emulator from outside Python.

Every route is one row of :data:`ROUTES`; ``GET /`` answers that table (method, path, what the
route does, an example body), so ``curl http://127.0.0.1:<control port>/`` shows what there is.
Arming, disarming and clearing alarms are not here: as on a real panel they go through the
integration protocol with a user code (the edge's local API, or any ETHM-1 client).

Errors use the project's one error shape: ``{"error": {"code", "message", "request_id", "details"}}``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, Literal

from aiohttp import web

from firmware_bridges.control import ControlRoute, Handler, add_routes, error_shape, readable_json

from .catalog import SYSTEM_TROUBLES
from .devices import UnknownDevice

if TYPE_CHECKING:
    from .ethm import SatelEmulator

_EMULATOR: web.AppKey[SatelEmulator] = web.AppKey("emulator")


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


async def _routes(request: web.Request) -> web.Response:
    panel = _emulator(request).panel
    return readable_json({
        "emulator": f"Satel ETHM-1 Plus with an INTEGRA panel: {len(panel.zones)} zones, "
                    f"{len(panel.partitions)} partitions, {len(panel.outputs)} outputs",
        "note": "arm, disarm and clear alarms through the integration protocol with a user code (on a "
                "Vigil edge: its local API, POST /api/v1/links/satel/{panel}/arm); a violated zone "
                "refuses arming unless forced, so arm first, then violate a zone to make an alarm",
        "routes": [route.listing() for route in ROUTES],
    })


async def _state(request: web.Request) -> web.Response:
    return web.json_response(_emulator(request).diagnostics())


def _action(device: Literal["zone", "partition"], act: Callable[[SatelEmulator, int], None]) -> Handler:
    """The handler doing ``act`` to the zone or partition (``device``) in the path; it answers
    that element's new state."""

    async def action(request: web.Request) -> web.Response:
        emulator = _emulator(request)
        number = _number(request, device)
        act(emulator, number)
        element = emulator.panel.zone(number) if device == "zone" else emulator.panel.partition(number)
        return web.json_response({device: asdict(element)})

    return action


async def _zone_temperature(request: web.Request) -> web.Response:
    emulator = _emulator(request)
    number = _number(request, "zone")
    celsius = (await _json_body(request)).get("celsius")
    if celsius is not None and (isinstance(celsius, bool) or not isinstance(celsius, int | float)):
        raise ValueError("celsius must be a number or null")
    emulator.set_temperature(number, celsius)
    return web.json_response({"zone": asdict(emulator.panel.zone(number))})


def _rename(device: str) -> Handler:
    """The handler renaming one kind of device (``"zone"``, ``"partition"``, ``"output"``)."""

    async def rename(request: web.Request) -> web.Response:
        number = _number(request, device)
        name = (await _json_body(request)).get("name")
        if not isinstance(name, str):
            raise ValueError("name must be a string")
        _emulator(request).rename(device, number, name)
        return web.json_response({device: number, "name": name})

    return rename


def _trouble_action(active: bool) -> Handler:
    """The handler raising (``active``) or ending the named trouble in the path."""

    async def trouble_action(request: web.Request) -> web.Response:
        emulator = _emulator(request)
        name = request.match_info["name"]
        (emulator.trigger_trouble if active else emulator.clear_trouble)(name)
        return web.json_response({"trouble": name, "active": active})

    return trouble_action


async def _clear_event_log(request: web.Request) -> web.Response:
    emulator = _emulator(request)
    emulator.clear_event_log()
    return web.json_response({"newest_event_index": emulator.panel.events.newest_index})


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


_TROUBLE_NAMES = ", ".join(SYSTEM_TROUBLES)

#: Every route the control endpoint serves, in the order ``GET /`` lists them.
ROUTES: tuple[ControlRoute, ...] = (
    ControlRoute("GET", "/", "this list of routes", _routes),
    ControlRoute("GET", "/state", "the panel's state and the module's counters (user codes and the key redacted)",
                 _state),
    ControlRoute("POST", "/zones/{number}/violate",
                 "a detector trips: the zone is violated; in an armed partition (zone not bypassed) that is a "
                 "burglary alarm; a violated zone stops its partition from arming unless forced",
                 _action("zone", lambda emulator, n: emulator.violate_zone(n))),
    ControlRoute("POST", "/zones/{number}/restore",
                 "the detector is quiet again (the alarm memory stays until the alarm is cleared)",
                 _action("zone", lambda emulator, n: emulator.restore_zone(n))),
    ControlRoute("POST", "/zones/{number}/tamper", "the detector's tamper loop opens: a tamper alarm, armed or not",
                 _action("zone", lambda emulator, n: emulator.tamper_zone(n))),
    ControlRoute("POST", "/zones/{number}/restore-tamper", "the tamper loop closes again; a tampered zone "
                 "refuses arming even forced", _action("zone", lambda emulator, n: emulator.restore_tamper(n))),
    ControlRoute("POST", "/zones/{number}/temperature", "what the zone reads as a temperature zone (null: unknown)",
                 _zone_temperature, {"celsius": 21.5}),
    *(ControlRoute("POST", f"/{device}s/{{number}}/name",
                   f"rename the {device}, as an installer does with DLOADX (control bytes such as NUL kept)",
                   _rename(device), {"name": "Hall"}) for device in ("zone", "partition", "output")),
    ControlRoute("POST", "/partitions/{number}/entry-time",
                 "someone entered the armed partition: entry time runs until it is disarmed",
                 _action("partition", lambda emulator, n: emulator.start_entry_time(n))),
    ControlRoute("POST", "/partitions/{number}/exit-time",
                 "exit time (over 10 s) runs until the partition is armed or disarmed",
                 _action("partition", lambda emulator, n: emulator.start_exit_time(n))),
    ControlRoute("POST", "/troubles/{name}/trigger", f"raise a system trouble and its memory ({_TROUBLE_NAMES})",
                 _trouble_action(True)),
    ControlRoute("POST", "/troubles/{name}/clear", "end a system trouble (its memory stays)", _trouble_action(False)),
    ControlRoute("POST", "/event-log/clear", "reset the panel's event log (the reset is the first new record)",
                 _clear_event_log),
    ControlRoute("POST", "/connections/cut", "drop every client of the module at once", _cut),
    ControlRoute("POST", "/response-delay", "delay every answer of the module (0: none)", _response_delay,
                 {"seconds": 1.5}),
    ControlRoute("POST", "/corrupt-next-frame", "send the module's next answer with a wrong checksum", _corrupt),
)


def create_control_app(emulator: SatelEmulator) -> web.Application:
    """The aiohttp application serving :data:`ROUTES` for ``emulator``."""
    app = web.Application(middlewares=[error_shape(not_found=(UnknownDevice,))])
    app[_EMULATOR] = emulator
    return add_routes(app, ROUTES)
