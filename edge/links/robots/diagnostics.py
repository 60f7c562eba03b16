"""A support dump of the robot link, safe to paste into a ticket: no robot's login (the link never
holds one), and no map of the site: patrol routes are shown as their length and poses not at all."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec
from prometheus_client import REGISTRY

if TYPE_CHECKING:
    from edge.links.robots.link import RobotLink

REDACTED = "<redacted>"
_COUNTERS = ("vigil_edge_robot_messages_total", "vigil_edge_robot_messages_dropped_total",
             "vigil_edge_robot_commands_total")


def _counter(name: str) -> dict[str, float]:
    """Every labelled sample of a counter, by its label values."""
    out: dict[str, float] = {}
    for metric in REGISTRY.collect():
        for sample in metric.samples:
            if sample.name == name:
                out[",".join(sample.labels.values())] = sample.value
    return out


def diagnostics(link: RobotLink) -> dict[str, Any]:
    """Settings, status, each robot's capability, and the counters."""
    robots = {}
    for robot, tracker in link.trackers.items():
        status = None if tracker.status is None else msgspec.to_builtins(tracker.status)
        robots[robot] = {
            "status": status,
            "capability": None if tracker.capability is None else msgspec.to_builtins(tracker.capability),
            "pose": REDACTED if tracker.pose is not None else None,
            "patrol_route": (f"{len(tracker.settings.patrol_route)} waypoints"
                             if tracker.settings is not None and tracker.settings.patrol_route else None),
        }
    return {
        "settings": msgspec.to_builtins(link.settings),
        "status": link.status(),
        "robots": robots,
        "counters": {name: _counter(name) for name in _COUNTERS},
    }
