"""Getting into an edge's local page and API the ways real users do (edge.local_auth): a site
account logged in over the login endpoint (its session cookie kept by the client), or the on-box
tools' bearer token read from the agent's token file."""
from __future__ import annotations

import json
import urllib.request
from http.cookies import SimpleCookie
from pathlib import Path

from aiohttp.test_utils import TestClient

from edge.config import EdgeConfig
from edge.local_auth import SESSION_COOKIE, read_cli_token, token_path
from edge.site_accounts import create_account

#: A password good enough for the policy, for every test account.
PASSWORD = "correct horse battery"


async def log_in(client: TestClient, name: str, role: str, data_dir: Path | str) -> None:
    """Create the site account `name` with `role` in `data_dir` and log `client` in with it: its
    cookie jar holds the session from then on."""
    create_account(data_dir, name, PASSWORD, role)
    response = await client.post("/api/v1/login", json={"username": name, "password": PASSWORD})
    assert response.status == 200, await response.text()


def session_cookie(config: EdgeConfig, name: str, password: str = PASSWORD) -> dict[str, str]:
    """Log in to a running agent as the site account `name`; returns the Cookie header a browser
    would send from then on."""
    request = urllib.request.Request(f"http://127.0.0.1:{config.http_port}/api/v1/login", method="POST",
                                     data=json.dumps({"username": name, "password": password}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        cookie = SimpleCookie(response.headers["Set-Cookie"])
    return {"Cookie": f"{SESSION_COOKIE}={cookie[SESSION_COOKIE].value}"}


def bearer(config: EdgeConfig) -> dict[str, str]:
    """The header a running agent's on-box tools send (its token file must exist: the agent
    writes it at start)."""
    return {"Authorization": f"Bearer {read_cli_token(token_path(config.data_dir))}"}


def get_json(config: EdgeConfig, path: str, timeout: float = 2.0) -> dict:
    """GET `path` from a running agent's local API with the on-box token (the agent writes the
    token file before it listens, so once its port is open both are there)."""
    request = urllib.request.Request(f"http://127.0.0.1:{config.http_port}{path}", headers=bearer(config))
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())
