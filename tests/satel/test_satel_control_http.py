"""The emulator's local HTTP control endpoint."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import aiohttp
import pytest

from firmware_bridges.satel.emulator import SAMPLE_USER_CODE, SYSTEM_TROUBLES, SatelEmulator
from firmware_bridges.satel.emulator.control import create_control_app
from firmware_bridges.satel.protocol import Cmd, PartitionState, ZoneState

KEY = "Integra1"


@pytest.fixture
async def emulator() -> AsyncIterator[SatelEmulator]:
    async with SatelEmulator(port=0, key=KEY, control_port=0) as emu:
        yield emu


@pytest.fixture
async def http(emulator: SatelEmulator) -> AsyncIterator[aiohttp.ClientSession]:
    base = f"http://127.0.0.1:{emulator.control_port}"
    async with aiohttp.ClientSession(base, timeout=aiohttp.ClientTimeout(total=10)) as session:
        yield session


async def test_root_lists_every_route_it_serves(emulator: SatelEmulator, http: aiohttp.ClientSession) -> None:
    async with http.get("/") as response:
        assert response.status == 200
        assert response.content_type == "application/json"
        text = await response.text()
    listing = json.loads(text)
    assert "\n  " in text, "indented, so it reads at a terminal"
    listed = {(r["method"], r["path"]) for r in listing["routes"]}
    served = {(r.method, r.resource.canonical) for r in create_control_app(emulator).router.routes()}
    assert listed == served
    assert len(listed) == len(listing["routes"]), "no route listed twice"
    for route in listing["routes"]:
        assert route["does"].strip(), route
    by_path = {(r["method"], r["path"]): r for r in listing["routes"]}
    assert "arm" in by_path[("POST", "/zones/{number}/violate")]["does"]
    assert by_path[("POST", "/response-delay")]["body"] == {"seconds": 1.5}
    assert all(name in by_path[("POST", "/troubles/{name}/trigger")]["does"] for name in SYSTEM_TROUBLES)
    assert "arm first, then violate" in listing["note"]
    assert "8 zones, 2 partitions, 2 outputs" in listing["emulator"]


async def test_every_listed_route_answers(emulator: SatelEmulator, http: aiohttp.ClientSession) -> None:
    async with http.get("/") as response:
        routes = (await response.json())["routes"]
    params = {"{number}": "1", "{name}": "ac"}
    for route in routes:
        path = route["path"]
        for placeholder, value in params.items():
            path = path.replace(placeholder, value)
        async with http.request(route["method"], path, json=route.get("body")) as response:
            assert response.status == 200, (route, await response.text())


async def test_zone_actions(emulator: SatelEmulator, http: aiohttp.ClientSession) -> None:
    async with http.post("/zones/3/violate") as response:
        assert response.status == 200
        assert (await response.json())["zone"]["violated"] is True
    assert emulator.panel.zone_set(ZoneState.VIOLATION) == {3}
    assert ZoneState.VIOLATION in emulator.panel.new_data

    async with http.post("/zones/3/restore") as response:
        assert response.status == 200
    async with http.post("/zones/5/tamper") as response:
        assert (await response.json())["zone"]["tamper_alarm"] is True
    assert emulator.panel.partition_set(PartitionState.ALARM) == {2}
    async with http.post("/zones/8/temperature", json={"celsius": -3.5}) as response:
        assert (await response.json())["zone"]["temperature_raw"] == 103


async def test_troubles_partitions_and_connection_controls(
    emulator: SatelEmulator, http: aiohttp.ClientSession
) -> None:
    async with http.post("/troubles/ac/trigger") as response:
        assert await response.json() == {"trouble": "ac", "active": True}
    assert Cmd.TROUBLES_1 in emulator.panel.new_data
    async with http.post("/partitions/1/exit-time") as response:
        assert (await response.json())["partition"]["exit_time"] is True
    async with http.post("/response-delay", json={"seconds": 0.5}) as response:
        assert response.status == 200
    assert emulator.server.response_delay == 0.5
    async with http.post("/corrupt-next-frame") as response:
        assert response.status == 200
    async with http.post("/connections/cut") as response:
        assert response.status == 200


async def test_rename_devices_and_clear_the_event_log(emulator: SatelEmulator, http: aiohttp.ClientSession) -> None:
    async with http.post("/zones/3/name", json={"name": "Biu\u0000ro"}) as response:
        assert await response.json() == {"zone": 3, "name": "Biu\x00ro"}
    assert emulator.panel.zone(3).name == "Biu\x00ro"
    for path, name in (("/partitions/2/name", "Hala"), ("/outputs/1/name", "Syrena zewn.")):
        async with http.post(path, json={"name": name}) as response:
            assert response.status == 200
    assert (emulator.panel.partition(2).name, emulator.panel.output(1).name) == ("Hala", "Syrena zewn.")

    emulator.tamper_zone(1)
    async with http.post("/event-log/clear") as response:
        newest = (await response.json())["newest_event_index"]
    assert emulator.panel.events.latest(10) == (newest,)


async def test_state_redacts_secrets(http: aiohttp.ClientSession) -> None:
    async with http.get("/state") as response:
        assert response.status == 200
        text = await response.text()
    assert SAMPLE_USER_CODE not in text and KEY not in text
    state = await response.json()
    assert len(state["panel"]["zones"]) == 8
    assert state["encryption"] == {"enabled": True, "integration_key": "<redacted>"}


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code"),
    [
        ("POST", "/zones/99/violate", None, 404, "not_found"),
        ("POST", "/zones/abc/violate", None, 400, "bad_request"),
        ("POST", "/zones/1/explode", None, 404, "not_found"),
        ("POST", "/troubles/flood/trigger", None, 404, "not_found"),
        ("POST", "/response-delay", {"seconds": "soon"}, 400, "bad_request"),
        ("POST", "/response-delay", {"seconds": -1}, 400, "bad_request"),
        ("POST", "/zones/8/temperature", [1, 2], 400, "bad_request"),
        ("POST", "/zones/1/name", {"name": 5}, 400, "bad_request"),
        ("POST", "/zones/1/name", {"name": "日本"}, 400, "bad_request"),
        ("POST", "/outputs/9/name", {"name": "x"}, 404, "not_found"),
        ("GET", "/zones/1/violate", None, 405, "method_not_allowed"),
        ("GET", "/nowhere", None, 404, "not_found"),
        ("POST", "/", None, 405, "method_not_allowed"),
    ],
)
async def test_errors_use_the_one_error_shape(
    http: aiohttp.ClientSession, method: str, path: str, body: object, status: int, code: str
) -> None:
    async with http.request(method, path, json=body, headers={"X-Request-Id": "req-1"}) as response:
        assert response.status == status
        payload = await response.json()
    assert payload["error"]["code"] == code
    assert payload["error"]["request_id"] == "req-1"
    assert set(payload["error"]) == {"code", "message", "request_id", "details"}


async def test_bad_json_body(http: aiohttp.ClientSession) -> None:
    async with http.post("/response-delay", data=b"{not json", headers={"Content-Type": "application/json"}) as r:
        assert r.status == 400
        assert (await r.json())["error"]["code"] == "bad_request"
