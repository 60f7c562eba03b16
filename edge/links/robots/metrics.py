"""Prometheus metrics of the robot link (served on the edge's /metrics)."""
from __future__ import annotations

from prometheus_client import Counter, Gauge

MESSAGES = Counter("vigil_edge_robot_messages_total", "Robot messages the edge read, by type", ["type"])
DROPPED = Counter("vigil_edge_robot_messages_dropped_total",
                  "Robot messages dropped unread, by reason (shared.robots.DropReason, or unknown_robot)", ["reason"])
ROBOTS = Gauge("vigil_edge_robots", "Configured robots by connection state", ["connection"])
TELEMETRY_KEPT = Counter("vigil_edge_robot_telemetry_kept_total", "Telemetry samples journaled", ["robot"])
TELEMETRY_SKIPPED = Counter("vigil_edge_robot_telemetry_skipped_total",
                            "Telemetry samples the edge saw and did not keep (latest wins)", ["robot"])
COMMANDS = Counter("vigil_edge_robot_commands_total", "Robot commands from the hub by outcome at this box", ["outcome"])
