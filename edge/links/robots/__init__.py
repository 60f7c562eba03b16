"""The edge's link to the site's robots (docs/architecture.md §4.4, §7 "Robots").

`RobotLink` (link.py) reads what the robots say from the box's own JetStream (streams.py) and
journals it; `RobotTracker` and `TelemetrySampler` (state.py) are the pure state it drives:
connection from heartbeats, status changes, alarms, the identity and capability questions, and
telemetry sampling. `RobotRelay` (relay.py) hands the hub's robot commands to the robots.
`diagnostics` dumps the link with the site's map redacted.
"""
from edge.links.robots.diagnostics import diagnostics
from edge.links.robots.link import RobotLink
from edge.links.robots.relay import RobotRelay
from edge.links.robots.state import Observation, Policy, RobotTracker, Snapshot, TelemetrySampler, alarms_of

__all__ = [
    "Observation",
    "Policy",
    "RobotLink",
    "RobotRelay",
    "RobotTracker",
    "Snapshot",
    "TelemetrySampler",
    "alarms_of",
    "diagnostics",
]
