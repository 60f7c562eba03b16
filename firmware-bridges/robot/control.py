"""The MOCK robot's HTTP control endpoint (JSON, 127.0.0.1 only): what a real robot suffers,
injected from outside — faults, a flat battery, its emergency stop button, a failing command, a
setting it will not take as asked — and what its link suffers: silence (it stops answering the
edge but keeps its heartbeat) and a dropped connection. `GET /` lists every route.

Errors use the project's one error shape: `{"error": {"code", "message", "request_id", "details"}}`.
"""
from __future__ import annotations

from typing import Annotated, Any

import msgspec
from aiohttp import web

from firmware_bridges.control import ControlRoute, add_routes, error_shape, read_body, readable_json
from shared.robots import Settings

from .diagnostics import diagnostics
from .link import RobotLink
from .mock import MockRobot
from .sim import STOPPING_FAULTS

_LINK: web.AppKey[RobotLink] = web.AppKey("robot_link")
_ROBOT: web.AppKey[MockRobot] = web.AppKey("mock_robot")


class OnIn(msgspec.Struct, forbid_unknown_fields=True):
    on: bool


class BatteryIn(msgspec.Struct, forbid_unknown_fields=True):
    pct: Annotated[float, msgspec.Meta(ge=0, le=100)]


class ButtonIn(msgspec.Struct, forbid_unknown_fields=True):
    pressed: bool


class FailNextIn(msgspec.Struct, forbid_unknown_fields=True):
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] = "injected failure"


class OverrideIn(msgspec.Struct, forbid_unknown_fields=True):
    setting: str
    value: Any = None  # None: apply what is asked again


async def _routes(_request: web.Request) -> web.Response:
    return readable_json({"emulator": "MOCK patrol robot behind the Vigil robot bridge",
                          "routes": [route.listing() for route in ROUTES]})


async def _state(request: web.Request) -> web.Response:
    return web.json_response(diagnostics(request.app[_LINK], request.app[_ROBOT]))


async def _fault(request: web.Request) -> web.Response:
    name = request.match_info["name"].upper()
    if name not in STOPPING_FAULTS:
        raise web.HTTPNotFound(reason="Unknown fault")
    body = await read_body(request, OnIn)
    sim = request.app[_ROBOT].sim
    sim.raise_fault(name) if body.on else sim.clear_fault(name)  # type: ignore[arg-type]
    return web.json_response({"faults": sorted(sim.faults), "state": sim.state.value})


async def _battery(request: web.Request) -> web.Response:
    body = await read_body(request, BatteryIn)
    sim = request.app[_ROBOT].sim
    sim.set_battery(body.pct)
    return web.json_response({"battery_pct": sim.battery_pct, "faults": sorted(sim.faults)})


async def _estop_button(request: web.Request) -> web.Response:
    body = await read_body(request, ButtonIn)
    sim = request.app[_ROBOT].sim
    sim.press_estop_button() if body.pressed else sim.release_estop_button()
    return web.json_response({"estop_pressed": sim.estop_pressed, "state": sim.state.value})


async def _silence(request: web.Request) -> web.Response:
    body = await read_body(request, OnIn)
    request.app[_LINK].silenced = body.on
    return web.json_response({"silenced": body.on})


async def _disconnect(request: web.Request) -> web.Response:
    request.app[_LINK].disconnect()
    return web.json_response({"wanted": False})


async def _reconnect(request: web.Request) -> web.Response:
    request.app[_LINK].reconnect()
    return web.json_response({"wanted": True})


async def _fail_next(request: web.Request) -> web.Response:
    body = await read_body(request, FailNextIn)
    request.app[_ROBOT].fail_next = body.reason
    return web.json_response({"fail_next": body.reason})


async def _apply_override(request: web.Request) -> web.Response:
    body = await read_body(request, OverrideIn)
    sim = request.app[_ROBOT].sim
    if body.setting not in {f.encode_name for f in msgspec.structs.fields(Settings)}:
        raise ValueError(f"no setting {body.setting!r}")
    if body.value is None:
        sim.overrides.pop(body.setting, None)
    else:
        msgspec.convert({body.setting: body.value}, Settings)  # the robot must be able to run with it
        sim.overrides[body.setting] = body.value
    return web.json_response({"overrides": sim.overrides})


#: Every route the control endpoint serves, in the order `GET /` lists them.
ROUTES: tuple[ControlRoute, ...] = (
    ControlRoute("GET", "/", "this list of routes", _routes),
    ControlRoute("GET", "/state", "the robot, its bridge's queue, fencing and counters (no password)", _state),
    ControlRoute("POST", "/faults/{name}", f"raise or clear a fault ({', '.join(STOPPING_FAULTS)}); a raised one "
                 "ends the running command and puts the robot in ERROR until reset", _fault, {"on": True}),
    ControlRoute("POST", "/battery", "the battery reads this much now (at 5 % or less: BATTERY_CRITICAL)", _battery,
                 {"pct": 4}),
    ControlRoute("POST", "/estop-button", "press (EMERGENCY_STOP) or release the robot's emergency stop button; "
                 "reset refuses while it is pressed", _estop_button, {"pressed": True}),
    ControlRoute("POST", "/silence", "the robot ignores commands and settings but keeps its heartbeat "
                 "(the edge's TIMEOUT path)", _silence, {"on": True}),
    ControlRoute("POST", "/disconnect", "drop the NATS connection without a goodbye, until /reconnect", _disconnect),
    ControlRoute("POST", "/reconnect", "connect again (a status goes out at once)", _reconnect),
    ControlRoute("POST", "/fail-next", "the next command ends FAILED with this reason", _fail_next,
                 {"reason": "wheel slip"}),
    ControlRoute("POST", "/apply-override", "apply this value whenever the setting is asked for, whatever was "
                 "asked (value null: stop)", _apply_override, {"setting": "maxSpeedMps", "value": 1.0}),
)


def create_control_app(link: RobotLink, robot: MockRobot) -> web.Application:
    """The aiohttp application serving `ROUTES` for this bridge and its MOCK robot."""
    app = web.Application(middlewares=[error_shape()])
    app[_LINK] = link
    app[_ROBOT] = robot
    return add_routes(app, ROUTES)
