"""An object's robot site plan (docs/architecture.md §5 "Robots"): which of its uploaded images the
console draws its robots on, and the area that image shows in metres. Read by whoever sees the
object's robots (robots.view, object-scoped: outside the caller's objects it is 404 as a missing
object); chosen and removed by who edits objects (objects.edit), audited, and sent on the live
stream as `robot.plan.updated`. Field names are camelCase, as the robots' routes."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any

import msgspec

from hub.api.app import deps
from hub.api.crud import audit
from hub.api.errors import ApiError
from hub.api.objects_api import visible_object
from hub.api.routing import Call, Router
from hub.db.outbox import write_outbox
from hub.robots import plan
from hub.robots.plan import Placement, PlanRefused, check_document, plan_json, plan_update

router = Router()

PATH = "/api/v1/objects/{id}/robot-plan"
# As migration 0022 checks them: a plan shows at most 10 km a side, its corner within 1000 km.
Size = Annotated[float, msgspec.Meta(gt=0, le=10_000)]
Origin = Annotated[float, msgspec.Meta(ge=-1_000_000, le=1_000_000)]


class PlanIn(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    """The object's image to draw its robots on (`documentId`: one of its documents, a PNG, JPEG or
    WebP), the area it shows in metres, and the site coordinates of its bottom-left corner."""

    document_id: Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]
    width_m: Size
    height_m: Size
    origin_x_m: Origin = 0.0
    origin_y_m: Origin = 0.0


def _answer(object_id: int, row: Any | None) -> dict[str, Any]:
    return {"objectId": object_id, "plan": plan_json(row)}


@router.get(PATH, permission="robots.view", tags=("robots",))
async def get_plan(call: Call) -> dict[str, Any]:
    """The object's robot site plan (`plan` null when it has none): its document (download it at
    `url`), the metres it shows and the site coordinates of its bottom-left corner."""
    object_id = call.path_int("id")
    await visible_object(call, object_id)
    return _answer(object_id, await plan.plan(deps(call).pool, object_id))


@router.put(PATH, body=PlanIn, permission="objects.edit", tags=("robots",))
async def set_plan(call: Call) -> dict[str, Any]:
    """Choose one of the object's images as its robot site plan (replacing any): 400 bad_document
    for a document that is not an image of this object."""
    object_id = call.path_int("id")
    body: PlanIn = call.body
    await visible_object(call, object_id)
    now = datetime.now(timezone.utc)
    async with deps(call).pool.acquire() as conn, conn.transaction():
        try:
            check_document(await plan.document(conn, body.document_id), object_id, body.document_id)
        except PlanRefused as exc:
            raise ApiError(400, "bad_document", str(exc), {"field": "documentId"}) from None
        placement = Placement(body.width_m, body.height_m, body.origin_x_m, body.origin_y_m)
        row = await plan.set_plan(conn, object_id, body.document_id, placement, call.user.actor, now)
        await audit(conn, call, "robot_plan.set", "object", object_id, {
            "document_id": body.document_id, "filename": row["filename"], "width_m": body.width_m,
            "height_m": body.height_m, "origin_x_m": body.origin_x_m, "origin_y_m": body.origin_y_m})
        await write_outbox(conn, [plan_update(object_id, row)])
    return _answer(object_id, row)


@router.delete(PATH, permission="objects.edit", status=204, tags=("robots",))
async def delete_plan(call: Call) -> None:
    """Stop drawing the object's robots on a plan (204; the document stays). Without a plan it
    changes nothing."""
    object_id = call.path_int("id")
    await visible_object(call, object_id)
    async with deps(call).pool.acquire() as conn, conn.transaction():
        document_id = await plan.delete_plan(conn, object_id)
        if document_id is not None:
            await audit(conn, call, "robot_plan.delete", "object", object_id, {"document_id": document_id})
            await write_outbox(conn, [plan_update(object_id, None)])
