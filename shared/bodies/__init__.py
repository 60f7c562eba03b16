"""Per-kind envelope bodies, one module per device family, and the registry kind → Struct."""
from __future__ import annotations

import msgspec

from shared.commands import RESULT_KIND, CommandResult
from shared.bodies.core import DemoTick, LinkStatus
from shared.bodies.gsm import GSM_BODY_TYPES, RawSms, TemperatureSms, UnreadSms
from shared.bodies.robots import ROBOT_BODY_TYPES
from shared.bodies.satel import (
    SATEL_BODY_TYPES,
    ClockDrift,
    CommandGiven,
    LinkReleased,
    LogRecord,
    OutputEvent,
    PanelSnapshot,
    PartitionArmed,
    PartitionEvent,
    TroubleEvent,
    TroubleRef,
    ZoneEvent,
)

BODY_TYPES: dict[str, type[msgspec.Struct]] = {
    "demo.tick": DemoTick,
    "edge.link.up": LinkStatus,
    "edge.link.down": LinkStatus,
    "edge.link.degraded": LinkStatus,
    "edge.link.recovered": LinkStatus,
    **SATEL_BODY_TYPES,
    **GSM_BODY_TYPES,
    **ROBOT_BODY_TYPES,
    RESULT_KIND: CommandResult,
}

__all__ = [
    "BODY_TYPES",
    "ClockDrift",
    "CommandGiven",
    "DemoTick",
    "LinkReleased",
    "LinkStatus",
    "LogRecord",
    "OutputEvent",
    "PanelSnapshot",
    "PartitionArmed",
    "PartitionEvent",
    "RawSms",
    "TemperatureSms",
    "UnreadSms",
    "TroubleEvent",
    "TroubleRef",
    "ZoneEvent",
]
