"""Retry delays with full jitter, and sleeps that an event cuts short."""
from __future__ import annotations

import asyncio
import random


class Backoff:
    """Exponential backoff with full jitter (AWS architecture blog): delay = U(0, min(cap, base·2^n)).

    Full jitter spreads a fleet of edges reconnecting after a hub outage instead of letting them
    retry in lock-step.
    """

    def __init__(self, base: float = 0.2, cap: float = 30.0, rng: random.Random | None = None) -> None:
        if base <= 0 or cap < base:
            raise ValueError(f"backoff needs 0 < base <= cap, got base={base} cap={cap}")
        self.base = base
        self.cap = cap
        self.attempt = 0
        self._rng = rng or random.Random()

    def next_delay(self) -> float:
        """The delay before the next retry; each call counts one more failure."""
        ceiling = min(self.cap, self.base * (2 ** min(self.attempt, 32)))
        self.attempt += 1
        return self._rng.uniform(0, ceiling)

    def reset(self) -> None:
        """Call after a success so the next failure starts small again."""
        self.attempt = 0


async def sleep_or_stop(delay: float, stop: asyncio.Event) -> bool:
    """Sleep `delay` seconds unless `stop` is set first. Returns True when stopped."""
    if stop.is_set():
        return True
    try:
        await asyncio.wait_for(stop.wait(), timeout=delay)
    except asyncio.TimeoutError:
        return False
    return True


async def wait_any(events: tuple[asyncio.Event, ...], timeout: float | None) -> bool:
    """Wait until any of `events` is set, at most `timeout` seconds (None: no limit); False on
    timeout."""
    waits = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        done, _ = await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()
    return bool(done)
