"""The edge's local API for the Satel links (status, diagnostics without secrets, release and
resume, commands with typed outcomes and the one error shape), and the `python -m edge release`
CLI that calls it. The client is logged in as the installer `jan` (the login itself:
tests/test_edge_local_auth.py)."""
from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from conftest import CODE, KEY, RunningLink, StartLink

from edge.links.satel import LinkState
from edge.local_api import build_app
from edge.local_auth import LocalAuth, token_path
from firmware_bridges.satel.emulator import SatelEmulator
from firmware_bridges.satel.protocol import PartitionState
from shared.process import free_port
from support.edge_login import log_in
from support.waiting import wait_until


@pytest.fixture
def key() -> str:
    return KEY  # encrypted, so the dumps below have a key to leak if they would


@pytest.fixture
async def link(emulator: SatelEmulator, key: str, start_link: StartLink) -> RunningLink:
    return await start_link(emulator.port, key)


@pytest.fixture
async def client(link: RunningLink, tmp_path: Path) -> AsyncIterator[TestClient]:
    app = build_app(lambda: {"edge_id": "site-1"}, LocalAuth.start(tmp_path), {link.panel: link.link})
    async with TestClient(TestServer(app)) as test_client:
        await log_in(test_client, "jan", "installer", tmp_path)
        yield test_client


async def _post(client: TestClient, path: str, body: Any) -> tuple[int, dict[str, Any]]:
    response = await client.post(path, data=json.dumps(body), headers={"Content-Type": "application/json"})
    return response.status, await response.json()


def _assert_error(body: dict[str, Any], code: str) -> dict[str, Any]:
    error = body["error"]
    assert error["code"] == code and error["message"] and error["request_id"], body
    return error


async def test_status_and_diagnostics_show_no_secrets(client: TestClient, link: RunningLink) -> None:
    response = await client.get("/api/v1/links/satel")
    [status] = await response.json()
    assert (status["panel"], status["state"], status["encrypted"]) == (link.panel, "up", True)
    response = await client.get(f"/api/v1/links/satel/{link.panel}/diagnostics")
    text = await response.text()
    assert response.status == 200
    for secret in (KEY, "1234"):
        assert secret not in text
    dump = json.loads(text)
    assert dump["settings"]["integration_key"] == "<redacted>"
    assert dump["state"]["module_version"] == "20620190301"
    response = await client.get("/api/v1/links/satel/nope/diagnostics")
    assert response.status == 404
    _assert_error(await response.json(), "not_found")


async def test_commands_return_typed_outcomes(client: TestClient, link: RunningLink, emulator: SatelEmulator) -> None:
    base = f"/api/v1/links/satel/{link.panel}"
    status, body = await _post(client, f"{base}/arm", {"partitions": [1], "code": "9999"})
    assert status == 409
    assert _assert_error(body, "command_refused")["details"] == {"result": "NACK", "code": 1, "reason": "user code not found"}
    emulator.violate_zone(3)
    status, body = await _post(client, f"{base}/arm", {"partitions": [1], "code": CODE})
    assert status == 409 and _assert_error(body, "command_refused")["details"]["code"] == 0x11
    status, body = await _post(client, f"{base}/arm", {"partitions": [1], "force": True, "mode": 3, "code": CODE})
    assert (status, body["result"]) == (200, "ACK")
    for path, request in [
        ("disarm", {"partitions": [1], "code": CODE}),
        ("clear-alarm", {"partitions": [1], "code": CODE}),
        ("outputs", {"outputs": [2], "on": True, "code": CODE}),
        ("bypass", {"zones": [4], "code": CODE}),
        ("bypass", {"zones": [4], "bypass": False, "code": CODE}),
    ]:
        status, body = await _post(client, f"{base}/{path}", request)
        assert (status, body["result"]) == (200, "ACK"), (path, body)
    await link.wait_event("satel.output.on", output=2)


@pytest.mark.parametrize(("path", "body", "message"), [
    ("arm", {"partitions": [1], "mode": 9, "code": CODE}, "arming mode 9"),
    ("arm", {"partitions": "1", "code": CODE}, "partitions must be a non-empty list"),
    ("arm", {"partitions": [1], "force": "yes", "code": CODE}, "force must be true or false"),
    ("disarm", {"partitions": [1], "code": 1234}, "code must be a string"),
    ("outputs", {"outputs": [1], "code": CODE}, "on must be true or false"),
    ("bypass", {"zones": [], "code": CODE}, "zones must be a non-empty list"),
    ("release", {"minutes": "5", "who": "a", "why": "b"}, "minutes must be a number"),
    ("release", {"minutes": 5, "who": "a"}, "why must be a string"),
    ("release", {"minutes": 5, "who": 7, "why": "b"}, "who must be a string"),
    ("release", {"minutes": 0, "who": "a", "why": "b"}, "minutes must be a number in"),
    ("release", [1], "must be a JSON object"),
])
async def test_bad_requests_get_a_400_in_the_error_shape(
    client: TestClient, link: RunningLink, path: str, body: Any, message: str
) -> None:
    status, answer = await _post(client, f"/api/v1/links/satel/{link.panel}/{path}", body)
    assert status == 400
    assert message in _assert_error(answer, "bad_request")["message"]
    response = await client.post(f"/api/v1/links/satel/{link.panel}/arm", data=b"{not json",
                                 headers={"Content-Type": "application/json"})
    assert response.status == 400
    assert link.link.link_state is LinkState.UP


