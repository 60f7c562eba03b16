"""Per-kind envelope bodies, one module per device family, and the registry kind → Struct."""
from __future__ import annotations

import msgspec

from shared.commands import RESULT_KIND, CommandResult
from shared.bodies.core import JOURNAL_REFUSED_KIND, PROBE_KIND, DemoTick, JournalRefused, LinkStatus, ProbeTick
from shared.bodies.gsm import GSM_BODY_TYPES, RawSms, TemperatureSms, UnreadSms
from shared.bodies.local import LOCAL_BODY_TYPES, LocalAck
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
    JOURNAL_REFUSED_KIND: JournalRefused,
    PROBE_KIND: ProbeTick,
    **SATEL_BODY_TYPES,
    **GSM_BODY_TYPES,
    **ROBOT_BODY_TYPES,
    **LOCAL_BODY_TYPES,
    RESULT_KIND: CommandResult,
}

__all__ = [
    "BODY_TYPES",
    "ClockDrift",
    "CommandGiven",
    "DemoTick",
    "JournalRefused",
    "LinkReleased",
    "LinkStatus",
    "LocalAck",
    "LogRecord",
    "OutputEvent",
    "PanelSnapshot",
    "PartitionArmed",
    "PartitionEvent",
    "PROBE_KIND",
    "ProbeTick",
    "RawSms",
    "TemperatureSms",
    "UnreadSms",
    "TroubleEvent",
    "TroubleRef",
    "ZoneEvent",
]
