"""Which outbox rows a caller's stream carries: the REST API's rule (hub.api.permissions)."""
from __future__ import annotations

from typing import Callable

from hub.api.permissions import allowed, object_filter
from hub.api.principal import Principal, Role
from hub.stream.messages import Row

ALARM_TOPIC_PREFIX = "alarm."
ROBOT_TOPIC_PREFIX = "robot."
#: The synthetic probe's rows (hub.probe): for the hub's own stream client, never an operator.
PROBE_TOPIC_PREFIX = "probe."


def row_filter(principal: Principal) -> Callable[[Row], bool]:
    """A predicate for `principal`'s rows: assigned-only roles see only their objects' rows (a
    row with no object belongs to none of theirs), a role without alarms.view no alarms, and one
    without robots.view no robots; only SYSTEM (the hub's own probe client) sees probe rows."""
    assigned = object_filter(principal)
    objects = frozenset(assigned) if assigned is not None else None
    sees_alarms = allowed(principal.role, "alarms.view")
    sees_robots = allowed(principal.role, "robots.view")
    sees_probes = principal.role is Role.SYSTEM

    def visible(row: Row) -> bool:
        if not sees_probes and row.topic.startswith(PROBE_TOPIC_PREFIX):
            return False
        if not sees_alarms and row.topic.startswith(ALARM_TOPIC_PREFIX):
            return False
        if not sees_robots and row.topic.startswith(ROBOT_TOPIC_PREFIX):
            return False
        return objects is None or row.object_id in objects

    return visible
