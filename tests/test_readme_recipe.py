"""The README's "Make an alarm" recipe, run with bash as it stands against a `make run` stack,
from the stack's directory (so its var/… paths hold): it must make an alarm the hub shows.

The recipe names the default ports of the emulator's control endpoint, the edge and the hub
(127.0.0.1:17095, :8081, :8080). The stack runs on those when they are free, so the recipe runs
word for word. When one is taken (another stack on this machine), the stack gets a free port
instead and only that port number is changed in the recipe's text; the test says so in a warning.
"""
from __future__ import annotations

import asyncio
import json
import re
import subprocess
import urllib.request
import warnings
from pathlib import Path
from typing import Any

import psutil

from provisioning.demo_site import DEMO_OBJECT, OPERATOR_EMAIL
from provisioning.stack import GSM_MODEM_ID, HOST, PORTS, SATEL_PANEL_ID
from shared.process import free_port, port_is_free
from support.make_run import hub_call, login, stack_env, start_stack, stop_stack
from support.waiting import wait_until

README = Path(__file__).resolve().parents[1] / "README.md"
MARKER = "<!-- recipe: make-an-alarm"
#: The stack's ports the recipe talks to: the emulator's control endpoint, the edge, the hub.
RECIPE_PORTS = {"VIGIL_RUN_SATEL_CONTROL_PORT", "VIGIL_RUN_GSM_CONTROL_PORT", "VIGIL_RUN_ROBOT1_CONTROL_PORT",
                "VIGIL_RUN_EDGE_HTTP_PORT", "VIGIL_RUN_HUB_HTTP_PORT"}
_SPACE = re.compile(r"\s*")


def readme_recipe(text: str) -> str:
    """The fenced sh block right after the recipe's marker comment."""
    assert text.count(MARKER) == 1, f"README.md must mark the recipe once with {MARKER} … -->"
    match = re.match(r"[^\n]*-->\n```sh\n(.*?)\n```\n", text.split(MARKER, 1)[1], re.S)
    assert match is not None, "the marker must sit right above a ```sh block"
    return match.group(1)


def _address(port: int) -> re.Pattern[str]:
    return re.compile(rf"{re.escape(HOST)}:{port}(?!\d)")


def recipe_ports(script: str) -> tuple[dict[str, int], str]:
    """The ports for the stack the recipe runs against, and the recipe to run: each port it names
    is its default when free, else a free one, written into the recipe in place of the default."""
    named = {spec.var: spec.default for spec in PORTS if _address(spec.default).search(script)}
    assert set(named) == RECIPE_PORTS, f"the recipe names these stack ports: {sorted(named)}"
    defaults = {spec.default for spec in PORTS}
    strangers = {int(p) for p in re.findall(rf"{re.escape(HOST)}:(\d+)", script)} - defaults
    assert not strangers, f"the recipe names ports the stack does not serve: {sorted(strangers)}"
    ports: dict[str, int] = {}
    for var, default in named.items():
        if port_is_free(HOST, default):
            ports[var] = default
            continue
        ports[var] = free_port()
        script = _address(default).sub(f"{HOST}:{ports[var]}", script)
        warnings.warn(f"port {default} is taken on this machine: the recipe ran with {var} on {ports[var]} instead",
                      stacklevel=2)
    return ports, script


def _json_documents(text: str) -> list[Any]:
    """The JSON answers curl printed back to back (curl adds no newline between them)."""
    decoder, documents, at = json.JSONDecoder(), [], _SPACE.match(text, 0).end()  # type: ignore[union-attr]
    while at < len(text):
        document, at = decoder.raw_decode(text, at)
        documents.append(document)
        at = _SPACE.match(text, at).end()  # type: ignore[union-attr]
    return documents


def _alarms(hub: str, token: str, alarm_type: str) -> list[dict[str, Any]]:
    page = hub_call(hub, "GET", "/api/v1/alarms?status=NEW", token=token)
    return [a for a in page["items"] if a["alarm_type"] == alarm_type]


