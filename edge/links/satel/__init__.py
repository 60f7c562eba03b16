"""The edge's link to Satel INTEGRA panels through an ETHM-1 (Plus) module.

`SatelLink` (link.py) does the I/O: one TCP connection per module, polling or push, commands,
reconnects, DLOADX release. `PanelState` (state.py) is the pure state holder that turns answers
into typed events; `EventLogState` (event_log.py) is the pure holder of the panel's own event log:
its cursor, its records as events, and the occurrence keys a live alarm shares with its record.
`diagnostics` dumps a link with its secrets redacted.
"""
from edge.links.satel.commands import CommandOutcome, CommandResult
from edge.links.satel.diagnostics import diagnostics
from edge.links.satel.event_log import EventLogState
from edge.links.satel.link import MAX_RELEASE_MINUTES, LinkState, Release, SatelLink
from edge.links.satel.state import DEFAULT_PRIORITIES, Observation, PanelState

__all__ = [
    "DEFAULT_PRIORITIES",
    "EventLogState",
    "MAX_RELEASE_MINUTES",
    "CommandOutcome",
    "CommandResult",
    "LinkState",
    "Observation",
    "PanelState",
    "Release",
    "SatelLink",
    "diagnostics",
]
