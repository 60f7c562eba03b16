"""`make run` stacks for tests: the launcher (python -m provisioning.stack) on ports of the test's
choosing, started until it prints its summary, and the few hub calls the tests make of it."""
from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
import urllib.request
from pathlib import Path
from typing import Any

import psutil

from provisioning.stack import PORTS
from shared.process import free_port
from support.waiting import wait_until

#: How long a launcher may take to print its summary (enrolment included) on a busy machine.
START_TIMEOUT_S = 180


def stack_env(run_dir: Path, ports: dict[str, int] | None = None) -> dict[str, str]:
    """The launcher's environment: no inherited VIGIL_ variable, data in `run_dir`, every port
    from `ports` or else a free one."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    env["VIGIL_RUN_DIR"] = str(run_dir)
    for spec in PORTS:
        env[spec.var] = str((ports or {}).get(spec.var) or free_port())
    return env


async def start_stack(env: dict[str, str]) -> tuple[asyncio.subprocess.Process, list[str]]:
    """Start the launcher; returns it and what it printed, once it printed its summary."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "provisioning.stack", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    while True:
        line = await asyncio.wait_for(proc.stdout.readline(), START_TIMEOUT_S)
        assert line, "launcher exited before it was up:\n" + "".join(lines)
        lines.append(line.decode())
        if line.startswith(b"Press Ctrl-C"):
            return proc, lines


def alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    """The processes of `procs` still running."""
    running = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                running.append(p)
        except psutil.NoSuchProcess:
            pass
    return running


async def stop_stack(proc: asyncio.subprocess.Process, children: list[psutil.Process]) -> None:
    """Ctrl-C the launcher; it must exit 0 and leave none of `children` behind."""
    proc.send_signal(signal.SIGINT)
    assert await asyncio.wait_for(proc.wait(), 90) == 0
    await wait_until(lambda: not alive(children), timeout=30, what="every child process to exit")


def ingested(port: str) -> float:
    """How many events the hub on `port` committed (0 while it does not answer)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
            text = resp.read().decode()
    except OSError:
        return 0.0
    match = re.search(r"^vigil_ingest_events_total (\S+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


def hub_call(port: str, method: str, path: str, body: dict[str, Any] | None = None, token: str = "") -> Any:
    """One call of the hub's API on `port`; raises urllib.error.HTTPError for an error answer."""
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method, headers=headers,
                                     data=None if body is None else json.dumps(body).encode())
    with urllib.request.urlopen(request, timeout=30) as resp:
        return json.loads(resp.read())


def login(port: str, email: str, password: str) -> dict[str, Any]:
    """The token pair of a sign-in at the hub on `port`."""
    return hub_call(port, "POST", "/api/v1/auth/login", {"email": email, "password": password})  # type: ignore[no-any-return]
