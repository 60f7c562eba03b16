"""Robots (docs/architecture.md §5 "Robots"): the registry with what each robot reports, its
telemetry, its metadata, its lease, commands and desired settings.

Field names are the robot wire's camelCase, in bodies, answers, query parameters and the live
stream's robot topics alike. Robot-owned data (identity, capability, status, connection, reported
settings, telemetry) is only ever read here: ingest writes it from the robot's edge. Viewing is
alarms.view's scope (robots.view: a TECHNICIAN sees the robots of assigned objects, and a robot
outside them is 404 as a missing one); leases, commands and settings need robots.command, metadata
robots.edit, a forced lease robots.force (MASTER).

A lease (POST .../lease) lasts robots.lease_ttl_s; posting again while holding it renews it (same
lease id and fencing token, later expiry: 200 instead of 201). Every command but estop and cancel
names the caller's current lease (`leaseId`), and carries its fencing token to the robot."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Annotated, Any

import msgspec
from aiohttp import web
from msgspec import UNSET, UnsetType

from hub.api.app import deps
from hub.api.commands_api import PUBLISHER_KEY  # one publisher sends panel and robot commands
from hub.api.common import PageQuery
from hub.api.errors import ApiError, not_found
from hub.api.permissions import allowed, object_filter, require_object
from hub.api.routing import Call, Router
from hub.auth.audit import audit
from hub.config import RobotSettings
from hub.db.outbox import write_outbox
from hub.robots import repository
from hub.robots.domain import (BadCommand, ForceForbidden, LeaseHeld, LeaseLost, RobotRuleError, check_command,
                               check_command_lease, check_desired, check_metadata_keys, decide_take, needs_lease,
                               telemetry_range)
from hub.robots.repository import AlreadyFinal, EdgeRevoked, Gone, NewCommand, NotHolder, Who, lease_view
from hub.robots.views import (command_json, current_lease, lease_json, robot_detail, robot_summary, robot_update,
                              settings_json, snapshot_json, telemetry_json)
from shared.logs import request_id

router = Router()

SETTINGS_KEY = "robots"
SQL_DISPLAY_NAME = "SELECT nullif(display_name, '') FROM users WHERE id = $1"
# The longest telemetry range one query may ask for (its rows are capped as well).
MAX_TELEMETRY_SPAN = timedelta(days=31)
SNAPSHOT_TABLES = {"identity": "robot_identity", "capability": "robot_capability"}

Reason = Annotated[str, msgspec.Meta(max_length=500)]
Tag = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class RobotsQuery(PageQuery, forbid_unknown_fields=True, rename="camel"):
    object_id: int | None = None
    edge_id: Annotated[str, msgspec.Meta(max_length=64)] | None = None


class SnapshotQuery(msgspec.Struct, forbid_unknown_fields=True):
    history: bool = False  # ?history=1: the newest reports too, newest first, up to `limit`
    limit: Annotated[int, msgspec.Meta(ge=1, le=500)] = 50


class TelemetryQuery(msgspec.Struct, forbid_unknown_fields=True):
    # ISO 8601 with offset; [since, until), until defaults to now. Checked in the handler: a bad or
    # inverted range is a 400 naming it.
    since: str | None = None
    until: str | None = None
    limit: Annotated[int, msgspec.Meta(ge=1)] | None = None


class MetadataIn(msgspec.Struct, rename="camel"):
    """The hub's own metadata of a robot; fields absent stay as they are. Unknown fields are not
    refused by the decoder on purpose: the handler answers robot-owned ones with 400 robot_owned."""

    display_name: Annotated[str, msgspec.Meta(max_length=200)] | UnsetType = UNSET
    tags: Annotated[list[Tag], msgspec.Meta(max_length=32)] | UnsetType = UNSET
    notes: Annotated[str, msgspec.Meta(max_length=4000)] | UnsetType = UNSET
    enabled: bool | UnsetType = UNSET


class LeaseIn(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    """`{}` takes (or renews) the lease; a MASTER's `{"force": true, "reason": …}` takes it from its
    holder."""

    force: bool = False
    reason: Reason | None = None


class CommandIn(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    command_type: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    payload: dict[str, Any] = {}
    lease_id: Annotated[str, msgspec.Meta(max_length=64)] | None = None  # not needed for estop, cancel
    reason: Reason | None = None


class SettingsIn(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    settings: dict[str, Any]  # shared.robots.Settings by wire name; only what changes
    lease_id: Annotated[str, msgspec.Meta(max_length=64)] | None = None
    reason: Reason | None = None


def _settings(call: Call) -> RobotSettings:
    return deps(call).extra.get(SETTINGS_KEY) or RobotSettings()


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _rule_error(exc: RobotRuleError) -> ApiError:
    """A refused rule in the error shape: 403 for a force only MASTER may use, 409 for a lease
    someone else holds or one lost, 400 for what the request itself gets wrong."""
    if isinstance(exc, ForceForbidden):
        return ApiError(403, "forbidden", str(exc))
    if isinstance(exc, (LeaseHeld, LeaseLost)):
        return ApiError(409, exc.code, str(exc), exc.details)
    return ApiError(400, exc.code, str(exc), exc.details)


async def _robot(call: Call, now: datetime) -> Any:
    """The robot of the path with its current lease; 404 when missing or outside the caller's
    objects, alike."""
    row = await repository.robot(deps(call).pool, call.path("id"), now)
    if row is None:
        raise not_found("robot")
    require_object(call.user, row["object_id"], "robot")
    return row


async def _locked(call: Call, conn: Any) -> Any:
    """The robot of the path, locked for a lease or command decision; 404 as `_robot`."""
    try:
        row = await repository.lock(conn, call.path("id"))
    except Gone:
        raise not_found("robot") from None
    require_object(call.user, row["object_id"], "robot")
    return row


def _commandable(robot: Any, command_type: str) -> None:
    """409 for a robot nothing should be sent to: disabled (stopping it still is), or its edge
    revoked (nothing reaches it)."""
    if not robot["enabled"] and command_type != "estop":
        raise ApiError(409, "robot_disabled", f"robot {robot['robot_id']} is disabled: enable it to command it")
    if robot["edge_revoked_at"] is not None:
        raise ApiError(409, "edge_revoked", f"edge {robot['edge_id']} is revoked: nothing can reach the robot")


async def _who(call: Call, conn: Any) -> Who:
    # Named as people know them: the display name, else the sign-in email.
    name = await conn.fetchval(SQL_DISPLAY_NAME, call.user.user_id) or call.user.email
    return Who(call.user.user_id, call.user.actor, name, f"user:{call.user.email}", call.request.remote,
               request_id.get())


def _wake(call: Call) -> None:
    publisher = deps(call).extra.get(PUBLISHER_KEY)
    if publisher is not None:
        publisher.wake()


def _json(body: Any, status: int) -> web.Response:
    return web.Response(body=msgspec.json.encode(body), status=status, content_type="application/json")


# ---- the registry -----------------------------------------------------------------------------

@router.get("/api/v1/robots", query=RobotsQuery, permission="robots.view", tags=("robots",))
async def list_robots(call: Call) -> dict[str, Any]:
    """Robots by id (optionally of one `objectId` or `edgeId`): display name, object, edge,
    enabled, connection, state, battery, last seen, lease holder."""
    q: RobotsQuery = call.query
    rows, total = await repository.list_robots(deps(call).pool, _now(), object_filter(call.user), q.object_id,
                                               q.edge_id, q.capped_limit, q.offset)
    return {"items": [robot_summary(r) for r in rows], "total": total, "limit": q.capped_limit, "offset": q.offset}


async def _detail(call: Call, row: Any) -> dict[str, Any]:
    pool, robot_id = deps(call).pool, row["robot_id"]
    return robot_detail(row, await repository.latest(pool, "robot_identity", robot_id),
                        await repository.latest(pool, "robot_capability", robot_id),
                        await repository.desired(pool, robot_id),
                        await repository.latest(pool, "robot_settings_reported", robot_id))


@router.get("/api/v1/robots/{id}", permission="robots.view", tags=("robots",))
async def get_robot(call: Call) -> dict[str, Any]:
    """One robot: metadata, connection, latest status, identity, capability, desired and
    reported settings (with the pending difference), and its lease."""
    return await _detail(call, await _robot(call, _now()))


@router.put("/api/v1/robots/{id}", body=MetadataIn, permission="robots.edit", tags=("robots",))
async def edit_robot(call: Call) -> dict[str, Any]:
    """Change a robot's display name, tags, notes or enabled (absent fields stay). Anything the
    robot reports is refused: 400 robot_owned. A disabled robot takes no command but estop."""
    body: MetadataIn = call.body
    sent = msgspec.json.decode(call.raw_body)
    try:
        check_metadata_keys(set(sent) if isinstance(sent, dict) else set())
    except RobotRuleError as exc:
        raise _rule_error(exc) from None
    values: dict[str, Any] = {}
    if body.display_name is not UNSET:
        values["display_name"] = body.display_name.strip()
    if body.tags is not UNSET:
        values["tags"] = list(dict.fromkeys(t.strip() for t in body.tags if t.strip()))
    if body.notes is not UNSET:
        values["notes"] = body.notes
    if body.enabled is not UNSET:
        values["enabled"] = body.enabled
    now = _now()
    async with deps(call).pool.acquire() as conn, conn.transaction():
        robot_id = (await _locked(call, conn))["robot_id"]
        if values:
            await repository.edit_metadata(conn, robot_id, values, now)
            await audit(conn, now, call.user.actor, "robot.edit", "robot", robot_id, call.request.remote, **values)
            await write_outbox(conn, [robot_update(await repository.robot(conn, robot_id, now), ["metadata"])])
    return await _detail(call, await _robot(call, _now()))


async def _snapshots(call: Call, what: str) -> dict[str, Any]:
    row = await _robot(call, _now())
    q: SnapshotQuery = call.query
    rows = await repository.snapshots(deps(call).pool, SNAPSHOT_TABLES[what], row["robot_id"],
                                      q.limit if q.history else 1)
    out: dict[str, Any] = {"robotId": row["robot_id"], "latest": snapshot_json(rows[0], what) if rows else None}
    if q.history:
        out["history"] = [snapshot_json(r, what) for r in rows]
    return out


@router.get("/api/v1/robots/{id}/identity", query=SnapshotQuery, permission="robots.view", tags=("robots",))
async def robot_identity(call: Call) -> dict[str, Any]:
    """What the robot says it is (manufacturer, model, serial, firmware), latest; `?history=1`
    adds the earlier reports, newest first."""
    return await _snapshots(call, "identity")


@router.get("/api/v1/robots/{id}/capability", query=SnapshotQuery, permission="robots.view", tags=("robots",))
async def robot_capability(call: Call) -> dict[str, Any]:
    """What the robot says it can do (commands, settings, telemetry, heartbeat), latest;
    `?history=1` adds the earlier reports, newest first."""
    return await _snapshots(call, "capability")


@router.get("/api/v1/robots/{id}/telemetry", query=TelemetryQuery, permission="robots.view", tags=("robots",))
async def robot_telemetry(call: Call) -> dict[str, Any]:
    """Telemetry samples with `since` <= at < `until` (ISO 8601 with offset; until defaults to
    now; at most 31 days), oldest first, at most robots.telemetry_max_rows (`truncated` says when
    more matched). A bad or inverted range is 400 bad_range."""
    now = _now()
    row = await _robot(call, now)
    q: TelemetryQuery = call.query
    try:
        since, until = telemetry_range(q.since, q.until, now, MAX_TELEMETRY_SPAN)
    except RobotRuleError as exc:
        raise _rule_error(exc) from None
    cap = _settings(call).telemetry_max_rows
    limit = min(q.limit or cap, cap)
    rows = await repository.telemetry(deps(call).pool, row["robot_id"], since, until, limit + 1)
    return {"robotId": row["robot_id"], "since": since.isoformat(), "until": until.isoformat(),
            "items": [telemetry_json(r) for r in rows[:limit]], "truncated": len(rows) > limit}


# ---- the lease --------------------------------------------------------------------------------

@router.get("/api/v1/robots/{id}/lease", permission="robots.view", tags=("robots",))
async def get_lease(call: Call) -> dict[str, Any]:
    """The robot's current lease (`lease` null when nobody holds it)."""
    row = await _robot(call, _now())
    return {"robotId": row["robot_id"], "lease": current_lease(row)}


