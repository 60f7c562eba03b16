"""The demo site `make run` sets up, through the hub's API as an admin would: an object, an edge
with its one-time enrolment token, and the emulated panel. Nothing here writes the database.

Re-running is safe: an existing object and panel are reused, and a box that is already enrolled
is not enrolled again.
"""
from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

DEMO_OBJECT = {"name": "Demo site", "address": "ul. Przykładowa 1, Kraków", "type": "OFFICE"}
TIMEOUT_S = 30.0


class HubApiError(Exception):
    """The hub refused a call; the message has its error code and words."""


@dataclass
class HubApi:
    """A minimal client of the hub's REST API, signed in as one user."""

    base_url: str
    token: str = ""

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base_url.rstrip("/") + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            try:
                error = json.loads(exc.read())["error"]
                reason = f"{error['message']} ({error['code']})"
            except (ValueError, KeyError, TypeError):
                reason = str(exc.reason)
            raise HubApiError(f"{method} {path}: HTTP {exc.code}: {reason}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise HubApiError(f"{method} {path}: the hub at {self.base_url} is unreachable: {exc}") from None
        return json.loads(raw) if raw else None

    def login(self, email: str, password: str) -> None:
        self.token = self.call("POST", "/api/v1/auth/login", {"email": email, "password": password})["access_token"]


def ensure_object(api: HubApi) -> int:
    """The demo object's id: found by name, else created."""
    page = api.call("GET", "/api/v1/objects?" + urllib.parse.urlencode({"q": DEMO_OBJECT["name"]}))
    for item in page["items"]:
        if item["name"] == DEMO_OBJECT["name"]:
            return int(item["id"])
    return int(api.call("POST", "/api/v1/objects", DEMO_OBJECT)["id"])


def ensure_panel(api: HubApi, object_id: int, edge_id: str, panel_id: str, host: str, port: int) -> None:
    """The emulated panel under the demo object, once."""
    detail = api.call("GET", f"/api/v1/objects/{object_id}")
    if any(p["edge_id"] == edge_id and p["source"] == panel_id for p in detail["panels"]):
        return
    api.call("POST", "/api/v1/panels", {"object_id": object_id, "edge_id": edge_id, "source": panel_id,
                                        "model": "INTEGRA (emulated)", "host": host, "port": port})


def create_edge(api: HubApi, edge_id: str, object_id: int) -> dict[str, Any]:
    """Create the edge and get its one-time token (what an admin does on the Edges page)."""
    return api.call("POST", "/api/v1/edges", {"edge_id": edge_id, "object_id": object_id})  # type: ignore[no-any-return]
