"""The centre's system mode (docs/architecture.md §5 "System modes"): every signed-in user reads it
(the console's header shows it); an admin starts and ends maintenance, which makes the API
read-only (hub.api.app refuses changing requests with 503 `maintenance`)."""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from typing import Any

import msgspec

from hub.api.app import deps
from hub.api.crud import audit
from hub.api.errors import invalid
from hub.api.routing import Call, Router
from hub.health import Health
from hub.system.mode import Maintenance, MaintenanceError, SystemMode, switch, system_mode
from hub.system.store import read_maintenance, write_maintenance

router = Router()
#: `extra` key: what the hub's health is now (hub.health.health, bound to this process).
HEALTH_KEY = "health"
TAGS = ("system",)


class MaintenanceIn(msgspec.Struct, forbid_unknown_fields=True):
    maintenance: bool
    reason: str | None = None


class MaintenanceOut(msgspec.Struct):
    on: bool
    reason: str | None
    set_by: str
    set_at: datetime


class ModeOut(msgspec.Struct):
    mode: str
    degraded: dict[str, str]
    maintenance: MaintenanceOut | None


def _out(found: SystemMode) -> ModeOut:
    m = found.maintenance
    return ModeOut(found.mode.value, found.degraded,
                   MaintenanceOut(m.on, m.reason, m.set_by, m.set_at) if m is not None else None)


async def _mode(call: Call, maintenance: Maintenance | None) -> ModeOut:
    probe: Callable[[], Awaitable[Health]] | None = deps(call).extra.get(HEALTH_KEY)
    problems = (await probe()).problems if probe is not None else {}
    return _out(system_mode(maintenance, problems))


@router.get("/api/v1/system/mode", permission="self", response=ModeOut, tags=TAGS)
async def get_mode(call: Call) -> ModeOut:
    """NORMAL, DEGRADED (each failing dependency with why; alarms still flow) or MAINTENANCE
    (who set it, when and why; the API is read-only)."""
    return await _mode(call, await read_maintenance(deps(call).pool))


@router.put("/api/v1/system/mode", permission="system.maintenance", body=MaintenanceIn, response=ModeOut, tags=TAGS,
            in_maintenance=True)
async def put_mode(call: Call) -> ModeOut:
    """Start maintenance (a reason required: every operator sees it) or end it. Audited."""
    body: MaintenanceIn = call.body
    try:
        wanted = switch(body.maintenance, body.reason, call.user.actor, datetime.now(timezone.utc))
    except MaintenanceError as exc:
        raise invalid(str(exc), {"field": "reason"}) from None
    async with deps(call).pool.acquire() as conn, conn.transaction():
        await write_maintenance(conn, wanted)
        details: dict[str, Any] = {"reason": wanted.reason}
        await audit(conn, call, "system.maintenance." + ("start" if wanted.on else "end"), "system", "mode", details)
    return await _mode(call, wanted)
