"""One TCP connection to an ETHM-1 module: one request at a time, answers matched, the rest sorted.

A reader task feeds every received byte through the codec's `FrameChannel` and sorts what comes
out: the answer to the request in flight completes it; pushed (or late) state answers and event
log records queue up for the link; protocol errors are counted, and one that arrives while a request waits is taken
to be that request's answer, corrupted; the busy banner or a closed socket ends the connection.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import socket

from firmware_bridges.satel.protocol import (
    Answer,
    Arm,
    Busy,
    BypassZones,
    ClearAlarm,
    Cmd,
    Disarm,
    ErrorReason,
    EventAnswer,
    Frame,
    FrameChannel,
    ProtocolError,
    ReadEvent,
    Request,
    SatelDecodeError,
    StartPush,
    SwitchOutputs,
    UnbypassZones,
    command_name,
    decode_answer,
    encode_request,
)
from edge.links.satel import metrics
from edge.links.satel.state import answer_command

log = logging.getLogger("vigil.edge.satel")

READ_SIZE = 4096
#: Batches of pushed answers held for the link at most; past that it re-reads everything instead.
UNSOLICITED_LIMIT = 64

_CONTROL_REQUESTS = (Arm, Disarm, ClearAlarm, BypassZones, UnbypassZones, SwitchOutputs, StartPush)
# A stretch of bytes outside any frame is line noise, not a mangled answer; everything else the
# decoder skips was a frame (or PDU) that went wrong, most likely the answer being waited for.
_NOT_AN_ANSWER = frozenset({ErrorReason.GARBAGE})


class LinkLost(Exception):
    """The connection is unusable (closed, busy, silent or broken); the message says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class CorruptAnswer(Exception):
    """The answer to the request in flight arrived damaged (bad checksum, bad escape, undecodable)."""


def answers(request: Request, answer: Answer) -> bool:
    """`answer`, with a command byte `request` expects, is its answer and not a pushed frame.

    In push mode the module sends 0x8C records unasked; one arriving while a 0x8C read waits is
    told apart by the event index the read was called with, which its answer echoes (manual, 0x8C).
    """
    if isinstance(request, ReadEvent) and isinstance(answer, EventAnswer):
        return answer.requested_index == request.index
    return True


def request_command(frame: bytes) -> int:
    """The command byte of an encoded request frame.

    It follows the `FE FE` sync; no request command byte is FE, so it is never stuffed.
    """
    return frame[2]


