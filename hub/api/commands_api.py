"""Panel commands from the hub (docs/architecture.md §5 "Panel commands"): give one, follow it,
list a panel's; and the user codes an admin stores for commands given without a typed one."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any, Literal

import msgspec

from hub.api.app import deps
from hub.api.common import PageQuery, record
from hub.api.errors import ApiError, invalid, not_found
from hub.api.permissions import require_object
from hub.api.routing import Call, Router
from hub.api.secrets_api import SECRET_BOX_KEY
from hub.auth.audit import audit
from hub.commands import codes
from hub.commands.domain import DEFAULT_EXPIRES_S, CommandError, CommandRequest, NoUserCode, check_request, \
    check_user_code, code_partitions, pick_stored_code
from hub.commands.publisher import CommandPublisher
from hub.commands.repository import EdgeRevoked, PanelGone, Requester, command_json, create_command, get_command, \
    list_commands, panel_facts
from hub.secret_box import SecretBox
from shared.logs import request_id

router = Router()

PUBLISHER_KEY = "command_publisher"
SQL_DISPLAY_NAME = "SELECT nullif(display_name, '') FROM users WHERE id = $1"

Numbers = Annotated[list[int], msgspec.Meta(max_length=256)]
StatusName = Literal["PENDING", "SENT", "ACK", "NACK", "TIMEOUT", "EXPIRED"]


class CommandIn(msgspec.Struct, forbid_unknown_fields=True):
    type: Literal["arm", "disarm", "clear_alarm", "outputs_on", "outputs_off", "bypass", "unbypass"]
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=500)]
    partitions: Numbers = []
    zones: Numbers = []
    outputs: Numbers = []
    mode: int | None = None
    force: bool = False
    # Typed for this command only; absent: the code stored for the panel or partition.
    user_code: str | None = None
    expires_in_s: int = DEFAULT_EXPIRES_S


class CommandQuery(PageQuery, forbid_unknown_fields=True):
    status: StatusName | None = None


class CodeIn(msgspec.Struct, forbid_unknown_fields=True):
    code: str


def _without_code(call: Call) -> bytes:
    """The request as Idempotency-Key remembers it: the typed code is not kept, even as a digest
    (a 4-8 digit code falls to an offline guess of an unsalted hash)."""
    return msgspec.json.encode(msgspec.structs.replace(call.body, user_code=None))


def _domain_error(exc: CommandError) -> ApiError:
    if isinstance(exc, PanelGone):
        return not_found("panel")
    if isinstance(exc, EdgeRevoked):
        return ApiError(409, "edge_revoked", str(exc))
    if isinstance(exc, NoUserCode):
        return ApiError(422, "user_code_required", str(exc), {"field": exc.field})
    return invalid(str(exc), {"field": exc.field} if exc.field else None)


async def _panel(call: Call) -> Any:
    try:
        panel = await panel_facts(deps(call).pool, call.path_int("id"))
    except CommandError as exc:
        raise _domain_error(exc) from None
    require_object(call.user, panel["object_id"], "panel")
    return panel


@router.post("/api/v1/panels/{id}/commands", body=CommandIn, permission="panels.command", status=202,
             fingerprint=_without_code, tags=("commands",))
async def give_command(call: Call) -> dict[str, Any]:
    """Give a panel a command (arm, disarm, clear alarm, outputs, bypass) through its edge: 202
    with the command PENDING; follow it at /api/v1/commands/{id} or on the live stream
    (`command.updated`). Without `user_code` the stored code is used. Idempotency-Key is honoured
    (the code is not part of what it remembers)."""
    body: CommandIn = call.body
    panel = await _panel(call)
    box: SecretBox = deps(call).extra[SECRET_BOX_KEY]
    try:
        req = check_request(CommandRequest(
            type=body.type, reason=body.reason, partitions=tuple(body.partitions), zones=tuple(body.zones),
            outputs=tuple(body.outputs), mode=body.mode, force=body.force, user_code=body.user_code,
            expires_in_s=body.expires_in_s))
        now = datetime.now(timezone.utc)
        async with deps(call).pool.acquire() as conn, conn.transaction():
            # Named as people know them: the display name, else the sign-in email.
            name = await conn.fetchval(SQL_DISPLAY_NAME, call.user.user_id) or call.user.email
            who = Requester(call.user.actor, name, request_id=request_id.get(), ip=call.request.remote)
            if req.user_code is not None:
                code, code_from = req.user_code, "TYPED"
            else:
                code = pick_stored_code(await codes.stored_codes(conn, box, panel["id"]), code_partitions(req))
                code_from = "STORED"
            row = await create_command(conn, panel, req, code, code_from, who, now)
    except CommandError as exc:
        raise _domain_error(exc) from None
    publisher: CommandPublisher | None = deps(call).extra.get(PUBLISHER_KEY)
    if publisher is not None:
        publisher.wake()
    return command_json(row)


@router.get("/api/v1/panels/{id}/commands", query=CommandQuery, permission="objects.view", tags=("commands",))
async def panel_commands(call: Call) -> dict[str, Any]:
    """A panel's commands, newest first, optionally of one status."""
    panel = await _panel(call)
    q: CommandQuery = call.query
    rows, total = await list_commands(deps(call).pool, panel["id"], [q.status] if q.status else None,
                                      q.capped_limit, q.offset)
    return {"items": [command_json(r) for r in rows], "total": total, "limit": q.capped_limit, "offset": q.offset}


