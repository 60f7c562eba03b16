"""The hub's HTTP app as the console's browser tests serve it: REST API, login (cheap password
hashing), live stream and the console, on a free port of this process, on the test database."""
from __future__ import annotations

from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator

import asyncpg
from aiohttp import web

from hub.api.server import build_http
from hub.auth import build_auth
from hub.config import AuthSettings
from hub.secret_box import SecretBox
from hub.stream import HubStream, stream_router
from shared.process import free_port
from support.topology import HOST
from test_auth_helpers import cheap_passwords


@asynccontextmanager
async def console_app(db: asyncpg.Pool, db_dsn: str, tmp_path: Path, box: SecretBox,
                      **http_options: Any) -> AsyncIterator[str]:
    """Serve the hub's app (`build_http` options as given) until the block ends; yields its URL."""
    auth = await build_auth(db, AuthSettings(secret_file=str(tmp_path / "secret.key")), box=box, passwords=cheap_passwords())
    stream = HubStream(db, db_dsn)
    await stream.start()
    runner = web.AppRunner(build_http(db, auth.authenticator, [auth.router, stream_router(stream)], box, **http_options),
                           access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, HOST, port).start()
    try:
        yield f"http://{HOST}:{port}"
    finally:
        await stream.close()
        await runner.cleanup()