async def test_release_and_resume_over_the_api(client: TestClient, link: RunningLink) -> None:
    base = f"/api/v1/links/satel/{link.panel}"
    status, body = await _post(client, f"{base}/release", {"minutes": 10, "why": "DLOADX"})
    assert status == 200 and body["state"] == "released" and body["released"]["who"] == "installer:jan"
    status, body = await _post(client, f"{base}/arm", {"partitions": [1], "code": CODE})
    assert status == 503 and _assert_error(body, "link_unavailable")["details"]["result"] == "UNAVAILABLE"
    status, body = await _post(client, f"{base}/resume", {})
    assert (status, body["resumed"]) == (200, True)
    await link.wait_state(LinkState.UP)
    status, body = await _post(client, f"{base}/resume", {})
    assert status == 409 and _assert_error(body, "not_released")
    # A name given besides is kept with the account, never instead of it.
    status, body = await _post(client, f"{base}/release", {"minutes": 10, "who": "Piotr Nowak", "why": "WO-1"})
    assert status == 200 and body["released"]["who"] == "installer:jan (Piotr Nowak)"


async def _cli(*args: str) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "edge", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def test_the_release_cli_calls_the_local_api(client: TestClient, link: RunningLink, tmp_path: Path) -> None:
    """The CLI gets in with the agent's token file (as `local-cli`), and the installer's name it
    is given goes with it."""
    url, token = str(client.make_url("/")), str(token_path(tmp_path))
    code, out = await _cli("release", link.panel, "--minutes", "20", "--who", "Jan Kowalski", "--why", "WO-77",
                           "--url", url, "--token-file", token)
    assert code == 0, out
    assert f"panel {link.panel} released until" in out and "local-cli (Jan Kowalski)" in out
    assert link.link.link_state is LinkState.RELEASED and link.link.release_info is not None
    assert link.link.release_info.why == "WO-77"
    code, out = await _cli("resume", link.panel, "--url", url, "--token-file", token)
    assert code == 0, out
    await link.wait_state(LinkState.UP)
    code, out = await _cli("release", "no-such-panel", "--minutes", "5", "--who", "a", "--why", "b", "--url", url,
                           "--token-file", token)
    assert code == 1 and "no Satel panel 'no-such-panel'" in out and "HTTP 404" in out
    code, out = await _cli("release", link.panel, "--minutes", "5", "--who", "a", "--why", "b",
                           "--url", f"http://127.0.0.1:{free_port()}", "--token-file", token)
    assert code == 1 and "cannot reach the edge's local API" in out
    # A token that is not the agent's is refused; no token file at all says the agent may be down.
    wrong = tmp_path / "wrong.token"
    wrong.write_text("not-the-token\n")
    wrong.chmod(0o600)
    code, out = await _cli("resume", link.panel, "--url", url, "--token-file", str(wrong))
    assert code == 1 and "bearer token is not this agent's" in out and "HTTP 401" in out
    code, out = await _cli("resume", link.panel, "--url", url, "--token-file", str(tmp_path / "missing.token"))
    assert code == 1 and "is it running?" in out
    # Without --url and --token-file it needs the edge config to find the API and the token.
    code, out = await _cli("release", link.panel, "--minutes", "5", "--who", "a", "--why", "b", "--url", url)
    assert code == 2 and "VIGIL_EDGE_EDGE_ID" in out
    await wait_until(lambda: link.link.link_state is LinkState.UP, what="the link to stay up")


async def test_a_command_without_the_typed_user_code_is_refused(client: TestClient, link: RunningLink,
                                                               emulator: SatelEmulator) -> None:
    """The edge keeps no user code to fall back on: whoever disarms types one."""
    base = f"/api/v1/links/satel/{link.panel}"
    status, body = await _post(client, f"{base}/arm", {"partitions": [1], "code": CODE})
    assert (status, body["result"]) == (200, "ACK")
    for path, request in [("disarm", {"partitions": [1]}), ("clear-alarm", {"partitions": [1]}),
                          ("outputs", {"outputs": [2], "on": True}), ("bypass", {"zones": [4]})]:
        status, body = await _post(client, f"{base}/{path}", request)
        assert status == 400 and "user code" in _assert_error(body, "user_code_required")["message"], path
    assert emulator.panel.partition_set(PartitionState.ARMED) == {1}, "nothing was sent to the panel"


async def test_a_cross_site_request_cannot_disarm(client: TestClient, link: RunningLink,
                                                  emulator: SatelEmulator) -> None:
    """A page on the site's LAN can make a visitor's browser POST here ("simple" requests need no
    preflight): a form or text/plain body, or any foreign Origin, is refused with 403."""
    base = f"/api/v1/links/satel/{link.panel}"
    status, body = await _post(client, f"{base}/arm", {"partitions": [1], "code": CODE})
    assert status == 200
    body_text = json.dumps({"partitions": [1], "code": CODE})
    attacks = [
        {"Content-Type": "text/plain", "Origin": "http://evil.example"},
        {"Content-Type": "application/x-www-form-urlencoded", "Origin": "http://evil.example"},
        {"Content-Type": "application/json", "Origin": "http://evil.example"},
        {"Content-Type": "text/plain"},  # no Origin, not JSON either
    ]
    for headers in attacks:
        response = await client.post(f"{base}/disarm", data=body_text, headers=headers)
        answer = await response.json()
        assert response.status == 403, headers
        assert _assert_error(answer, "cross_origin" if "Origin" in headers else "json_required")
    assert emulator.panel.partition_set(PartitionState.ARMED) == {1}, "still armed"
    # The page's own origin (what the local page's fetch sends) is fine.
    own = f"http://{client.server.host}:{client.server.port}"
    response = await client.post(f"{base}/disarm", data=body_text,
                                 headers={"Content-Type": "application/json", "Origin": own})
    assert response.status == 200 and emulator.panel.partition_set(PartitionState.ARMED) == set()
