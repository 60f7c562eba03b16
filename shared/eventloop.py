"""Runs a service's main coroutine on uvloop (faster I/O for the hub and the edge), and stops it
cleanly on SIGTERM/SIGINT."""
from __future__ import annotations

import asyncio
import signal
from typing import Any, Coroutine, TypeVar

import uvloop

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run `main` to completion on a fresh uvloop event loop."""
    return uvloop.run(main)


def stop_on_signals(stop: asyncio.Event) -> None:
    """Set `stop` on SIGTERM or SIGINT, so the running service shuts down in order."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
