"""The stream's HTTP surface: the WebSocket ticket, the WebSocket, and Server-Sent Events. Both
streams run hub.stream.delivery; these handlers only authenticate and frame."""
from __future__ import annotations

import asyncio
from typing import Annotated

import msgspec
from aiohttp import WSCloseCode, WSMsgType, web

from hub.api.errors import ApiError
from hub.api.routing import Call, Router
from hub.stream.delivery import Outcome
from hub.stream.hub_stream import HubStream
from hub.stream.messages import Outgoing, Row

Cursor = Annotated[int, msgspec.Meta(ge=0)]
LAST_EVENT_ID = "Last-Event-ID"
SSE_HEADERS = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",  # nginx would otherwise buffer the stream
}
WS_CLOSE_CODES = {
    Outcome.SHUTDOWN: WSCloseCode.GOING_AWAY,       # 1001: reconnect (to another hub process)
    Outcome.OVERFLOW: WSCloseCode.TRY_AGAIN_LATER,  # 1013: reload from REST first
    Outcome.ACCESS_CHANGED: WSCloseCode.POLICY_VIOLATION,  # 1008: reload under the access you have now
    Outcome.HORIZON: WSCloseCode.TRY_AGAIN_LATER,
    Outcome.CLIENT_GONE: WSCloseCode.OK,
}
# Past this many bytes unsent to a client, rows wait in its queue (which is bounded) instead.
WRITE_BUFFER_LIMIT = 256 * 1024


class WsTicket(msgspec.Struct):
    ticket: str
    expires_in: int


class WsQuery(msgspec.Struct):
    ticket: str | None = None
    cursor: Cursor | None = None


class SseQuery(msgspec.Struct):
    cursor: Cursor | None = None


def _abort(request: web.Request) -> None:
    transport = request.transport
    if transport is not None:
        transport.abort()


class WebSocketSink:
    """Each message is one text frame. The socket is opened without compression, so a row's
    frame is the same bytes for every client and the fast path writes them as they are; aiohttp
    writes whole frames too (pings, close), so the two never interleave inside a frame."""

    transport = "ws"

    def __init__(self, ws: web.WebSocketResponse, request: web.Request) -> None:
        self._ws = ws
        self._request = request

    async def send(self, message: Outgoing) -> None:
        await self._ws.send_frame(message.data, WSMsgType.TEXT)

    def write_now(self, rows: list[Row]) -> bool:
        sock = self._request.transport
        if sock is None or sock.is_closing() or self._ws.closed or sock.get_write_buffer_size() > WRITE_BUFFER_LIMIT:
            return False
        sock.write(rows[0].ws_frame if len(rows) == 1 else b"".join(r.ws_frame for r in rows))
        return True

    def abort(self) -> None:
        _abort(self._request)


class EventStreamSink:
    """Each message is one SSE event named by its type; changes carry their cursor as the event
    id, which a reconnecting EventSource sends back as Last-Event-ID."""

    transport = "sse"

    def __init__(self, response: web.StreamResponse, request: web.Request) -> None:
        self._response = response
        self._request = request

    async def send(self, message: Outgoing) -> None:
        head = f"id: {message.event_id}\n" if message.event_id is not None else ""
        await self._response.write(f"{head}event: {message.kind}\ndata: ".encode() + message.data + b"\n\n")

    def write_now(self, rows: list[Row]) -> bool:
        return False  # the body is chunked by aiohttp's writer: every event goes through it

    def abort(self) -> None:
        _abort(self._request)


async def _read_until_closed(ws: web.WebSocketResponse) -> None:
    """Consume what the client sends (nothing is expected) so aiohttp sees pongs and the close
    handshake; ends when the socket closes, including when a ping goes unanswered."""
    async for _msg in ws:
        pass


def _sse_cursor(call: Call) -> int | None:
    """Last-Event-ID (an EventSource reconnecting) wins over ?cursor= (the URL it first used)."""
    raw = call.request.headers.get(LAST_EVENT_ID)
    if raw is None or raw == "":
        return call.query.cursor
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise ApiError(422, "invalid", "Last-Event-ID must be a cursor (a sequence id)", {"field": LAST_EVENT_ID})
    return int(raw)


def stream_router(stream: HubStream) -> Router:
    """The routes of `stream`, for build_http's extra routers."""
    router = Router()
    settings = stream.settings

    @router.post("/api/v1/auth/ws-ticket", permission="self", response=WsTicket, carries_secret=True, tags=("stream",))
    async def ws_ticket(call: Call) -> WsTicket:
        """A single-use ticket for opening the live WebSocket within 30 seconds."""
        return WsTicket(await stream.tickets.issue(call.user), stream.tickets.ttl_s)

    @router.get("/api/v1/ws", public=True, query=WsQuery, tags=("stream",))
    async def websocket(call: Call) -> web.StreamResponse:
        """The live stream over WebSocket; authenticated by `ticket`, resuming after `cursor`."""
        stream.refuse_when_stopping()
        principal = await stream.tickets.redeem(call.query.ticket)
        ws = web.WebSocketResponse(heartbeat=settings.ping_s, max_msg_size=64 * 1024, compress=False)
        await ws.prepare(call.request)
        reader = asyncio.ensure_future(_read_until_closed(ws))
        try:
            outcome = await stream.serve(principal, call.query.cursor, WebSocketSink(ws, call.request), reader)
            if not ws.closed:
                try:
                    await asyncio.wait_for(ws.close(code=WS_CLOSE_CODES[outcome]), settings.close_timeout_s)
                except (asyncio.TimeoutError, ConnectionError):
                    _abort(call.request)
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
        return ws

    @router.get("/api/v1/events/stream", permission="self", query=SseQuery, produces="text/event-stream",
                tags=("stream",))
    async def event_stream(call: Call) -> web.StreamResponse:
        """The live stream as Server-Sent Events; resumes after Last-Event-ID or `cursor`."""
        stream.refuse_when_stopping()
        cursor = _sse_cursor(call)
        response = web.StreamResponse(headers=SSE_HEADERS)
        await response.prepare(call.request)
        await stream.serve(call.user, cursor, EventStreamSink(response, call.request))
        try:
            await asyncio.wait_for(response.write_eof(), settings.close_timeout_s)
        except (asyncio.TimeoutError, ConnectionError):
            _abort(call.request)
        return response

    return router
