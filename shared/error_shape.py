"""The one error shape every HTTP answer of Vigil uses (docs/architecture.md §8.3): the hub's API, the edge's
local API and the emulators' control endpoints alike."""
from __future__ import annotations

from typing import Any, Mapping

from aiohttp import web


def error_response(status: int, code: str, message: str, request_id: str | None,
                   details: Any = None, headers: Mapping[str, str] | None = None) -> web.Response:
    """`{"error": {"code", "message", "request_id", "details"}}` with the status and headers."""
    body = {"error": {"code": code, "message": message, "request_id": request_id, "details": details}}
    return web.json_response(body, status=status, headers=headers)
