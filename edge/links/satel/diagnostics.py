"""A support dump of one Satel link, safe to paste into a ticket: secrets are redacted."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec
from prometheus_client import REGISTRY

from edge.config import SatelPanelSettings

if TYPE_CHECKING:
    from edge.links.satel.link import SatelLink

REDACTED = "<redacted>"
#: Settings that must never leave the box: the integration key and anything that makes a user code.
SECRET_SETTINGS = ("integration_key", "code_prefix")
_COUNTERS = (
    "vigil_satel_crc_errors_total",
    "vigil_satel_reconnects_total",
    "vigil_satel_events_total",
    "vigil_satel_events_lost_total",
    "vigil_satel_unsolicited_dropped_total",
)


def redacted_settings(settings: SatelPanelSettings) -> dict[str, Any]:
    """The panel's settings with every secret replaced by a marker (None and '' stay as they are,
    so the dump still tells whether one is set)."""
    data: dict[str, Any] = msgspec.to_builtins(settings)
    for key in SECRET_SETTINGS:
        if data.get(key):
            data[key] = REDACTED
    return data


def _counter(name: str, panel: str) -> float:
    return REGISTRY.get_sample_value(name, {"panel": panel}) or 0.0


def diagnostics(link: SatelLink) -> dict[str, Any]:
    """Settings (redacted), status, the last known panel state with names, and the counters."""
    panel = link.panel_id
    return {
        "settings": redacted_settings(link.settings),
        "status": link.status(),
        "state": msgspec.to_builtins(link.state.snapshot(push=link.push)),
        "counters": {name: _counter(name, panel) for name in _COUNTERS},
        "commands": {
            result: REGISTRY.get_sample_value("vigil_satel_commands_total", {"panel": panel, "result": result}) or 0.0
            for result in ("ack", "nack", "timeout", "unavailable")
        },
    }
