"""An API test client on a real PostgreSQL, with a stand-in authenticator for handler tests.

`HeaderAuthenticator` trusts an `X-Test-Principal: <user id>:<role>[:<object id>,…]` header. It
exists only so handler tests can act as any role without logging in; the token authenticator is
tested on its own and end to end (tests/test_auth_*.py, tests/test_api_roles.py).
"""
from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from hub.api.errors import unauthorized
from hub.api.principal import Principal, Role

HEADER = "X-Test-Principal"


class HeaderAuthenticator:
    async def authenticate(self, request: web.Request) -> Principal:
        raw = request.headers.get(HEADER)
        if not raw:
            raise unauthorized()
        parts = raw.split(":")
        objects = frozenset(int(x) for x in parts[2].split(",") if x) if len(parts) > 2 else None
        return Principal(int(parts[0]), f"user{parts[0]}@test", Role(parts[1]), objects)


def as_role(role: str, user_id: int = 1, objects: list[int] | None = None) -> dict[str, str]:
    """Headers that make the stand-in authenticator see `role` (with assigned `objects`)."""
    value = f"{user_id}:{role}"
    if objects is not None:
        value += ":" + ",".join(str(o) for o in objects)
    return {HEADER: value}


async def start_client(app: web.Application) -> TestClient:
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


async def json_of(resp: Any) -> Any:
    return await resp.json(content_type=None)
