"""Robot events inside the ingest batch's transaction (hub.ingest.commit): the registry, the
robot-owned copies (identity, capability and reported-settings snapshots, status, connection,
telemetry) and the commands the acks settle, with the live updates for all of it.

A robot appears with the first event that names it (the envelope's `source`), owned by that edge
and on the object the edge serves. An event about a robot another edge owns is stored as usual
(it is in `events`) but touches nothing here: the registry never moves a robot between edges on
its own. An event that cannot be read is counted and logged, and changes nothing here either."""
from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import msgspec
from prometheus_client import Counter

from hub.db.bulk import rows_json
from hub.db.outbox import OutboxItem
from hub.robots import repository
from hub.robots.domain import CommandStatus, settle_ack
from hub.robots.views import ROBOT_TELEMETRY, command_update, robot_update
from shared.bodies.robots import ROBOT_BODY_TYPES, RobotCommandAck, RobotConnection, RobotTelemetry
from shared.robots import Settings, valid_robot_id

log = logging.getLogger("vigil.hub.robots")

DROPPED = Counter("vigil_robot_events_dropped_total",
                  "Robot events stored but not applied to the robot registry, by reason", ["reason"])
FOREIGN = Counter("vigil_robot_foreign_events_total",
                  "Robot events from an edge that does not own the robot they name", ["edge"])

PREFIX = "robot."
_SNAPSHOTS = {"robot.identity": ("robot_identity", "identity"), "robot.capability": ("robot_capability", "capability"),
              "robot.settings.reported": ("robot_settings_reported", "settings")}
_ASPECT = {"robot.identity": "identity", "robot.capability": "capability", "robot.settings.reported": "settingsReported"}

SQL_OWNERS = "SELECT robot_id, edge_id FROM robots WHERE robot_id = ANY($1::text[]) ORDER BY robot_id FOR UPDATE"
SQL_NEW_ROBOTS = """
INSERT INTO robots (robot_id, edge_id, object_id, first_seen_at, last_seen_at, updated_at)
SELECT u.robot_id, u.edge_id, e.object_id, u.at, u.at, $2
FROM json_to_recordset($1::json) AS u(robot_id text, edge_id text, at timestamptz)
JOIN edges e ON e.edge_id = u.edge_id
ON CONFLICT (robot_id) DO NOTHING
RETURNING robot_id
"""
# A robot stays on its edge; its object follows the one its edge serves now.
SQL_SEEN = """
UPDATE robots r SET last_seen_at = greatest(r.last_seen_at, u.at), object_id = e.object_id, updated_at = $2
FROM json_to_recordset($1::json) AS u(robot_id text, at timestamptz), edges e, robots old
WHERE r.robot_id = u.robot_id AND e.edge_id = r.edge_id AND old.robot_id = r.robot_id
RETURNING r.robot_id, (old.object_id IS DISTINCT FROM e.object_id) AS moved
"""
SQL_OBJECTS = "SELECT robot_id, object_id FROM robots WHERE robot_id = ANY($1::text[])"
SQL_SNAPSHOT = """
INSERT INTO {table} (robot_id, event_id, ord, message_id, sent_at, received_at, {column}{extra_column})
SELECT u.robot_id, u.event_id, u.ord, u.message_id, u.sent_at, $2, u.value{extra_value}
FROM json_to_recordset($1::json) AS u(robot_id text, event_id uuid, ord int8, message_id text, sent_at timestamptz,
                                      value jsonb, applied text)
ON CONFLICT (event_id) DO NOTHING
"""
# The newest by order key wins, whichever lane brought it first.
SQL_STATUS = """
UPDATE robots r SET status = u.status, status_at = u.at, status_ord = u.ord
FROM json_to_recordset($1::json) AS u(robot_id text, status jsonb, at timestamptz, ord int8)
WHERE r.robot_id = u.robot_id AND r.status_ord < u.ord
RETURNING r.robot_id
"""
SQL_CONNECTION = """
UPDATE robots r SET connection = u.state, connection_since = u.at, connection_reason = u.reason, connection_ord = u.ord,
                    last_seen_at = greatest(r.last_seen_at, u.heard)
FROM json_to_recordset($1::json) AS u(robot_id text, state text, reason text, at timestamptz, ord int8,
                                      heard timestamptz)
WHERE r.robot_id = u.robot_id AND r.connection_ord < u.ord
RETURNING r.robot_id
"""
SQL_TELEMETRY = """
INSERT INTO robot_telemetry (robot_id, at, event_id, sent_at, x, y, theta, battery_pct, speed_mps, state, extra, skipped)
SELECT u.robot_id, u.at, u.event_id, u.sent_at, u.x, u.y, u.theta, u.battery_pct, u.speed_mps, u.state, u.extra,
       u.skipped
FROM json_to_recordset($1::json) AS u(robot_id text, at timestamptz, event_id uuid, sent_at timestamptz,
    x float8, y float8, theta float8, battery_pct float8, speed_mps float8, state text, extra jsonb, skipped int8)
ON CONFLICT DO NOTHING
"""
# The robot's newest sample (one per robot, the batch's newest by order key) for the list's
# battery and position; a sample also says the robot was heard.
SQL_TELEMETRY_LATEST = """
UPDATE robots r SET telemetry = u.sample, telemetry_at = u.at, telemetry_ord = u.ord,
                    last_seen_at = greatest(r.last_seen_at, u.at)
FROM json_to_recordset($1::json) AS u(robot_id text, sample jsonb, at timestamptz, ord int8)
WHERE r.robot_id = u.robot_id AND r.telemetry_ord < u.ord
"""
# An edge settles only its own robots' commands.
SQL_FOR_ACK = "SELECT * FROM robot_commands WHERE id = $1 AND robot_id = $2 AND edge_id = $3 FOR UPDATE"
SQL_SETTLE = """
UPDATE robot_commands SET status = $2, ack_status = $3, ack_by = $4, detail = $5, progress = coalesce($6, progress),
    late = late OR $7, settled_by_hub = false, acked_at = coalesce(acked_at, $8),
    finished_at = CASE WHEN $9 THEN $8 END, updated_at = $8
WHERE id = $1 RETURNING *
"""


