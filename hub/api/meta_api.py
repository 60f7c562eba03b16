"""The API's own description: the OpenAPI document, a health probe, and the fixed vocabularies a
console offers in its pickers (resolutions, call outcomes)."""
from __future__ import annotations

from typing import Any

import msgspec

from hub.alarms.outcomes import CALL_OUTCOMES, RESOLUTIONS
from hub.api.app import deps
from hub.api.routing import Call, Router

router = Router()
OPENAPI_KEY = "openapi"


@router.get("/api/v1/openapi.json", public=True, tags=("meta",))
async def openapi(call: Call) -> dict[str, Any]:
    """This API's OpenAPI 3.1 document, generated from its routes."""
    return deps(call).extra[OPENAPI_KEY]


@router.get("/api/v1/health", public=True, tags=("meta",))
async def health(call: Call) -> dict[str, Any]:
    """Liveness and database reachability."""
    await deps(call).pool.fetchval("SELECT 1")
    return {"status": "ok"}


class Term(msgspec.Struct):
    code: str
    label: str


@router.get("/api/v1/meta/resolutions", permission="self", response=list[Term], tags=("meta",))
async def resolutions(call: Call) -> list[Term]:
    """How an alarm can end, in the order a picker shows them: the codes a resolve takes."""
    return [Term(code, label) for code, label in RESOLUTIONS.items()]


@router.get("/api/v1/meta/call-outcomes", permission="self", response=list[Term], tags=("meta",))
async def call_outcomes(call: Call) -> list[Term]:
    """How a call to a contact can go: the outcomes a dispatch-log entry takes."""
    return [Term(code, label) for code, label in CALL_OUTCOMES.items()]