def _panel_connected(hub: str, token: str) -> bool:
    [site] = [o for o in hub_call(hub, "GET", "/api/v1/objects?q=Demo", token=token)["items"]
              if o["name"] == DEMO_OBJECT["name"]]
    [panel] = hub_call(hub, "GET", f"/api/v1/objects/{site['id']}", token=token)["panels"]
    return bool(panel["link_status"] == "CONNECTED")


def _control(port: int, path: str) -> dict[str, Any]:
    request = urllib.request.Request(f"http://{HOST}:{port}{path}", method="POST")
    with urllib.request.urlopen(request, timeout=10) as resp:
        return json.loads(resp.read())  # type: ignore[no-any-return]


def test_the_recipe_is_found_and_arms_before_it_violates() -> None:
    script = readme_recipe(README.read_text())
    arm, violate = script.index("/arm"), script.index("/zones/3/violate")
    restore = script.index("/zones/3/restore")
    assert restore < arm < violate, "a violated zone refuses arming: restore, arm, then violate"
    assert "'http://127.0.0.1:8080/api/v1/alarms?status=NEW'" in script
    assert readme_recipe(f"x\n{MARKER} -->\n```sh\necho hi\n```\n") == "echo hi"


async def test_the_readme_recipe_makes_an_alarm_the_hub_shows(tmp_path: Path) -> None:
    ports, script = recipe_ports(readme_recipe(README.read_text()))
    env = stack_env(tmp_path / "var", ports)
    hub = env["VIGIL_RUN_HUB_HTTP_PORT"]
    proc, _ = await start_stack(env)
    children = psutil.Process(proc.pid).children(recursive=True)
    try:
        operator = (tmp_path / "var" / "hub" / "operator-password").read_text().strip()
        token = (await asyncio.to_thread(login, hub, OPERATOR_EMAIL, operator))["access_token"]
        await wait_until(lambda: _panel_connected(hub, token), timeout=60, what="the edge's link to the panel")
        assert await asyncio.to_thread(_alarms, hub, token, "BURGLARY") == []
        # The detector was left tripped (what the old recipe did first): the recipe must still work.
        await asyncio.to_thread(_control, ports["VIGIL_RUN_SATEL_CONTROL_PORT"], "/zones/3/violate")

        ran = await asyncio.to_thread(subprocess.run, ["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path,
                                      env={k: v for k, v in env.items() if not k.startswith("VIGIL_")},
                                      capture_output=True, text=True, timeout=60)
        assert ran.returncode == 0, (ran.stdout, ran.stderr)
        answers = _json_documents(ran.stdout)
        assert not [a for a in answers if "error" in a], ran.stdout
        # restore, the edge's login, arm, violate, the SMS, the robot's collision, the alarm list
        # (the hub's login is captured).
        assert len(answers) == 7, ran.stdout
        assert answers[2]["result"] == "ACK", answers[2]
        assert answers[3]["zone"]["number"] == 3 and answers[3]["zone"]["alarm"] is True, answers[3]
        assert answers[4]["stored_at"], answers[4]
        assert "COLLISION" in answers[5]["faults"], answers[5]
        assert "items" in answers[6], answers[6]

        [alarm] = await wait_until(lambda: _alarms(hub, token, "BURGLARY"), timeout=30,
                                   what="the BURGLARY alarm at the hub")
        assert (alarm["object_name"], alarm["edge_id"], alarm["source"]) == (DEMO_OBJECT["name"], "site-1", SATEL_PANEL_ID)
        [cold] = await wait_until(lambda: _alarms(hub, token, "TEMPERATURE"), timeout=30,
                                  what="the TEMPERATURE alarm from the logger's SMS")
        assert (cold["object_name"], cold["source"], cold["requires_note"]) == (DEMO_OBJECT["name"], GSM_MODEM_ID, True)
        [robot] = await wait_until(lambda: _alarms(hub, token, "ROBOT"), timeout=30,
                                   what="the ROBOT alarm from RB-001's collision")
        assert (robot["object_name"], robot["source"]) == (DEMO_OBJECT["name"], "RB-001"), robot
    finally:
        await stop_stack(proc, children)