@router.post("/api/v1/robots/{id}/lease", body=LeaseIn, permission="robots.command", status=201, tags=("robots",))
async def take_lease(call: Call) -> web.Response:
    """Take the robot's lease for robots.lease_ttl_s: 201 with leaseId, fencingToken (higher than
    any before it for this robot), expiresAt and holder. Held already by the caller: renewed, 200
    (same lease and token, later expiry). Held by someone else: 409 lease_held naming them and
    until when; a MASTER may take it with `force` and a `reason` (audited; the holder's lease
    ends)."""
    body: LeaseIn = call.body
    now = _now()
    ttl = timedelta(seconds=_settings(call).lease_ttl_s)
    async with deps(call).pool.acquire() as conn, conn.transaction():
        robot = await _locked(call, conn)
        if not robot["enabled"]:
            raise ApiError(409, "robot_disabled", f"robot {robot['robot_id']} is disabled: enable it to command it")
        current = await repository.open_lease(conn, robot["robot_id"])
        try:
            decision = decide_take(lease_view(current), call.user.user_id, now, ttl, force=body.force,
                                   may_force=allowed(call.user.role, "robots.force"), reason=body.reason)
        except RobotRuleError as exc:
            raise _rule_error(exc) from None
        lease, _ended, items = await repository.take_lease(conn, robot, current, decision, await _who(call, conn), now,
                                                           body.reason)
        await write_outbox(conn, items)
    return _json(lease_json(lease), 201 if decision.action == "new" else 200)


