"""A JSON-ready dump of the emulator's state with secrets (user codes, integration key) redacted."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from .panel import Panel
from .server import ModuleServer

REDACTED = "<redacted>"


def panel_state(panel: Panel) -> dict[str, Any]:
    """Zones, partitions, outputs, troubles, users (without codes) and the event log size."""
    return {
        "zones": [asdict(zone) for zone in panel.zones.values()],
        "partitions": [asdict(partition) for partition in panel.partitions.values()],
        "outputs": [asdict(output) for output in panel.outputs.values()],
        "users": [
            {"number": u.number, "name": u.name, "code": REDACTED, "partitions": sorted(u.partitions)}
            for u in panel.users
        ],
        "code_prefix": REDACTED if panel.code_prefix else "",
        "troubles": {f"0x{cmd:02x}": data.hex() for cmd, data in panel.troubles.items() if any(data)},
        "new_data": sorted(panel.new_data),
        "newest_event_index": panel.events.newest_index,
        "module": asdict(panel.info),
    }


def diagnostics(server: ModuleServer) -> dict[str, Any]:
    """Everything useful for a support ticket about the emulator, safe to paste anywhere."""
    return {
        "listening": {"host": server.host, "port": server.port if server.is_serving else None},
        "encryption": {
            "enabled": server.integration_key is not None,
            "integration_key": REDACTED if server.integration_key is not None else None,
        },
        "idle_timeout": server.idle_timeout,
        "drop_first_client": server.drop_first_client,
        "response_delay": server.response_delay,
        "client_connected": server.client_connected,
        "stats": asdict(server.stats),
        "panel": panel_state(server.panel),
    }
