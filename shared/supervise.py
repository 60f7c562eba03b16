"""Long-running background tasks that cannot die silently.

A loop that catches only the errors its author foresaw ends for good on the first unforeseen one
(a bug, a malformed row, a library's new exception); nothing notices until alarms stop being
reaped. `Supervisor.spawn` runs each loop under a guard that logs the failure with the task's
name, counts it (`vigil_task_restarts_total{task}`), waits a jittered backoff and starts the loop
again, until the stop event is set. A task that failed `failure_threshold` times within
`window_s` is reported as failing by `Supervisor.health` (the hub's /readyz).
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Awaitable, Callable

from prometheus_client import Counter

from shared.backoff import Backoff, sleep_or_stop

log = logging.getLogger("vigil.supervise")

TASK_RESTARTS = Counter("vigil_task_restarts_total", "Background tasks restarted after an unexpected error", ["task"])

Sleep = Callable[[float, asyncio.Event], Awaitable[bool]]


@dataclass
class TaskHealth:
    """What the supervisor knows about one task: its recent failures and the last error."""

    name: str
    restarts: int = 0
    last_error: str | None = None
    failures: deque[float] = field(default_factory=deque)  # monotonic times, pruned to the window


class Supervisor:
    """Spawns and restarts the hub's background loops; `stop` ends restarting (each loop is
    expected to return on its own once its stop signal is set)."""

    def __init__(self, stop: asyncio.Event, *, monotonic: Callable[[], float] = time.monotonic,
                 sleep: Sleep = sleep_or_stop, backoff: Callable[[], Backoff] = lambda: Backoff(base=0.5, cap=30.0),
                 failure_threshold: int = 3, window_s: float = 300.0) -> None:
        self._stop = stop
        self._monotonic = monotonic
        self._sleep = sleep
        self._backoff = backoff
        self._threshold = failure_threshold
        self._window_s = window_s
        self.tasks: dict[str, TaskHealth] = {}

    def spawn(self, name: str, loop: Callable[[], Awaitable[None]]) -> asyncio.Task[None]:
        """Run `loop()` as a supervised asyncio task named `name`; `loop` is called afresh on
        every restart, so it must be a factory (a coroutine object can be awaited only once)."""
        self.tasks[name] = TaskHealth(name)
        return asyncio.create_task(self.supervise(name, loop), name=name)

    async def supervise(self, name: str, loop: Callable[[], Awaitable[None]]) -> None:
        """Await `loop()` until it returns or the stop event is set, restarting it after each
        exception. Cancellation is not an error: it propagates."""
        health = self.tasks.setdefault(name, TaskHealth(name))
        backoff = self._backoff()
        while True:
            started = self._monotonic()
            try:
                await loop()
                return
            except Exception as exc:  # noqa: BLE001 - the whole point: any error, not just foreseen ones
                now = self._monotonic()
                health.failures.append(now)
                health.last_error = f"{type(exc).__name__}: {exc}"
                if self._stop.is_set():
                    log.error("background task %s failed while stopping", name, exc_info=exc,
                              extra={"task": name, "error": health.last_error})
                    return
                # A loop that ran well for a while before failing starts its backoff afresh.
                if now - started > self._window_s:
                    backoff.reset()
                delay = backoff.next_delay()
                health.restarts += 1
                TASK_RESTARTS.labels(name).inc()
                log.error("background task %s failed; restarting in %.1f s", name, delay, exc_info=exc,
                          extra={"task": name, "error": health.last_error, "restarts": health.restarts,
                                 "delay_s": round(delay, 3)})
            if await self._sleep(delay, self._stop):
                return

    def failing(self) -> dict[str, str]:
        """Tasks with `failure_threshold` or more failures within the window, with their last error."""
        horizon = self._monotonic() - self._window_s
        out: dict[str, str] = {}
        for health in self.tasks.values():
            while health.failures and health.failures[0] < horizon:
                health.failures.popleft()
            if len(health.failures) >= self._threshold:
                out[health.name] = health.last_error or "failed"
        return out

    def health(self) -> dict[str, dict[str, object]]:
        """Every task's state for /readyz: "failing" (with its last error) or "ok", and its restarts."""
        failing = self.failing()
        return {name: {"state": "failing" if name in failing else "ok", "restarts": h.restarts,
                       "last_error": h.last_error}
                for name, h in self.tasks.items()}
