"""An emulated Satel ETHM-1 Plus with its INTEGRA panel, speaking the real integration protocol."""

from .catalog import SYSTEM_TROUBLES
from .ethm import SatelEmulator
from .diagnostics import diagnostics, panel_state
from .devices import ModuleInfo, Output, Partition, UnknownDevice, User, Zone
from .event_log import EventLog
from .panel import Panel, PanelChange
from .server import ModuleServer, ServerStats
from .site import SAMPLE_CLEANER_CODE, SAMPLE_USER_CODE, sample_panel

__all__ = [
    "SAMPLE_CLEANER_CODE",
    "SAMPLE_USER_CODE",
    "SYSTEM_TROUBLES",
    "EventLog",
    "ModuleInfo",
    "ModuleServer",
    "Output",
    "Panel",
    "PanelChange",
    "Partition",
    "SatelEmulator",
    "ServerStats",
    "UnknownDevice",
    "User",
    "Zone",
    "diagnostics",
    "panel_state",
    "sample_panel",
]
