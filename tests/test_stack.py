"""`make run`'s launcher: it starts the whole system, says which port is taken, and Ctrl-C (or
its own death) leaves no process behind."""
from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import psutil

from provisioning.stack import PORTS
from shared.process import free_port
from support.waiting import wait_until


def _stack_env(run_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    env["VIGIL_RUN_DIR"] = str(run_dir)
    for spec in PORTS:
        env[spec.var] = str(free_port())
    return env


async def _start(env: dict[str, str]) -> tuple[asyncio.subprocess.Process, list[str]]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "provisioning.stack", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    while True:
        line = await asyncio.wait_for(proc.stdout.readline(), 180)
        assert line, "launcher exited before it was up:\n" + "".join(lines)
        lines.append(line.decode())
        if line.startswith(b"Press Ctrl-C"):
            return proc, lines


def _ingested(port: str) -> float:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
            text = resp.read().decode()
    except OSError:
        return 0.0
    match = re.search(r"^vigil_ingest_events_total (\S+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


def _login(port: str, email: str, password: str) -> dict:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/auth/login", method="POST",
                                     data=json.dumps({"email": email, "password": password}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as resp:
        return json.loads(resp.read())


def _alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    alive = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                alive.append(p)
        except psutil.NoSuchProcess:
            pass
    return alive


async def test_make_run_starts_everything_and_ctrl_c_leaves_no_orphans(tmp_path: Path) -> None:
    env = _stack_env(tmp_path / "var")
    proc, lines = await _start(env)
    output = "".join(lines)
    assert f"http://127.0.0.1:{env['VIGIL_RUN_HUB_HTTP_PORT']}" in output
    assert "PostgreSQL" in output and "embedded" in output
    children = psutil.Process(proc.pid).children(recursive=True)
    names = " ".join(" ".join(c.cmdline()) for c in children)
    # The demo box joined through the installer's flow: a token from the hub's API, then
    # `python -m edge enroll` over HTTPS; the agent runs with the config enrolment wrote.
    assert "enrolling the demo box" in output and "[3/7] presenting the token" in output, output
    for part in ("nats-server", "postgres", "-m hub serve", "-m edge --config", "edge.toml run"):
        assert part in names, f"{part} not running under the launcher: {names}"

    # The emulated panel's events travel edge → leaf → hub → PostgreSQL.
    await wait_until(lambda: _ingested(env["VIGIL_RUN_HUB_HTTP_PORT"]) >= 1, timeout=60,
                     what="the panel's events committed at the hub")
    # The login it printed works.
    login = re.search(r"login\s+(\S+) / (\S+)", output)
    assert login is not None, output
    tokens = await asyncio.to_thread(_login, env["VIGIL_RUN_HUB_HTTP_PORT"], login.group(1), login.group(2))
    assert tokens["access_token"]
    # So does the edge's arm recipe it printed: log in to the local page (the demo site admin),
    # then arm with the session cookie.
    [edge_login, arm] = [line.strip() for line in lines if line.strip().startswith(("curl -c ", "curl -b "))]
    logged_in = await asyncio.to_thread(subprocess.run, edge_login, shell=True, capture_output=True, text=True, timeout=30)
    assert json.loads(logged_in.stdout)["who"] == "admin:admin", (logged_in.stdout, logged_in.stderr)
    armed = await asyncio.to_thread(subprocess.run, arm, shell=True, capture_output=True, text=True, timeout=30)
    assert json.loads(armed.stdout)["result"] == "ACK", (armed.stdout, armed.stderr)

    proc.send_signal(signal.SIGINT)
    assert await asyncio.wait_for(proc.wait(), 90) == 0
    await wait_until(lambda: not _alive(children), timeout=30, what="every child process to exit")

    # A second run keeps the enrolment: no new token, the same box, events flow again.
    proc, lines = await _start(env)
    children = psutil.Process(proc.pid).children(recursive=True)
    assert "enrolling the demo box" not in "".join(lines)
    await wait_until(lambda: _ingested(env["VIGIL_RUN_HUB_HTTP_PORT"]) >= 1, timeout=60,
                     what="events committed after the restart")
    proc.send_signal(signal.SIGINT)
    assert await asyncio.wait_for(proc.wait(), 90) == 0
    await wait_until(lambda: not _alive(children), timeout=30, what="every child process to exit")


async def test_a_killed_launcher_takes_its_children_with_it(tmp_path: Path) -> None:
    env = _stack_env(tmp_path / "var")
    proc, _ = await _start(env)
    children = psutil.Process(proc.pid).children(recursive=True)
    assert children
    proc.kill()
    await proc.wait()
    await wait_until(lambda: not _alive(children), timeout=30, what="children to die with the launcher")


async def test_a_taken_port_is_named_before_anything_starts(tmp_path: Path) -> None:
    env = _stack_env(tmp_path / "var")
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
