"""The module's TCP side: one client at a time, idle drop, plain or encrypted, push mode."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from ..protocol import (
    BUSY_BANNER,
    Answer,
    Frame,
    FrameChannel,
    ProtocolError,
    ResultAnswer,
    ResultCode,
    SatelDecodeError,
    StartPush,
    answer_payload,
    checksum,
    decode_request,
    derive_aes_key,
    encode_answer,
    stuff,
)
from ..protocol.frame import END, SYNC
from .panel import Panel, PanelChange
from .responder import push_request_for, respond

log = logging.getLogger(__name__)

READ_SIZE = 4096


@dataclass
class ServerStats:
    """Counters for diagnostics and tests."""

    connections: int = 0
    busy_rejections: int = 0
    idle_drops: int = 0
    frames_received: int = 0
    frames_sent: int = 0
    protocol_errors: int = 0


class ModuleServer:
    """Speaks the integration protocol for one panel on a TCP port, like an ETHM-1 Plus.

    A second client gets the busy banner and is closed; with ``drop_first_client`` the first
    client is dropped instead (newer firmware). A client that sends nothing for ``idle_timeout``
    seconds is dropped. All methods must be called from the event loop running the server.
    """

    def __init__(
        self,
        panel: Panel,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        integration_key: str | None = None,
        idle_timeout: float = 25.0,
        drop_first_client: bool = False,
    ) -> None:
        if integration_key is not None:
            derive_aes_key(integration_key)  # refuse a bad key now, not at the first client
        if idle_timeout <= 0:
            raise ValueError(f"idle timeout {idle_timeout!r} must be positive")
        self.panel = panel
        self.host = host
        self.integration_key = integration_key
        self.idle_timeout = idle_timeout
        self.drop_first_client = drop_first_client
        self.response_delay = 0.0
        self.stats = ServerStats()
        self._requested_port = port
        self._server: asyncio.Server | None = None
        self._active: _Connection | None = None
        self._connections: set[_Connection] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._corrupt_next = False

    @property
    def port(self) -> int:
        """The bound TCP port (the real one when constructed with port 0)."""
        if self._server is None:
            raise RuntimeError("the server is not started")
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def is_serving(self) -> bool:
        """The server is bound and accepting clients."""
        return self._server is not None

    @property
    def client_connected(self) -> bool:
        """A client currently holds the module."""
        return self._active is not None

    async def start(self) -> None:
        """Bind and start accepting clients."""
        self._server = await asyncio.start_server(self._on_client, self.host, self._requested_port)
        log.info("satel emulator listening on %s:%d", self.host, self.port)

    async def close(self) -> None:
        """Stop accepting, drop every client and wait for their handlers to finish."""
        if self._server is not None:
            self._server.close()
        self.cut_connections()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    def cut_connections(self) -> None:
        """Drop every client at once, as if the network went away."""
        for connection in list(self._connections):
            connection.abort()

    def corrupt_next_frame(self) -> None:
        """Send the next answer with a wrong checksum."""
        self._corrupt_next = True

    def frame_for(self, answer: Answer) -> bytes:
        """The wire frame for an answer, corrupted once after :meth:`corrupt_next_frame`."""
        if not self._corrupt_next:
            return encode_answer(answer)
        self._corrupt_next = False
        cmd, data = answer_payload(answer)
        body = bytes((cmd,)) + data
        wrong = (checksum(body) ^ 0xFFFF).to_bytes(2, "big")
        return SYNC + stuff(body + wrong) + END

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            if self._active is not None:
                if not self.drop_first_client:
                    await self._reject(writer)
                    return
                log.info("second client: dropping the first, as newer firmware does")
                self._active.close()
            connection = _Connection(self, reader, writer)
            self._active = connection
            self._connections.add(connection)
            self.stats.connections += 1
            try:
                await connection.run()
            finally:
                self._connections.discard(connection)
                if self._active is connection:
                    self._active = None
        finally:
            self._tasks.discard(task)

    async def _reject(self, writer: asyncio.StreamWriter) -> None:
        self.stats.busy_rejections += 1
        log.info("second client: sending the busy banner")
        writer.write(BUSY_BANNER)
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


class _Connection:
    """One client connection: reads requests, answers them in order, pushes changes if asked."""

    def __init__(self, server: ModuleServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._server = server
        self._panel = server.panel
        self._reader = reader
        self._writer = writer
        self._channel = FrameChannel.for_key(server.integration_key)
        self._push_commands: frozenset[int] | None = None
        # Changes caused by the request being answered are pushed after its answer, not before.
        self._held: list[PanelChange] | None = None

    def close(self) -> None:
        """Close politely (FIN)."""
        if not self._writer.is_closing():
            self._writer.close()

    def abort(self) -> None:
        """Close at once, discarding anything unsent."""
        self._writer.transport.abort()

    async def run(self) -> None:
        """Serve until the client leaves, goes idle, or the connection is closed."""
        self._panel.listeners.append(self._on_change)
        try:
            while True:
                try:
                    data = await asyncio.wait_for(self._reader.read(READ_SIZE), self._server.idle_timeout)
                except TimeoutError:
                    self._server.stats.idle_drops += 1
                    log.info("client idle for %.1f s: dropping it", self._server.idle_timeout)
                    return
                except ConnectionError:
                    return
                if not data:
                    return
                for event in self._channel.feed(data):
                    if isinstance(event, Frame):
                        await self._answer(event)
                    elif isinstance(event, ProtocolError):
                        self._server.stats.protocol_errors += 1
                        log.warning("protocol error from client: %s (%d bytes)", event.reason, event.size)
        finally:
            self._panel.listeners.remove(self._on_change)
            self.close()
            with contextlib.suppress(ConnectionError):
                await self._writer.wait_closed()

    async def _answer(self, frame: Frame) -> None:
        self._server.stats.frames_received += 1
        self._held = []
        try:
            try:
                request = decode_request(frame)
            except SatelDecodeError as exc:
                log.warning("refusing request: %s", exc)
                answer: Answer = ResultAnswer(ResultCode.OTHER_ERROR)
            else:
                answer = respond(self._panel, request)
                if isinstance(request, StartPush):
                    self._push_commands = request.commands
            if self._server.response_delay > 0:
                await asyncio.sleep(self._server.response_delay)
            self._send(answer)
        finally:
            held = self._held or []
            self._held = None
        for change in held:
            self._push(change)
        with contextlib.suppress(ConnectionError):
            await self._writer.drain()

    def _send(self, answer: Answer) -> None:
        if self._writer.is_closing():
            return
        self._writer.write(self._channel.encode(self._server.frame_for(answer)))
        self._server.stats.frames_sent += 1

    def _on_change(self, change: PanelChange) -> None:
        if self._held is not None:
            self._held.append(change)
        else:
            self._push(change)

    def _push(self, change: PanelChange) -> None:
        if self._push_commands is None:
            return
        for cmd in sorted(change.commands & self._push_commands):
            request = push_request_for(cmd)
            if request is not None:
                self._send(respond(self._panel, request))
        for index in change.events:
            self._send(self._panel.events.read(index))
