"""The OpenAPI 3.1 document, generated from the declared routes and their msgspec types, so the
document and the routes cannot drift apart."""
from __future__ import annotations

import re
from typing import Any

import msgspec

from hub.api.routing import Route, Router

_PARAM_RE = re.compile(r"\{([^}:]+)\}")

ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "request_id"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "request_id": {"type": ["string", "null"]},
                "details": {},
            },
        }
    },
}


def _query_parameters(query: type, components: dict[str, Any]) -> list[dict[str, Any]]:
    (schema,), comps = msgspec.json.schema_components([query], ref_template="#/components/schemas/{name}")
    components.update(comps)
    name = schema["$ref"].rsplit("/", 1)[-1]
    struct = components.pop(name)
    required = set(struct.get("required", []))
    return [
        {"name": prop, "in": "query", "required": prop in required, "schema": sub}
        for prop, sub in struct.get("properties", {}).items()
    ]


def _schema_ref(type_: type, components: dict[str, Any]) -> dict[str, Any]:
    (schema,), comps = msgspec.json.schema_components([type_], ref_template="#/components/schemas/{name}")
    components.update(comps)
    return schema


def _operation(route: Route, components: dict[str, Any]) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": f"{route.method.lower()}_{re.sub(r'[^a-z0-9]+', '_', route.path.lower()).strip('_')}",
        "summary": route.summary,
        "parameters": [
            {"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
            for p in _PARAM_RE.findall(route.path)
        ],
        "responses": {
            "default": {"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
        },
    }
    if route.tags:
        op["tags"] = list(route.tags)
    if not route.public:
        op["security"] = [{"bearer": []}]
    if route.method == "POST" and not route.public:
        op["parameters"].append({"name": "Idempotency-Key", "in": "header", "required": False,
                                 "schema": {"type": "string", "maxLength": 200}})
    if route.query is not None:
        op["parameters"] += _query_parameters(route.query, components)
    if route.body is not None:
        if route.consumes[0] == "application/json":
            schema = _schema_ref(route.body, components)
        else:
            schema = {"type": "string", "format": "binary"}
        op["requestBody"] = {"required": True, "content": {ct: {"schema": schema} for ct in route.consumes}}
    elif route.form is not None:
        op["requestBody"] = {"required": True, "content": {ct: {"schema": dict(route.form)} for ct in route.consumes}}
    ok: dict[str, Any] = {"description": "success"}
    if route.response is not None:
        ok["content"] = {route.produces: {"schema": _schema_ref(route.response, components)}}
    elif route.status != 204:
        ok["content"] = {route.produces: {"schema": {}}}
    op["responses"][str(route.status)] = ok
    return op


def build_openapi(routers: list[Router], title: str = "Vigil hub API", version: str = "1") -> dict[str, Any]:
    """The OpenAPI 3.1 document for every route of `routers`."""
    components: dict[str, Any] = {}
    paths: dict[str, dict[str, Any]] = {}
    for router in routers:
        for route in router.routes:
            paths.setdefault(route.path, {})[route.method.lower()] = _operation(route, components)
    components["Error"] = ERROR_SCHEMA
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        },
    }
