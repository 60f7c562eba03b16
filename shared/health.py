"""The NATS half of a readiness check, the same on the hub and on an edge box: the client
connected, then JetStream answering an `account_info` within a deadline."""
from __future__ import annotations

import asyncio

import nats.errors
import nats.js.errors
from nats.aio.client import Client as NatsClient

#: A check that passes says exactly this; anything else is why it fails.
OK = "ok"
#: How long JetStream may take to answer before it counts as not answering.
NATS_TIMEOUT_S = 2.0


async def nats_checks(nc: NatsClient, not_connected: str, timeout_s: float = NATS_TIMEOUT_S) -> dict[str, str]:
    """`nats` and `jetstream`: OK, or what is wrong (`not_connected` names which server is away)."""
    if not nc.is_connected:
        return {"nats": not_connected, "jetstream": "unknown: no NATS"}
    try:
        await nc.jetstream(timeout=timeout_s).account_info()
    except (nats.errors.Error, nats.js.errors.Error, asyncio.TimeoutError) as exc:
        return {"nats": OK, "jetstream": f"not answering: {type(exc).__name__} {exc}".rstrip()}
    return {"nats": OK, "jetstream": OK}