@router.delete("/api/v1/robots/{id}/lease/{lease_id}", permission="robots.command", status=204, tags=("robots",))
async def release_lease(call: Call) -> None:
    """Release the caller's lease (204; again, or once it has ended, changes nothing). Another's
    lease is 409 not_lease_holder; a lease this robot never had is 404."""
    now = _now()
    async with deps(call).pool.acquire() as conn, conn.transaction():
        robot = await _locked(call, conn)
        try:
            items = await repository.release_lease(conn, robot, call.path("lease_id"), await _who(call, conn), now)
        except Gone:
            raise not_found("lease") from None
        except NotHolder as exc:
            raise ApiError(409, "not_lease_holder", str(exc),
                           {"holder": {"id": exc.lease["holder_id"], "name": exc.lease["holder_name"]}}) from None
        await write_outbox(conn, items)


# ---- commands and settings --------------------------------------------------------------------

@router.post("/api/v1/robots/{id}/commands", body=CommandIn, permission="robots.command", status=202,
             tags=("robots",))
async def give_command(call: Call) -> dict[str, Any]:
    """Give the robot a command (goto, patrol, dock, pause, resume, estop, reset, cancel) with its
    `payload`: 202 with the command REQUESTED; follow it at .../commands/{commandId} or on the
    live stream (`robot.command.updated`). Needs the caller's current lease (`leaseId`), except
    estop and cancel: 409 lease_required or lease_lost (naming the holder). A command or payload
    the robot cannot take is 400 bad_command. Idempotency-Key is honoured."""
    body: CommandIn = call.body
    try:
        args = check_command(body.command_type, body.payload)
    except BadCommand as exc:
        raise _rule_error(exc) from None
    now = _now()
    async with deps(call).pool.acquire() as conn, conn.transaction():
        robot = await _locked(call, conn)
        _commandable(robot, body.command_type)
        lease = None
        if needs_lease(body.command_type):
            current = await repository.open_lease(conn, robot["robot_id"])
            try:
                lease = check_command_lease(lease_view(current), body.lease_id, call.user.user_id, now)
            except RobotRuleError as exc:
                raise _rule_error(exc) from None
        row, items = await repository.create_command(
            conn, robot, NewCommand("cmd", body.command_type, args, reason=body.reason), lease, await _who(call, conn),
            now, timedelta(seconds=_settings(call).command_ttl_s))
        await write_outbox(conn, items)
    _wake(call)
    return command_json(row)


