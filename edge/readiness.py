"""The agent's readiness (`GET /readyz` on the local page, no login): may this box be counted on to
journal and forward what its site says? (docs/architecture.md §7 "The local page").

Ready means: the journal takes appends (not refusing under disk pressure), the box's NATS server
is connected and its JetStream answers (robots, commands and forwarding all go through it), and
no long-running task of the agent has ended while the agent runs. The hub being unreachable does
not make a box unready: it keeps journaling through a WAN outage, which is what it is for.
"""
from __future__ import annotations

import asyncio
from collections.abc import Iterable

from nats.aio.client import Client as NatsClient

from edge.journal import Journal
from edge.journal_pressure import REFUSING
from shared.health import OK, nats_checks


def journal_check(journal: Journal) -> str:
    """"ok", or why the journal would refuse the next append."""
    status = journal.pressure_status()
    if status.get("state") != REFUSING:
        return OK
    if status.get("low_disk"):
        return ("refusing appends: the disk is below the journal's free-space floor and the floor's reserve is "
                "spent or kept for alarms (see disk_pressure on the local page)")
    return "refusing appends: full of unforwarded CRITICAL/HIGH rows (see disk_pressure on the local page)"


def task_check(tasks: Iterable[asyncio.Task[object]]) -> dict[str, str]:
    """Each task that ended while the agent runs, with how (a crashed link, a stopped reporter)."""
    ended: dict[str, str] = {}
    for task in tasks:
        if not task.done():
            continue
        if task.cancelled():
            ended[task.get_name()] = "cancelled"
        else:
            exc = task.exception()
            ended[task.get_name()] = f"{type(exc).__name__}: {exc}" if exc else "returned"
    return ended


async def readiness(journal: Journal, nc: NatsClient, tasks: Iterable[asyncio.Task[object]]) -> dict[str, object]:
    """The `/readyz` body: `status` ready or not_ready, each check, and `failing` with the reasons."""
    checks = {"journal": journal_check(journal), **await nats_checks(nc, "not connected to the box's server (reconnecting)")}
    failing = {name: detail for name, detail in checks.items() if detail != OK}
    failing.update({f"task {name}": how for name, how in task_check(tasks).items()})
    return {"status": "not_ready" if failing else "ready", "checks": checks, **({"failing": failing} if failing else {})}
