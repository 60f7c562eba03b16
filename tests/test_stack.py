"""`make run`'s launcher: it starts the whole system, says which port is taken, and Ctrl-C (or
its own death) leaves no process behind. The demo site it sets up lets an operator do the job."""
from __future__ import annotations

import asyncio
import json
import re
import socket
import subprocess
import sys
import urllib.error
from pathlib import Path
from typing import Any

import psutil
import pytest

from firmware_bridges.satel.emulator import sample_panel
from hub.alarms import classify
from provisioning.demo_site import DEMO_CONTACTS, DEMO_PARTITIONS, DEMO_PROCEDURES, DEMO_ZONES, OPERATOR_EMAIL
from support.make_run import alive, hub_call, ingested, login, stack_env, start_stack, stop_stack
from support.waiting import wait_until

#: Every alarm type the hub raises (hub/alarms/classify.py names each as a module constant).
ALARM_TYPES = {v for k, v in vars(classify).items() if k.isupper() and isinstance(v, str)}


def test_the_demo_procedures_cover_every_alarm_type() -> None:
    assert set(DEMO_PROCEDURES) == ALARM_TYPES
    for steps in DEMO_PROCEDURES.values():
        lines = steps.splitlines()
        assert len(lines) >= 3 and all(line.startswith(f"{n}. ") for n, line in enumerate(lines, 1)), steps


def test_the_console_offers_every_alarm_type() -> None:
    """The console's procedure editor and history filter list the hub's alarm types, all of them."""
    source = (Path(classify.__file__).parent.parent / "console" / "static" / "admin_objects.js").read_text()
    listed = re.search(r"export const ALARM_TYPES = \[([^\]]*)\]", source)
    assert listed is not None
    assert set(re.findall(r'"([A-Z_]+)"', listed.group(1))) == ALARM_TYPES


def test_the_demo_zones_are_the_emulated_panels() -> None:
    panel = sample_panel()
    assert {z["number"]: z["partition_number"] for z in DEMO_ZONES} == {n: z.partition for n, z in panel.zones.items()}
    assert {p["number"] for p in DEMO_PARTITIONS} == set(panel.partitions)
    assert [c["call_order"] for c in DEMO_CONTACTS] == [1, 2]


def _demo_data(port: str, token: str) -> dict[str, Any]:
    """What an operator sees of the demo site: the object, its panel, the users."""
    [site] = [o for o in hub_call(port, "GET", "/api/v1/objects?q=Demo", token=token)["items"] if o["name"] == "Demo site"]
    detail = hub_call(port, "GET", f"/api/v1/objects/{site['id']}", token=token)
    [panel] = detail["panels"]
    return {"object": detail, "panel": hub_call(port, "GET", f"/api/v1/panels/{panel['id']}", token=token),
            "users": hub_call(port, "GET", "/api/v1/users", token=token)}


def _printed_login(output: str, email: str) -> str:
    match = re.search(rf"login\s+{re.escape(email)} / (\S+)", output)
    assert match is not None, output
    return match.group(1)