class CommandsQuery(PageQuery, forbid_unknown_fields=True):
    pass


@router.get("/api/v1/robots/{id}/commands", query=CommandsQuery, permission="robots.view", tags=("robots",))
async def robot_commands(call: Call) -> dict[str, Any]:
    """The robot's commands and desired settings, newest first."""
    row = await _robot(call, _now())
    q: CommandsQuery = call.query
    rows, total = await repository.commands(deps(call).pool, row["robot_id"], q.capped_limit, q.offset)
    return {"items": [command_json(r) for r in rows], "total": total, "limit": q.capped_limit, "offset": q.offset}


@router.get("/api/v1/robots/{id}/commands/{command_id}", permission="robots.view", tags=("robots",))
async def robot_command(call: Call) -> dict[str, Any]:
    """One command: its status, the robot's last word on it (ackStatus, detail, progress), who
    gave it and why."""
    row = await _robot(call, _now())
    command = await repository.command(deps(call).pool, row["robot_id"], call.path("command_id"))
    if command is None:
        raise not_found("command")
    return command_json(command)


@router.post("/api/v1/robots/{id}/commands/{command_id}/cancel", permission="robots.command", status=202,
             tags=("robots",))
async def cancel_command(call: Call) -> dict[str, Any]:
    """Cancel a command (no lease needed): one not yet sent is CANCELLED at once and never sent
    (`cancelCommand` null); one in flight gets a `cancel` command, and the robot's CANCELLED ack
    settles it. An ended command is 409 already_final."""
    now = _now()
    async with deps(call).pool.acquire() as conn, conn.transaction():
        robot = await _locked(call, conn)
        try:
            target, cancel, items = await repository.cancel_command(
                conn, robot, call.path("command_id"), await _who(call, conn), now,
                timedelta(seconds=_settings(call).command_ttl_s))
        except Gone:
            raise not_found("command") from None
        except AlreadyFinal as exc:
            raise ApiError(409, "already_final", str(exc)) from None
        except EdgeRevoked as exc:
            raise ApiError(409, "edge_revoked", str(exc)) from None
        await write_outbox(conn, items)
    if cancel is not None:
        _wake(call)
    return {"command": command_json(target), "cancelCommand": command_json(cancel) if cancel is not None else None}