@dataclass(frozen=True)
class RobotEvent:
    """A newly stored `robot.*` event: its edge, order key, window time, kind, robot and body."""

    id: str
    edge_id: str
    ord: int
    at: datetime
    kind: str
    source: str
    body: bytes


@dataclass(frozen=True)
class _Read:
    event: RobotEvent
    body: Any


def _full(struct: msgspec.Struct) -> dict[str, Any]:
    """Every field of a wire struct by its wire name, defaults included (the API shows them all)."""
    return {f.encode_name: msgspec.to_builtins(getattr(struct, f.name)) for f in msgspec.structs.fields(struct)}


def _drop(e: RobotEvent, reason: str, detail: str) -> None:
    DROPPED.labels(reason).inc()
    log.warning("edge %s: %s event %s not applied to robot %r (%s): %s", e.edge_id, e.kind, e.id, e.source, reason,
                detail, extra={"edge": e.edge_id, "event_id": e.id, "robot": e.source})


def _read(events: list[RobotEvent]) -> list[_Read]:
    """The events whose body reads as their kind's and names the robot of their envelope."""
    out = []
    for e in events:
        body_type = ROBOT_BODY_TYPES.get(e.kind)
        if body_type is None:
            _drop(e, "unknown_kind", "no such robot event kind")
            continue
        if not valid_robot_id(e.source):
            _drop(e, "bad_robot_id", "the source is no robot id")
            continue
        try:
            body = msgspec.json.decode(e.body, type=body_type)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            _drop(e, "bad_body", str(exc))
            continue
        if body.robot != e.source:
            _drop(e, "wrong_robot", f"the body names robot {body.robot!r}")
            continue
        out.append(_Read(e, body))
    return out