async def test_make_run_starts_everything_and_ctrl_c_leaves_no_orphans(tmp_path: Path) -> None:
    env = stack_env(tmp_path / "var")
    hub = env["VIGIL_RUN_HUB_HTTP_PORT"]
    proc, lines = await start_stack(env)
    output = "".join(lines)
    assert f"http://127.0.0.1:{hub}" in output
    assert "PostgreSQL" in output and "embedded" in output
    children = psutil.Process(proc.pid).children(recursive=True)
    names = " ".join(" ".join(c.cmdline()) for c in children)
    # The demo box joined through the installer's flow: a token from the hub's API, then
    # `python -m edge enroll` over HTTPS; the agent runs with the config enrolment wrote.
    assert "enrolling the demo box" in output and "[3/7] presenting the token" in output, output
    for part in ("nats-server", "postgres", "-m hub serve", "-m edge --config", "edge.toml run"):
        assert part in names, f"{part} not running under the launcher: {names}"

    # The emulated panel's events travel edge → leaf → hub → PostgreSQL.
    await wait_until(lambda: ingested(hub) >= 1, timeout=60, what="the panel's events committed at the hub")
    # Both logins it printed work: the MASTER's, and the OPERATOR's, whose password is kept in a
    # 0600 file and needs no change at the first sign-in.
    master = await asyncio.to_thread(login, hub, "master@vigil.local", _printed_login(output, "master@vigil.local"))
    operator_password = _printed_login(output, OPERATOR_EMAIL)
    operator_file = tmp_path / "var" / "hub" / "operator-password"
    assert operator_file.read_text().strip() == operator_password and operator_file.stat().st_mode & 0o777 == 0o600
    operator = await asyncio.to_thread(login, hub, OPERATOR_EMAIL, operator_password)
    assert operator["password_change_required"] is False
    me = await asyncio.to_thread(hub_call, hub, "GET", "/api/v1/auth/me", token=operator["access_token"])
    assert me["role"] == "OPERATOR"

    # The demo site has what an operator needs: an address, whom to call in order, a procedure
    # for every alarm type, the panel's partitions and zones by name.
    demo = await asyncio.to_thread(_demo_data, hub, master["access_token"])
    site = demo["object"]
    assert site["address"]
    assert [(c["call_order"], c["name"]) for c in site["contacts"]] == [(1, "Anna Kowalska"), (2, "Piotr Nowak")]
    assert all(c["phone"] and c["role"] for c in site["contacts"])
    assert {p["alarm_type"]: p["steps"] for p in site["procedures"]} == DEMO_PROCEDURES
    assert {(z["number"], z["name"], z["partition_number"]) for z in demo["panel"]["zones"]} == \
        {(z["number"], z["name"], z["partition_number"]) for z in DEMO_ZONES}
    assert [(p["number"], p["name"]) for p in demo["panel"]["partitions"]] == [(1, "Office"), (2, "Storeroom")]

    # The edge's recipe it printed works too: log in to the local page (the demo site admin),
    # arm with the session cookie, then trip a zone in the armed partition.
    [edge_login, arm] = [line.strip() for line in lines if line.strip().startswith(("curl -c ", "curl -b "))]
    [violate] = [line.strip() for line in lines if line.strip().startswith("curl -X POST") and "/violate" in line]
    logged_in = await asyncio.to_thread(subprocess.run, edge_login, shell=True, capture_output=True, text=True, timeout=30)
    assert json.loads(logged_in.stdout)["who"] == "admin:admin", (logged_in.stdout, logged_in.stderr)
    armed = await asyncio.to_thread(subprocess.run, arm, shell=True, capture_output=True, text=True, timeout=30)
    assert json.loads(armed.stdout)["result"] == "ACK", (armed.stdout, armed.stderr)
    tripped = await asyncio.to_thread(subprocess.run, violate, shell=True, capture_output=True, text=True, timeout=30)
    assert json.loads(tripped.stdout)["zone"]["alarm"] is True, (tripped.stdout, tripped.stderr)

    # The demo site's two mock robots joined through their own logins on the box's server: the
    # hub knows who they are and hears them.
    async def robots_online() -> bool:
        listed = await asyncio.to_thread(hub_call, hub, "GET", "/api/v1/robots", token=operator["access_token"])
        return sorted(r["robotId"] for r in listed["items"] if r["connection"]["state"] == "ONLINE") == ["RB-001", "RB-002"]

    await wait_until(robots_online, timeout=60, what="both demo robots online at the hub")
    robot = await asyncio.to_thread(hub_call, hub, "GET", "/api/v1/robots/RB-001", token=operator["access_token"])
    assert robot["identity"]["identity"]["serialNumber"] == "MOCK-RB-001" and robot["capability"], robot
    assert "firmware_bridges.robot" in names and "--robot-id RB-002" in names

    # Someone renames a zone on the console, and after the run the operator's password file is
    # lost: the next run must keep the rename and give the same account a new working password.
    [zone_3] = [z for z in demo["panel"]["zones"] if z["number"] == 3]
    await asyncio.to_thread(hub_call, hub, "PATCH", f"/api/v1/zones/{zone_3['id']}",
                            {"version": zone_3["version"], "name": "Office (renamed)"}, master["access_token"])
    await stop_stack(proc, children)
    operator_file.unlink()

    # A second run on the same var/ keeps the enrolment (no new token, the same box, events flow
    # again) and the demo data: nothing doubled, what was changed kept.
    proc, lines = await start_stack(env)
    children = psutil.Process(proc.pid).children(recursive=True)
    output = "".join(lines)
    assert "enrolling the demo box" not in output
    await wait_until(lambda: ingested(hub) >= 1, timeout=60, what="events committed after the restart")
    master = await asyncio.to_thread(login, hub, "master@vigil.local", _printed_login(output, "master@vigil.local"))
    again = await asyncio.to_thread(_demo_data, hub, master["access_token"])
    for key in ("contacts", "procedures", "panels"):
        assert [x["id"] for x in again["object"][key]] == [x["id"] for x in site[key]], key
    for key in ("zones", "partitions", "outputs"):
        assert [x["id"] for x in again["panel"][key]] == [x["id"] for x in demo["panel"][key]], key
    assert [z["name"] for z in again["panel"]["zones"] if z["number"] == 3] == ["Office (renamed)"]
    assert sorted(u["id"] for u in again["users"]) == sorted(u["id"] for u in demo["users"])
    new_password = _printed_login(output, OPERATOR_EMAIL)
    assert new_password != operator_password and operator_file.read_text().strip() == new_password
    assert (await asyncio.to_thread(login, hub, OPERATOR_EMAIL, new_password))["password_change_required"] is False
    with pytest.raises(urllib.error.HTTPError) as refused:
        await asyncio.to_thread(login, hub, OPERATOR_EMAIL, operator_password)
    assert refused.value.code == 401
    await stop_stack(proc, children)


async def test_a_killed_launcher_takes_its_children_with_it(tmp_path: Path) -> None:
    env = stack_env(tmp_path / "var")
    proc, _ = await start_stack(env)
    children = psutil.Process(proc.pid).children(recursive=True)
    assert children
    proc.kill()
    await proc.wait()
    await wait_until(lambda: not alive(children), timeout=30, what="children to die with the launcher")


async def test_a_taken_port_is_named_before_anything_starts(tmp_path: Path) -> None:
    env = stack_env(tmp_path / "var")
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        env["VIGIL_RUN_HUB_HTTP_PORT"] = str(port)
        env["VIGIL_RUN_EDGE_HTTP_PORT"] = "not-a-port"
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "provisioning.stack", env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 2
    text = err.decode()
    assert f"port {port} (hub HTTP (API and console)) is taken: set VIGIL_RUN_HUB_HTTP_PORT to a free port" in text
    assert "VIGIL_RUN_EDGE_HTTP_PORT='not-a-port' is not a port number" in text
    assert not (tmp_path / "var").exists()
