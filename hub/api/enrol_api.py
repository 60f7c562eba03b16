"""Enrolment: an ADMIN creates an edge and gets its one-time token; the box redeems the token over
HTTPS; an ADMIN revokes an edge. The rules are in hub.edges.enrolment, the work in
hub.edges.service; this module maps them to HTTP."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Annotated

import asyncpg
import msgspec

from hub.api.app import deps
from hub.api.errors import ApiError, invalid
from hub.api.routing import Call, Router
from hub.edges.enrolment import EnrolmentError
from hub.edges.service import EnrolmentService
from shared.enrolment import PATH as ENROL_PATH, EnrolRequest, EnrolResponse

router = Router()

SQL_REVOKED_AT = "SELECT revoked_at FROM edges WHERE edge_id = $1"

ENROLMENT_KEY = "enrolment"


class EdgeCreate(msgspec.Struct, forbid_unknown_fields=True):
    edge_id: Annotated[str, msgspec.Meta(min_length=1, max_length=63)]
    object_id: int | None = None
    ttl_s: Annotated[int, msgspec.Meta(ge=300, le=30 * 86400)] = 86400
    # The synthetic probe: the box sends probe.tick, timed by the hub, never an operator's work.
    probe: bool = False


class EdgeCreated(msgspec.Struct):
    edge_id: str
    token: str
    expires_at: str
    hub_url: str
    fingerprint: str
    command: str


class EdgeRevoked(msgspec.Struct):
    edge_id: str
    revoked: bool
    revoked_at: str


def _service(call: Call) -> EnrolmentService:
    service = deps(call).extra.get(ENROLMENT_KEY)
    if service is None:
        raise ApiError(503, "enrolment_unavailable", "this hub has no HTTPS listener and CA configured for enrolment "
                                                     "(set https_port)")
    return service  # type: ignore[no-any-return]


def _refusal(exc: EnrolmentError) -> ApiError:
    return ApiError(exc.status, exc.code, exc.message)


@router.post("/api/v1/edges", body=EdgeCreate, response=EdgeCreated, permission="edges.manage", status=201,
             carries_secret=True, tags=("edges",))
async def create_edge(call: Call) -> EdgeCreated:
    """Create an edge (or re-key a revoked one) and issue its one-time enrolment token. The token
    is shown in this response only; the hub keeps a hash."""
    body: EdgeCreate = call.body
    service = _service(call)
    now = datetime.now(timezone.utc)
    async with deps(call).pool.acquire() as conn:
        try:
            new = await service.create(conn, body.edge_id, body.object_id, call.user.actor, now, call.request.remote,
                                       timedelta(seconds=body.ttl_s), probe=body.probe)
        except EnrolmentError as exc:
            raise _refusal(exc) from None
        except asyncpg.ForeignKeyViolationError:
            raise invalid(f"no object {body.object_id}", {"field": "object_id"}) from None
    return EdgeCreated(body.edge_id, new.token, new.expires_at.isoformat(), service.hub_url, service.fingerprint,
                       service.command(new.token))


@router.post("/api/v1/edges/{edge_id}/revoke", response=EdgeRevoked, permission="edges.manage", tags=("edges",))
async def revoke_edge(call: Call) -> EdgeRevoked:
    """Revoke an edge at once: its leaf connection is dropped, its segments are refused (kept in
    quarantine), its unused tokens are void. Revoking a revoked edge changes nothing."""
    service = _service(call)
    now = datetime.now(timezone.utc)
    async with deps(call).pool.acquire() as conn:
        try:
            revoked = await service.revoke(conn, call.path("edge_id"), call.user.actor, now, call.request.remote)
        except EnrolmentError as exc:
            raise _refusal(exc) from None
        at = await conn.fetchval(SQL_REVOKED_AT, call.path("edge_id"))
    return EdgeRevoked(call.path("edge_id"), revoked, at.isoformat())


@router.post(ENROL_PATH, body=EnrolRequest, response=EnrolResponse, public=True, tags=("edges",))
async def enrol(call: Call) -> EnrolResponse:
    """A box redeems its one-time token (the token is the credential; HTTPS only, because the
    answer carries the box's NATS password)."""
    if not call.request.secure:
        raise ApiError(403, "https_required", "enrolment is served over HTTPS only: use the hub's https:// URL")
    service = _service(call)
    async with deps(call).pool.acquire() as conn:
        try:
            return await service.redeem(conn, call.body, datetime.now(timezone.utc), call.request.remote)
        except EnrolmentError as exc:
            raise _refusal(exc) from None