async def _owned(conn: asyncpg.Connection, reads: list[_Read], now: datetime) -> tuple[list[_Read], set[str]]:
    """Register the robots first named here (each on its edge and that edge's object) and keep
    the events of the edge that owns their robot; returns those and the new robots' ids."""
    ids = sorted({r.event.source for r in reads})
    owners = {row["robot_id"]: row["edge_id"] for row in await conn.fetch(SQL_OWNERS, ids)}
    first: dict[str, RobotEvent] = {}
    for r in reads:
        if r.event.source not in owners and r.event.source not in first:
            first[r.event.source] = r.event
    new: set[str] = set()
    if first:
        rows = await conn.fetch(SQL_NEW_ROBOTS, rows_json(
            {"robot_id": e.source, "edge_id": e.edge_id, "at": e.at} for e in first.values()), now)
        new = {row["robot_id"] for row in rows}
        # Another edge's batch may have registered one of them meanwhile: read the owners again.
        owners = {row["robot_id"]: row["edge_id"] for row in await conn.fetch(SQL_OWNERS, ids)}
    kept, foreign = [], set()
    for r in reads:
        if owners.get(r.event.source) == r.event.edge_id:
            kept.append(r)
        else:
            foreign.add((r.event.edge_id, r.event.source))
            FOREIGN.labels(r.event.edge_id).inc()
    for edge_id, robot_id in sorted(foreign):
        log.warning("edge %s reports robot %s, which edge %s owns: stored, not applied", edge_id, robot_id,
                    owners.get(robot_id, "?"), extra={"edge": edge_id, "robot": robot_id})
    for robot_id in sorted(new):
        log.info("robot %s registered on edge %s", robot_id, owners[robot_id],
                 extra={"robot": robot_id, "edge": owners[robot_id]})
    return kept, new


def _mark(changed: dict[str, set[str]], aspect: str, robot_ids: list[str]) -> None:
    for robot_id in robot_ids:
        changed[robot_id].add(aspect)


def _newest(reads: list[_Read]) -> list[_Read]:
    """Each robot's newest event of these (by order key): one row per robot for an UPDATE."""
    newest: dict[str, _Read] = {}
    for r in reads:
        if r.event.source not in newest or newest[r.event.source].event.ord < r.event.ord:
            newest[r.event.source] = r
    return list(newest.values())


async def apply_robot_events(conn: asyncpg.Connection, events: list[RobotEvent], now: datetime) -> list[OutboxItem]:
    """Apply a batch's newly stored robot events in its transaction; returns the live updates
    (`robot.updated`, `robot.telemetry`, `robot.command.updated`) for the caller to write last."""
    reads = _read(events)
    if not reads:
        return []
    reads, new = await _owned(conn, reads, now)
    if not reads:
        return []
    # Per robot, what changed: the console refreshes only that (robot.updated's `changed`).
    changed: dict[str, set[str]] = defaultdict(set)
    for robot_id in new:
        changed[robot_id].add("registered")
    by_kind: dict[str, list[_Read]] = defaultdict(list)
    seen: dict[str, datetime] = {}
    for r in reads:
        by_kind[r.event.kind].append(r)
        # Heard from the robot itself; a connection event is the edge's word about it.
        if r.event.kind != "robot.connection":
            seen[r.event.source] = max(seen.get(r.event.source, r.event.at), r.event.at)
    if seen:
        moved = await conn.fetch(SQL_SEEN, rows_json({"robot_id": k, "at": v} for k, v in seen.items()), now)
        _mark(changed, "object", [row["robot_id"] for row in moved if row["moved"]])
    for kind, (table, column) in _SNAPSHOTS.items():
        if by_kind[kind]:
            await _snapshots(conn, table, column, by_kind[kind], now)
            _mark(changed, _ASPECT[kind], [r.event.source for r in by_kind[kind]])
    if by_kind["robot.status"]:
        _mark(changed, "status", [row["robot_id"] for row in await conn.fetch(SQL_STATUS, rows_json(
            {"robot_id": r.event.source, "status": _full(r.body.status), "at": r.event.at, "ord": r.event.ord}
            for r in _newest(by_kind["robot.status"])))])
    if by_kind["robot.connection"]:
        _mark(changed, "connection", [row["robot_id"] for row in await conn.fetch(SQL_CONNECTION, rows_json(
            _connection_row(r.event, r.body) for r in _newest(by_kind["robot.connection"])))])
    items: list[OutboxItem] = []
    if changed:
        items += [robot_update(row, sorted(changed[row["robot_id"]]))
                  for row in await repository.robots_by_id(conn, list(changed), now)]
    items += await _telemetry(conn, by_kind["robot.telemetry"])
    items += await _acks(conn, sorted(by_kind["robot.cmd.ack"], key=lambda r: r.event.ord))
    return items