@router.get("/api/v1/commands/{id}", permission="objects.view", tags=("commands",))
async def one_command(call: Call) -> dict[str, Any]:
    """One command: its status, who gave it and why, when it was sent and settled."""
    row = await get_command(deps(call).pool, call.path("id"))
    if row is None:
        raise not_found("command")
    require_object(call.user, row["object_id"], "command")
    return command_json(row)


def _partition(call: Call) -> int:
    partition = call.path_int("partition")
    if partition > 32:
        raise invalid("partition must be 0 (the whole panel) or 1..32", {"field": "partition"})
    return partition


@router.get("/api/v1/panels/{id}/user-codes", permission="panels.command", tags=("commands",))
async def stored_user_codes(call: Call) -> list[dict[str, Any]]:
    """Which partitions (0: the whole panel) have a stored user code, who set it and when; never
    the code."""
    panel = await _panel(call)
    return [record(r) for r in await codes.list_stored(deps(call).pool, panel["id"])]


# carries_secret: the body is a user code, never kept for replay (a retry stores the same code again).
@router.put("/api/v1/panels/{id}/user-codes/{partition}", body=CodeIn, permission="panels.command",
            carries_secret=True, tags=("commands",))
async def store_user_code(call: Call) -> dict[str, Any]:
    """Store the user code commands use for this panel (partition 0) or partition when none is
    typed: sealed at rest, write-only, sent only sealed to the panel's edge inside a command."""
    panel = await _panel(call)
    partition = _partition(call)
    code: str = call.body.code
    try:
        check_user_code(code, "code")
    except CommandError as exc:
        raise _domain_error(exc) from None
    now = datetime.now(timezone.utc)
    async with deps(call).pool.acquire() as conn, conn.transaction():
        await codes.store_code(conn, deps(call).extra[SECRET_BOX_KEY], panel["id"], partition, code, call.user.actor, now)
        await audit(conn, now, call.user.actor, "panel.user_code.store", "panel", panel["id"], call.request.remote,
                    partition=partition)
    return {"panel_id": panel["id"], "partition": partition, "updated_by": call.user.actor, "updated_at": now.isoformat()}


@router.delete("/api/v1/panels/{id}/user-codes/{partition}", permission="panels.command", status=204,
               tags=("commands",))
async def delete_user_code(call: Call) -> None:
    """Forget the stored code of this panel (partition 0) or partition."""
    panel = await _panel(call)
    partition = _partition(call)
    now = datetime.now(timezone.utc)
    async with deps(call).pool.acquire() as conn, conn.transaction():
        if not await codes.delete_code(conn, panel["id"], partition):
            raise not_found("stored user code")
        await audit(conn, now, call.user.actor, "panel.user_code.delete", "panel", panel["id"], call.request.remote,
                    partition=partition)
