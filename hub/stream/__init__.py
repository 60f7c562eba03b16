"""The live stream: every outbox row, in order, to every console and script, over WebSocket or
Server-Sent Events, resumable by cursor.

Wiring, once per hub process, after migrations:

    stream = HubStream(pool, config.database_url)
    auth.sessions.on_ended(stream.end_sessions)  # sessions this process ends close their streams at once
    await stream.start()
    app = build_http(pool, authenticator, [auth.router, stream_router(stream)], box)
    ...
    await stream.close()      # on SIGTERM, before the HTTP runner's cleanup
"""
from hub.stream.hub_stream import HubStream
from hub.stream.routes import stream_router
from hub.stream.settings import StreamSettings

__all__ = ["HubStream", "StreamSettings", "stream_router"]
