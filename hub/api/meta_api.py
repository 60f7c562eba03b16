"""The API's own description: the OpenAPI document and a health probe."""
from __future__ import annotations

from typing import Any

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
