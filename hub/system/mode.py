"""The system mode, worked out in plain functions: MAINTENANCE when an admin set it, else DEGRADED
while any health check fails, else NORMAL (docs/architecture.md §5 "System modes")."""
from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

#: A maintenance reason is shown in every console header: a sentence, not an essay.
REASON_MAX = 300


class Mode(str, enum.Enum):
    NORMAL = "NORMAL"
    DEGRADED = "DEGRADED"
    MAINTENANCE = "MAINTENANCE"


class MaintenanceError(ValueError):
    """A maintenance switch that cannot be made as asked; the message says why."""


@dataclass(frozen=True)
class Maintenance:
    """The admin's switch as last set."""

    on: bool
    reason: str | None
    set_by: str
    set_at: datetime


@dataclass(frozen=True)
class SystemMode:
    mode: Mode
    degraded: dict[str, str]  # each failing dependency with why (empty unless DEGRADED or under maintenance)
    maintenance: Maintenance | None


def system_mode(maintenance: Maintenance | None, problems: Mapping[str, str]) -> SystemMode:
    """The mode for this switch and these failing checks (name → why)."""
    if maintenance is not None and maintenance.on:
        mode = Mode.MAINTENANCE
    else:
        mode = Mode.DEGRADED if problems else Mode.NORMAL
    return SystemMode(mode, dict(problems), maintenance)


def switch(on: bool, reason: str | None, actor: str, now: datetime) -> Maintenance:
    """The maintenance switch an admin asks for. Turning it on needs a reason: every operator sees
    it in the header and must know why the console will not take their work."""
    text = (reason or "").strip()
    if on and not text:
        raise MaintenanceError("a reason is required to start maintenance (operators see it in the header)")
    if len(text) > REASON_MAX:
        raise MaintenanceError(f"the reason is at most {REASON_MAX} characters")
    return Maintenance(on, text or None, actor, now)
