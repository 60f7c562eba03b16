"""What the API and the live stream show of robots, in the robot wire's camelCase (the console
reads both the same way), and the outbox items that carry it: `robot.updated`, `robot.telemetry`,
`robot.command.updated`, `robot.lease.updated`."""
from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from hub.db.outbox import OutboxItem
from hub.robots.domain import LeaseView, pending

ROBOT_UPDATED = "robot.updated"
ROBOT_TELEMETRY = "robot.telemetry"
COMMAND_UPDATED = "robot.command.updated"
LEASE_UPDATED = "robot.lease.updated"


def iso(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None


def _json(value: Any) -> Any:
    """A jsonb column as asyncpg returns it (text) decoded; None stays None."""
    return msgspec.json.decode(value) if isinstance(value, (str, bytes)) else value


def lease_of(row: Any, prefix: str = "lease_") -> LeaseView | None:
    """The open lease a row carries in `<prefix>…` columns (a robot row joined with it), if any."""
    if row[f"{prefix}id"] is None:
        return None
    return LeaseView(str(row[f"{prefix}id"]), row[f"{prefix}holder_id"], row[f"{prefix}holder_name"],
                     row[f"{prefix}fencing_token"], row[f"{prefix}expires_at"])


def lease_json(row: Any) -> dict[str, Any]:
    """A lease row (robot_leases) as the API shows it."""
    return {
        "leaseId": str(row["id"]), "robotId": row["robot_id"], "fencingToken": row["fencing_token"],
        "holder": {"id": row["holder_id"], "name": row["holder_name"]}, "takenAt": iso(row["taken_at"]),
        "expiresAt": iso(row["expires_at"]), "releasedAt": iso(row["released_at"]), "endedHow": row["ended_how"],
        "forcedBy": row["forced_by"], "forceReason": row["force_reason"],
    }


def current_lease(row: Any) -> dict[str, Any] | None:
    """The current lease a robot row carries (its id, token, holder and expiry), or None."""
    lease = lease_of(row)
    if lease is None:
        return None
    return {"leaseId": lease.lease_id, "fencingToken": lease.fencing_token,
            "holder": {"id": lease.holder_id, "name": lease.holder_name}, "expiresAt": iso(lease.expires_at)}


def robot_summary(row: Any) -> dict[str, Any]:
    """A robot as the list shows it: metadata, connection, state, battery, last seen, lease holder
    (a row of hub.robots.repository's robot query)."""
    status = _json(row["status"]) or {}
    sample = _json(row["telemetry"]) or {}
    # Battery from whichever the robot said last: a status (on a change) or a sample (every second).
    sampled_later = row["telemetry_at"] is not None and (row["status_at"] is None or row["telemetry_at"] > row["status_at"])
    battery = sample.get("batteryPct") if sampled_later else status.get("batteryPct")
    return {
        "robotId": row["robot_id"], "displayName": row["display_name"], "objectId": row["object_id"],
        "objectName": row["object_name"], "edgeId": row["edge_id"], "enabled": row["enabled"], "tags": list(row["tags"]),
        "connection": {"state": row["connection"], "since": iso(row["connection_since"]),
                       "reason": row["connection_reason"]},
        "state": status.get("state"), "batteryPct": battery, "charging": status.get("charging"),
        "faults": status.get("faults", []), "lastSeenAt": iso(row["last_seen_at"]),
        "pose": sample.get("pose"), "telemetryAt": iso(row["telemetry_at"]),
        "firstSeenAt": iso(row["first_seen_at"]), "lease": current_lease(row),
    }


def snapshot_json(row: Any | None, column: str) -> dict[str, Any] | None:
    """One identity, capability or reported-settings report with when it was made and heard."""
    if row is None:
        return None
    out = {column: _json(row[column]), "messageId": row["message_id"], "sentAt": iso(row["sent_at"]),
           "receivedAt": iso(row["received_at"])}
    if column == "settings":
        out["appliedMessageId"] = row["applied_message_id"]
    return out


def desired_json(row: Any | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return {"settings": _json(row["settings"]), "commandId": str(row["command_id"]), "setBy": row["set_by"],
            "setByName": row["set_by_name"], "setAt": iso(row["set_at"])}


def settings_json(desired: Any | None, reported: Any | None) -> dict[str, Any]:
    """Desired and reported settings side by side, with the desired ones not running yet."""
    return {"desired": desired_json(desired), "reported": snapshot_json(reported, "settings"),
            "pending": pending(_json(desired["settings"]) if desired is not None else None,
                               _json(reported["settings"]) if reported is not None else None)}


def robot_detail(row: Any, identity: Any | None, capability: Any | None, desired: Any | None,
                 reported: Any | None) -> dict[str, Any]:
    """A robot with its notes, latest identity, capability, status and settings."""
    return {**robot_summary(row), "notes": row["notes"], "status": _json(row["status"]), "statusAt": iso(row["status_at"]),
            "identity": snapshot_json(identity, "identity"), "capability": snapshot_json(capability, "capability"),
            "settings": settings_json(desired, reported)}


def telemetry_json(row: Any) -> dict[str, Any]:
    """One telemetry sample (a robot_telemetry row)."""
    return {"at": iso(row["at"]), "sentAt": iso(row["sent_at"]),
            "pose": {"x": row["x"], "y": row["y"], "theta": row["theta"]}, "batteryPct": row["battery_pct"],
            "speedMps": row["speed_mps"], "state": row["state"], "extra": _json(row["extra"]), "skipped": row["skipped"]}


def command_json(row: Any) -> dict[str, Any]:
    """A robot command (or desired settings) as the API and the live stream show it."""
    return {
        "commandId": str(row["id"]), "robotId": row["robot_id"], "edgeId": row["edge_id"], "objectId": row["object_id"],
        "kind": row["kind"], "commandType": row["command_type"], "payload": _json(row["args"]),
        "settings": _json(row["settings"]), "fencingToken": row["fencing_token"],
        "leaseId": str(row["lease_id"]) if row["lease_id"] is not None else None,
        "cancelOf": str(row["cancel_of"]) if row["cancel_of"] is not None else None,
        "requestedBy": row["requested_by"], "requestedName": row["requested_name"], "reason": row["reason"],
        "status": row["status"], "ackStatus": row["ack_status"], "ackBy": row["ack_by"], "detail": row["detail"],
        "progress": row["progress"], "late": row["late"], "createdAt": iso(row["created_at"]),
        "expiresAt": iso(row["expires_at"]), "sentAt": iso(row["sent_at"]), "ackedAt": iso(row["acked_at"]),
        "finishedAt": iso(row["finished_at"]), "updatedAt": iso(row["updated_at"]),
    }


def robot_update(row: Any, changed: list[str]) -> OutboxItem:
    """`robot.updated`: the robot's summary after a change, and what changed (registered, status,
    connection, identity, capability, settingsReported, object, metadata), so a client refreshes
    only that."""
    return OutboxItem(ROBOT_UPDATED, row["object_id"], {"robot": robot_summary(row), "changed": changed})


def command_update(row: Any) -> OutboxItem:
    """`robot.command.updated` for a command row."""
    return OutboxItem(COMMAND_UPDATED, row["object_id"], {"command": command_json(row)})


def lease_update(robot_id: str, object_id: int | None, lease: Any | None, ended: Any | None) -> OutboxItem:
    """`robot.lease.updated`: the robot's lease now (None: nobody holds it) and the one that just
    ended, if any (released, expired or taken by force)."""
    return OutboxItem(LEASE_UPDATED, object_id, {
        "robotId": robot_id, "lease": lease_json(lease) if lease is not None else None,
        "ended": lease_json(ended) if ended is not None else None})