class Connection:
    """An open connection; `request` sends one request and returns its decoded answer."""

    def __init__(
        self,
        panel_id: str,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        channel: FrameChannel,
        wake: asyncio.Event,
    ) -> None:
        self.panel_id = panel_id
        self._reader = reader
        self._writer = writer
        self._channel = channel
        self._wake = wake
        self._pending: tuple[Request, frozenset[int], asyncio.Future[Answer]] | None = None
        self.unsolicited: list[list[Answer]] = []
        self.resync_needed = False
        self.lost: LinkLost | None = None
        self._task = asyncio.create_task(self._read_loop(), name=f"satel-{panel_id}-reader")

    @classmethod
    async def open(
        cls, panel_id: str, host: str, port: int, integration_key: str | None, wake: asyncio.Event, timeout: float
    ) -> Connection:
        """Connect within `timeout` seconds; raises LinkLost naming the address and the cause."""
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        except (OSError, TimeoutError) as exc:
            raise LinkLost(f"cannot connect to {host}:{port}: {exc or 'timed out'}") from None
        sock = writer.get_extra_info("socket")
        if sock is not None:
            # Requests are a few bytes each and wait for their answer: never hold one back.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(panel_id, reader, writer, FrameChannel.for_key(integration_key), wake)

    async def request(self, request: Request, timeout: float) -> Answer:
        """Send `request` and return its answer (its own command byte, or 0xEF).

        Raises CorruptAnswer when the answer arrived damaged, LinkLost when none arrives within
        `timeout` seconds or the connection fails; after LinkLost the connection is unusable.
        """
        if self.lost is not None:
            raise self.lost
        frame = encode_request(request)
        cmd = request_command(frame)
        expected = frozenset({Cmd.RESULT}) if isinstance(request, _CONTROL_REQUESTS) else frozenset({cmd, Cmd.RESULT})
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._pending = (request, expected, future)
        try:
            async with asyncio.timeout(timeout):
                self._writer.write(self._channel.encode(frame))
                await self._writer.drain()
                return await future
        except TimeoutError:
            self._lose(LinkLost(f"no answer to {command_name(cmd)} within {timeout:g} s"))
        except (ConnectionError, OSError) as exc:
            self._lose(LinkLost(f"connection failed while sending {command_name(cmd)}: {exc}"))
        finally:
            self._pending = None
        assert self.lost is not None
        raise self.lost

    def take_unsolicited(self) -> list[list[Answer]]:
        """The batches of pushed answers received since the last call, oldest first."""
        batches, self.unsolicited = self.unsolicited, []
        return batches

    async def close(self) -> None:
        """Close the socket and stop the reader."""
        self._lose(LinkLost("connection closed by the edge"))
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        with contextlib.suppress(ConnectionError, OSError, TimeoutError):
            await asyncio.wait_for(self._writer.wait_closed(), 1.0)

    def _lose(self, lost: LinkLost) -> None:
        """Mark the connection lost (the first reason wins), fail the waiting request, wake the link."""
        if self.lost is None:
            self.lost = lost
        if self._pending is not None and not self._pending[2].done():
            self._pending[2].set_exception(self.lost)
        if not self._writer.is_closing():
            self._writer.close()
        self._wake.set()

    async def _read_loop(self) -> None:
        try:
            while self.lost is None:
                try:
                    data = await self._reader.read(READ_SIZE)
                except (ConnectionError, OSError) as exc:
                    self._lose(LinkLost(f"connection failed: {exc}"))
                    return
                if not data:
                    self._lose(LinkLost("connection closed by the module"))
                    return
                self._take(self._channel.feed(data))
        except Exception as exc:  # a bug here must end the connection, not leave the link waiting
            log.exception("satel reader failed", extra={"panel": self.panel_id})
            self._lose(LinkLost(f"reader failed: {exc!r}"))

    def _take(self, events: list[Frame | ProtocolError | Busy]) -> None:
        batch: list[Answer] = []
        for event in events:
            if isinstance(event, Frame):
                self._take_frame(event, batch)
            elif isinstance(event, ProtocolError):
                self._take_error(event.reason, event.size)
            else:
                self._lose(LinkLost("module busy: another client (DLOADX or a second integration) holds its connection"))
                return
        if batch:
            if len(self.unsolicited) >= UNSOLICITED_LIMIT:
                metrics.UNSOLICITED_DROPPED.labels(self.panel_id).inc(len(batch))
                self.resync_needed = True
            else:
                self.unsolicited.append(batch)
        if batch or self.resync_needed:
            self._wake.set()

    def _take_frame(self, frame: Frame, batch: list[Answer]) -> None:
        pending = self._pending
        waiting = pending is not None and not pending[2].done() and frame.cmd in pending[1]
        try:
            answer = decode_answer(frame)
        except SatelDecodeError as exc:
            self._take_error("undecodable", len(frame.data) + 1, str(exc))
            return
        if waiting and pending is not None and answers(pending[0], answer):
            pending[2].set_result(answer)
        elif answer_command(answer) is not None or isinstance(answer, EventAnswer):
            batch.append(answer)
        else:
            log.debug(
                "ignoring unsolicited %s from the module", command_name(frame.cmd),
                extra={"panel": self.panel_id, "cmd": frame.cmd},
            )

    def _take_error(self, reason: str, size: int, detail: str = "") -> None:
        metrics.PROTOCOL_ERRORS.labels(self.panel_id, str(reason)).inc()
        if reason == ErrorReason.BAD_CHECKSUM:
            metrics.CRC_ERRORS.labels(self.panel_id).inc()
        log.warning(
            "protocol error from the module: %s (%d bytes) %s", reason, size, detail,
            extra={"panel": self.panel_id, "reason": str(reason)},
        )
        if reason in _NOT_AN_ANSWER:
            return
        pending = self._pending
        if pending is not None and not pending[2].done():
            pending[2].set_exception(CorruptAnswer(f"answer damaged: {reason}"))
        else:
            # A pushed frame was lost: whatever it carried is re-read in full.
            self.resync_needed = True
