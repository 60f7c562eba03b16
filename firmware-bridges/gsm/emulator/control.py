"""The emulated modem's HTTP control endpoint (JSON, 127.0.0.1): make an SMS arrive, switch faults,
reboot the modem, change its signal and registration. `GET /` lists every route.

Errors use the project's one error shape: `{"error": {"code", "message", "request_id", "details"}}`.
"""
from __future__ import annotations

import datetime
from typing import TYPE_CHECKING, Annotated, Literal

import msgspec
from aiohttp import web

from firmware_bridges.control import error_shape, read_body

from .modem import Fault

if TYPE_CHECKING:
    from .runner import GsmEmulator

_EMULATOR: web.AppKey["GsmEmulator"] = web.AppKey("gsm_emulator")

ROUTES = [
    {"method": "GET", "path": "/", "does": "this list"},
    {"method": "POST", "path": "/sms", "does": "an SMS arrives from the network (split into `parts` when asked)",
     "example": {"sender": "+48600123012", "text": "Efento: sensor 282C02 temperature 9.4°C above 8.0°C",
                 "encoding": "ucs2", "parts": 2, "smsc_time": "2026-11-30T14:05:00+01:00"}},
    {"method": "GET", "path": "/storage", "does": "the messages in the modem's storage, and those the network holds"},
    {"method": "POST", "path": "/faults/{name}", "does": f"switch a fault on or off: {', '.join(f.value for f in Fault)}",
     "example": {"on": True}},
    {"method": "POST", "path": "/slow", "does": "delay every answer by `seconds`", "example": {"seconds": 2.5}},
    {"method": "POST", "path": "/reboot", "does": "the modem restarts by itself: settings reset, RDY"},
    {"method": "POST", "path": "/signal", "does": "set the +CSQ rssi (0-31, 99 unknown)", "example": {"rssi": 5}},
    {"method": "POST", "path": "/registration", "does": "set the +CREG stat (0 none, 1 home, 2 searching, 5 roaming)",
     "example": {"stat": 2}},
]


class SmsIn(msgspec.Struct, forbid_unknown_fields=True):
    sender: Annotated[str, msgspec.Meta(min_length=1, max_length=20)]
    text: Annotated[str, msgspec.Meta(max_length=4000)]
    encoding: Literal["gsm7", "ucs2"] = "gsm7"
    parts: Annotated[int, msgspec.Meta(ge=1, le=255)] | None = None
    smsc_time: datetime.datetime | None = None


class FaultIn(msgspec.Struct, forbid_unknown_fields=True):
    on: bool


class SlowIn(msgspec.Struct, forbid_unknown_fields=True):
    seconds: Annotated[float, msgspec.Meta(ge=0, le=60)]


class SignalIn(msgspec.Struct, forbid_unknown_fields=True):
    rssi: Annotated[int, msgspec.Meta(ge=0, le=99)]


class RegistrationIn(msgspec.Struct, forbid_unknown_fields=True):
    stat: Annotated[int, msgspec.Meta(ge=0, le=5)]


async def _routes(_request: web.Request) -> web.Response:
    return web.json_response(ROUTES)


async def _sms(request: web.Request) -> web.Response:
    body = await read_body(request, SmsIn)
    if body.smsc_time is not None and body.smsc_time.tzinfo is None:
        raise ValueError("smsc_time needs its UTC offset, as an SMSC stamps it")
    stored = request.app[_EMULATOR].send_sms(body.sender, body.text, encoding=body.encoding, parts=body.parts,
                                             smsc_time=body.smsc_time)
    return web.json_response({"stored_at": stored, "held_by_network": len(request.app[_EMULATOR].modem.waiting)})


async def _storage(request: web.Request) -> web.Response:
    modem = request.app[_EMULATOR].modem
    return web.json_response({
        "capacity": modem.capacity,
        "messages": [{"index": m.index, "stat": m.stat, "pdu": m.pdu.hex().upper()}
                     for m in sorted(modem.storage.values(), key=lambda m: m.index)],
        "held_by_network": len(modem.waiting),
    })


async def _fault(request: web.Request) -> web.Response:
    try:
        fault = Fault(request.match_info["name"])
    except ValueError:
        raise web.HTTPNotFound(reason="Unknown fault") from None
    body = await read_body(request, FaultIn)
    faults = request.app[_EMULATOR].modem.faults
    faults.add(fault) if body.on else faults.discard(fault)
    return web.json_response({"faults": sorted(f.value for f in faults)})


async def _slow(request: web.Request) -> web.Response:
    body = await read_body(request, SlowIn)
    request.app[_EMULATOR].slow_s = body.seconds
    return web.json_response({"seconds": body.seconds})


async def _reboot(request: web.Request) -> web.Response:
    request.app[_EMULATOR].reboot()
    return web.json_response({"rebooted": True})


async def _signal(request: web.Request) -> web.Response:
    body = await read_body(request, SignalIn)
    request.app[_EMULATOR].modem.rssi = body.rssi
    return web.json_response({"rssi": body.rssi})


async def _registration(request: web.Request) -> web.Response:
    body = await read_body(request, RegistrationIn)
    request.app[_EMULATOR].modem.registration = body.stat
    return web.json_response({"stat": body.stat})


def control_app(emulator: "GsmEmulator") -> web.Application:
    """The control endpoint's application for `emulator`."""
    app = web.Application(middlewares=[error_shape()])
    app[_EMULATOR] = emulator
    app.router.add_get("/", _routes)
    app.router.add_post("/sms", _sms)
    app.router.add_get("/storage", _storage)
    app.router.add_post("/faults/{name}", _fault)
    app.router.add_post("/slow", _slow)
    app.router.add_post("/reboot", _reboot)
    app.router.add_post("/signal", _signal)
    app.router.add_post("/registration", _registration)
    return app