async def _snapshots(conn: asyncpg.Connection, table: str, column: str, reads: list[_Read], now: datetime) -> None:
    extra = table == "robot_settings_reported"
    sql = SQL_SNAPSHOT.format(table=table, column=column, extra_column=", applied_message_id" if extra else "",
                              extra_value=", u.applied" if extra else "")
    await conn.execute(sql, rows_json(
        {"robot_id": r.event.source, "event_id": r.event.id, "ord": r.event.ord, "message_id": r.body.message_id,
         "sent_at": r.body.sent_at, "value": _value(getattr(r.body, column)),
         "applied": getattr(r.body, "applied_message_id", None)}
        for r in reads), now)


def _value(report: msgspec.Struct) -> dict[str, Any]:
    """A snapshot's value: settings as the robot set them (what desired settings compare with),
    identity and capability whole."""
    return report.as_dict() if isinstance(report, Settings) else _full(report)


def _connection_row(e: RobotEvent, body: RobotConnection) -> dict[str, Any]:
    return {"robot_id": e.source, "state": body.state, "reason": body.reason, "at": e.at, "ord": e.ord,
            "heard": body.last_heard_at or e.at}


def _sample(r: _Read) -> dict[str, Any]:
    body: RobotTelemetry = r.body
    t = body.telemetry
    return {"robot_id": r.event.source, "at": r.event.at, "event_id": r.event.id, "sent_at": body.sent_at,
            "x": t.pose.x, "y": t.pose.y, "theta": t.pose.theta, "battery_pct": t.battery_pct, "speed_mps": t.speed_mps,
            "state": t.state.value if t.state is not None else None, "extra": t.extra, "skipped": body.skipped}


async def _telemetry(conn: asyncpg.Connection, reads: list[_Read]) -> list[OutboxItem]:
    """Store the samples; each is a `robot.telemetry` row for live clients (each client gets at
    most one per robot per interval: hub.stream.throttle)."""
    if not reads:
        return []
    samples = [_sample(r) for r in reads]
    await conn.execute(SQL_TELEMETRY, rows_json(samples))
    views = [{"robotId": s["robot_id"], "at": s["at"].isoformat(), "sentAt": s["sent_at"].isoformat(),
              "pose": {"x": s["x"], "y": s["y"], "theta": s["theta"]}, "batteryPct": s["battery_pct"],
              "speedMps": s["speed_mps"], "state": s["state"], "extra": s["extra"], "skipped": s["skipped"]}
             for s in samples]
    newest: dict[str, dict[str, Any]] = {}
    for r, view in zip(reads, views):
        if r.event.source not in newest or newest[r.event.source]["ord"] < r.event.ord:
            newest[r.event.source] = {"robot_id": r.event.source, "sample": view, "at": r.event.at, "ord": r.event.ord}
    await conn.execute(SQL_TELEMETRY_LATEST, rows_json(newest.values()))
    objects = {row["robot_id"]: row["object_id"]
               for row in await conn.fetch(SQL_OBJECTS, sorted({s["robot_id"] for s in samples}))}
    return [OutboxItem(ROBOT_TELEMETRY, objects.get(view["robotId"]), view) for view in views]


async def _acks(conn: asyncpg.Connection, reads: list[_Read]) -> list[OutboxItem]:
    """Settle commands from the robots' (and the edge's) acks, in journal order."""
    items = []
    for r in reads:
        ack: RobotCommandAck = r.body
        try:
            key = uuid.UUID(ack.command_id)
        except ValueError:
            _drop(r.event, "unknown_command", f"command id {ack.command_id!r}")
            continue
        row = await conn.fetchrow(SQL_FOR_ACK, key, r.event.source, r.event.edge_id)
        if row is None:
            _drop(r.event, "unknown_command", f"no command {ack.command_id} of this robot and edge")
            continue
        settled = settle_ack(CommandStatus(row["status"]), row["settled_by_hub"], ack.status)
        if settled is None:
            continue
        updated = await conn.fetchrow(SQL_SETTLE, key, settled.status.value, ack.status.value, ack.by, ack.detail,
                                      ack.progress, settled.late, r.event.at, settled.status.final)
        items.append(command_update(updated))
    return items
