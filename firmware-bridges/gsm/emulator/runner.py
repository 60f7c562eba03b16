"""The emulated modem's I/O: a pseudo-terminal the host opens like `/dev/ttyUSB0` (a symlink at
`link` names it), the command lines read from it, the answers and notifications written back, and
the HTTP control endpoint (`control.py`). Commands are answered one at a time, in order, as a modem
does; a slow answer (`slow_s`) delays each reply."""
from __future__ import annotations

import asyncio
import contextlib
import datetime
import os
import secrets
import tty
from pathlib import Path

from aiohttp import web

from ..pdu import encode_deliver, encode_deliver_raw, split_for_concat, tpdu_length
from .modem import Modem

_EOL = b"\r\n"


class GsmEmulator:
    """Use as `async with GsmEmulator(link=path) as emu:`; `emu.link` is the device path."""

    def __init__(self, link: Path, *, control_port: int | None = None, capacity: int = 20) -> None:
        self.link = Path(link)
        self.modem = Modem(capacity=capacity)
        self.slow_s = 0.0
        self._control_port = control_port
        self._runner: web.AppRunner | None = None
        self._master = self._slave = -1
        self._buffer = b""
        self._lines: asyncio.Queue[str] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None

    async def __aenter__(self) -> "GsmEmulator":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def control_port(self) -> int:
        """The bound port of the HTTP control endpoint."""
        if self._runner is None or not self._runner.addresses:
            raise RuntimeError("the control endpoint is not running")
        return int(self._runner.addresses[0][1])

    async def start(self) -> None:
        """Open the pseudo-terminal, point `link` at it, and serve."""
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)  # a modem's port passes bytes untouched: no echo, no CR/LF mapping
        os.set_blocking(self._master, False)
        with contextlib.suppress(FileNotFoundError):
            self.link.unlink()
        self.link.parent.mkdir(parents=True, exist_ok=True)
        self.link.symlink_to(os.ttyname(self._slave))
        loop = asyncio.get_running_loop()
        loop.add_reader(self._master, self._readable)
        self._worker = asyncio.create_task(self._serve(), name="gsm-emulator")
        if self._control_port is not None:
            from .control import control_app
            self._runner = web.AppRunner(control_app(self), access_log=None)
            await self._runner.setup()
            await web.TCPSite(self._runner, "127.0.0.1", self._control_port).start()

    async def stop(self) -> None:
        """Stop serving and close the terminal (the host sees its port go away)."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        if self._master >= 0:
            asyncio.get_running_loop().remove_reader(self._master)
            for fd in (self._master, self._slave):
                os.close(fd)
            self._master = self._slave = -1
        with contextlib.suppress(FileNotFoundError):
            self.link.unlink()

    # --- what the network and the modem do on their own ---------------------------------------

    def send_sms(self, sender: str, text: str, *, encoding: str = "gsm7", parts: int | None = None,
                 smsc_time: datetime.datetime | None = None) -> list[int]:
        """An SMS arrives from the network (split into `parts` concatenated parts when asked);
        returns the storage indexes it took (empty while the storage is full)."""
        when = smsc_time or datetime.datetime.now(datetime.timezone.utc)
        if parts is None or parts == 1:
            pdus = [encode_deliver(sender, text, encoding=encoding, smsc_time=when)]  # type: ignore[arg-type]
        else:
            pieces = split_for_concat(text, encoding, secrets.randbelow(256), parts=parts)  # type: ignore[arg-type]
            pdus = [encode_deliver_raw(sender, payload, encoding=encoding, smsc_time=when, concat=concat)  # type: ignore[arg-type]
                    for concat, payload in pieces]
        before = set(self.modem.storage)
        for pdu in pdus:
            self._write_lines(self.modem.deliver(pdu, tpdu_length(pdu)))
        return sorted(set(self.modem.storage) - before)

    def reboot(self) -> None:
        """The modem restarts by itself (a brown-out, a firmware watchdog)."""
        self._write_lines(self.modem.reboot())

    # --- I/O ---------------------------------------------------------------------------------

    def _readable(self) -> None:
        try:
            data = os.read(self._master, 4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:  # the host side went away; a reopen brings it back
            return
        self._buffer += data
        # V.250 §5.2.1: a command line ends with S3 (CR); a stray LF is ignored.
        while b"\r" in self._buffer:
            line, self._buffer = self._buffer.split(b"\r", 1)
            self._lines.put_nowait(line.replace(b"\n", b"").decode("ascii", "replace"))

    async def _serve(self) -> None:
        while True:
            line = await self._lines.get()
            echo, reply = self.modem.line(line)
            if echo is not None:
                self._write(echo.encode("ascii", "replace") + b"\r")
            if self.slow_s > 0:
                await asyncio.sleep(self.slow_s)
            self._write_lines(reply)

    def _write_lines(self, lines: list[str]) -> None:
        for line in lines:
            self._write(_EOL + line.encode("ascii", "replace") + _EOL)

    def _write(self, data: bytes) -> None:
        if self._master < 0:
            return
        try:
            os.write(self._master, data)
        except BlockingIOError:
            pass  # nobody reads the port and its buffer is full: a real modem drops the bytes too
