"""An installer's whole path with real processes (issue 10): an admin creates an edge through the
hub's API, the box runs `python -m edge enroll` with the token, its leaf nats-server starts from the
config enrolment wrote and joins the hub over TLS with its credential, the agent's events arrive,
`python -m edge check` is all green; the spent token is refused; a revocation drops the box's
leaf link within 5 s, keeps it out, and turns `check` red."""
from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from shared.nats_server import nats_server_binary
from shared.process import ManagedProcess, free_port, tcp_port_open
from support.topology import HOST, Topology
from support.waiting import wait_until

MASTER = ("master@example.com", "enrolment master password 1")
EDGE = "bank-7"


def _api(port: int, method: str, path: str, token: str = "", body: dict | None = None) -> dict:
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    request = urllib.request.Request(f"http://{HOST}:{port}{path}", method=method, headers=headers,
                                     data=None if body is None else json.dumps(body).encode())
    with urllib.request.urlopen(request, timeout=60) as resp:
        return json.loads(resp.read())


def _edge_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """The installer's tool as the README shows it: the `vigil-edge` console script."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    script = Path(sys.executable).parent / "vigil-edge"
    return subprocess.run([str(script), *args], capture_output=True, text=True, timeout=120, env=env)


def _leafs(http_port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://{HOST}:{http_port}/leafz", timeout=2) as resp:
            return int(json.loads(resp.read())["leafnodes"])
    except OSError:
        return -1


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _hub_cli(dsn: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}, "VIGIL_HUB_DATABASE_URL": dsn}
    return subprocess.run([sys.executable, "-m", "hub", *args], capture_output=True, text=True, timeout=120, env=env)


@pytest.mark.parametrize("revoke_via", ["api", "cli"])
async def test_token_enroll_leaf_events_check_then_revoke(topology: Topology, tmp_path: Path, revoke_via: str) -> None:
    config = topology.enrolling_hub_config(auth={"secret_file": str(tmp_path / "hub-secret.key"),
                                                 "master_email": MASTER[0], "master_password": MASTER[1]})
    await topology.spawn_hub(config)
    admin = (await asyncio.to_thread(_api, config.http_port, "POST", "/api/v1/auth/login", "",
                                     {"email": MASTER[0], "password": MASTER[1]}))["access_token"]
    created = await asyncio.to_thread(_api, config.http_port, "POST", "/api/v1/edges", admin, {"edge_id": EDGE})

    box = tmp_path / "box"
    nats_port, nats_http, http_port = free_port(), free_port(), free_port()
    enroll = ["enroll", "--hub", created["hub_url"], "--token", created["token"], "--fingerprint",
              created["fingerprint"], "--data-dir", str(box / "data"), "--http-port", str(http_port),
              "--nats-port", str(nats_port), "--nats-http-port", str(nats_http),
              "--site-admin-password-file", str(box / "admin.password")]
    done = await asyncio.to_thread(_edge_cli, *enroll, "--config-dir", str(box / "config"))
    assert done.returncode == 0, done.stdout + done.stderr
    for step in range(1, 8):
        assert f"[{step}/7]" in done.stdout
    assert f"this box is edge {EDGE!r}" in done.stdout and "Next:" in done.stdout
    config_path, nats_conf = box / "config" / "edge.toml", box / "config" / "nats.conf"
    for secret in (config_path, nats_conf, box / "config" / "leaf.json", box / "config" / "leaf.key",
                   box / "data" / "edge.key", box / "admin.password"):
        assert _mode(secret) == 0o600, secret

    # The box's leaf server runs from exactly the file enrolment wrote, and joins the hub.
    leaf = ManagedProcess("box-nats", [nats_server_binary(), "-c", str(nats_conf)], log_path=tmp_path / "box-nats.log")
    leaf.start()
    try:
        # Two leaf links: the site's, and the journal replica's to the edge's own account.
        await leaf.wait_ready(lambda: _leafs(nats_http) == 2, 30)
        agent = ManagedProcess("box-agent", [sys.executable, "-m", "edge", "--config", str(config_path), "run"],
                               log_path=tmp_path / "box-agent.log",
                               env={**os.environ, "VIGIL_EDGE_DEMO_ENABLED": "true", "VIGIL_EDGE_DEMO_INTERVAL_S": "0.2"})
        agent.start()
        try:
            await agent.wait_ready(lambda: tcp_port_open(HOST, http_port), 60)
            await topology.wait_events(3, edge_id=EDGE)

            checked = await asyncio.to_thread(_edge_cli, "--config", str(config_path), "check")
            assert checked.returncode == 0 and "FAIL" not in checked.stdout, checked.stdout + checked.stderr
            for row in ("edge key", "hub HTTPS", "hub leaf credential", "local NATS (agent)", "data folder"):
                assert row in checked.stdout

            # The token enrolled once; another box presenting it is told so.
            again = await asyncio.to_thread(_edge_cli, *enroll, "--config-dir", str(tmp_path / "box2" / "config"))
            assert again.returncode == 1 and "already used" in again.stderr, again.stdout + again.stderr

            if revoke_via == "api":
                revoked = await asyncio.to_thread(_api, config.http_port, "POST", f"/api/v1/edges/{EDGE}/revoke", admin)
                assert revoked["revoked"] is True
            else:  # the running hub notices the table changed (hub.edges.setup.keep_access_in_step)
                done = await asyncio.to_thread(_hub_cli, topology.dsn, "edge", "revoke", EDGE)
                assert done.returncode == 0, done.stderr
            await wait_until(lambda: _leafs(nats_http) == 0, timeout=5, what="the revoked box's leaf link dropped")
            # It keeps trying (every second) and keeps being refused.
            await wait_until(lambda: (tmp_path / "box-nats.log").read_text().count("Authorization Violation") >= 2,
                             timeout=20, what="the box's reconnects refused")
            assert _leafs(nats_http) == 0

            checked = await asyncio.to_thread(_edge_cli, "--config", str(config_path), "check")
            assert checked.returncode == 1, checked.stdout
            [leaf_row] = [line for line in checked.stdout.splitlines() if "hub leaf credential" in line]
            assert leaf_row.startswith("FAIL") and "Authorization Violation" in leaf_row, checked.stdout
            assert "ask the hub admin for a new token" in checked.stdout
        finally:
            agent.stop(30)
    finally:
        leaf.stop(10)
    actions = [r["action"] for r in await topology.pool.fetch(
        "SELECT action FROM audit_log WHERE action LIKE 'edge.%' ORDER BY id")]
    assert actions == ["edge.token.issued", "edge.enrolled", "edge.epoch.started", "edge.enrol.refused", "edge.revoked"]