async def _settings_view(call: Call) -> dict[str, Any]:
    row = await _robot(call, _now())
    pool, robot_id = deps(call).pool, row["robot_id"]
    return {"robotId": robot_id, **settings_json(await repository.desired(pool, robot_id),
                                                 await repository.latest(pool, "robot_settings_reported", robot_id))}


@router.put("/api/v1/robots/{id}/settings/desired", body=SettingsIn, permission="robots.command", status=202,
            tags=("robots",))
async def set_desired(call: Call) -> dict[str, Any]:
    """Ask the robot to run with these settings (camelCase, only what changes; they replace the
    desired settings before): stored, and sent as a `settings.desired` command under the caller's
    lease (409 lease_required or lease_lost). 202 with the command and the settings, whose
    `pending` lists what the robot does not report running with yet."""
    body: SettingsIn = call.body
    try:
        wanted = check_desired(body.settings)
    except RobotRuleError as exc:
        raise _rule_error(exc) from None
    now = _now()
    async with deps(call).pool.acquire() as conn, conn.transaction():
        robot = await _locked(call, conn)
        _commandable(robot, "settings.desired")
        current = await repository.open_lease(conn, robot["robot_id"])
        try:
            lease = check_command_lease(lease_view(current), body.lease_id, call.user.user_id, now)
        except RobotRuleError as exc:
            raise _rule_error(exc) from None
        who = await _who(call, conn)
        row, items = await repository.create_command(
            conn, robot, NewCommand("settings.desired", "settings.desired", {}, wanted, body.reason), lease, who, now,
            timedelta(seconds=_settings(call).command_ttl_s))
        desired = await repository.set_desired(conn, robot["robot_id"], wanted, row["id"], who, now)
        reported = await repository.latest(conn, "robot_settings_reported", robot["robot_id"])
        await write_outbox(conn, items)
    _wake(call)
    return {"robotId": robot["robot_id"], "command": command_json(row), **settings_json(desired, reported)}


@router.get("/api/v1/robots/{id}/settings/desired", permission="robots.view", tags=("robots",))
async def get_desired(call: Call) -> dict[str, Any]:
    """The settings the hub wants (who asked, when, by which command), beside the reported ones
    and the `pending` difference."""
    return await _settings_view(call)


@router.get("/api/v1/robots/{id}/settings/reported", permission="robots.view", tags=("robots",))
async def get_reported(call: Call) -> dict[str, Any]:
    """The settings the robot last reported running with, beside the desired ones and `pending`:
    each desired setting the robot does not run with, until they converge."""
    return await _settings_view(call)

