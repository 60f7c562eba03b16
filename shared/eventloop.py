"""Runs a service's main coroutine on uvloop (faster I/O for the hub and the edge)."""
from __future__ import annotations

from typing import Any, Coroutine, TypeVar

import uvloop

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run `main` to completion on a fresh uvloop event loop."""
    return uvloop.run(main)
