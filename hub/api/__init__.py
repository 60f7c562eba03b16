"""The operator REST API under /api/v1: routing with declared types, one error shape, request ids,
authentication and permission checks in one place, and the OpenAPI document built from it."""
