"""A JSON-ready dump of a running bridge for a support ticket: the connection, the core's queue,
fencing and counters, and (MOCK) the simulated robot. The password is never in it, and a URL
with a login in it is shown without one."""
from __future__ import annotations

from typing import Any

from .link import REDACTED, RobotLink, redact_url
from .mock import MockRobot


def diagnostics(link: RobotLink, robot: MockRobot | None = None) -> dict[str, Any]:
    """Everything useful about the bridge, safe to paste anywhere."""
    dump: dict[str, Any] = {
        "robot_id": link.robot_id,
        "nats": {
            "url": redact_url(link.url),
            "user": link.credentials.user,
            "password": REDACTED,
            "connected": link.connected,
            "wanted": link.wanted,
            "silenced": link.silenced,
            "connects": link.connects,
            "ignored_silenced": link.ignored_silenced,
            "not_sent": dict(link.not_sent),
        },
        "bridge": {"heartbeat_s": link.core.heartbeat_s, **link.core.snapshot()},
    }
    if robot is not None:
        dump["mock"] = {"time_scale": robot.time_scale, "settings_delay_s": robot.settings_delay_s,
                        "fail_next": robot.fail_next, "robot": robot.sim.snapshot()}
    return dump
