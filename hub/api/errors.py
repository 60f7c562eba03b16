"""The one error shape of every API answer: {"error": {"code", "message", "request_id", "details"}}."""
from __future__ import annotations

from typing import Any

from aiohttp import web

from shared.error_shape import error_response as shared_error_response
from shared.logs import request_id


class ApiError(Exception):
    """An answer other than success; raised anywhere below a handler, rendered by the middleware."""

    def __init__(self, status: int, code: str, message: str, details: Any = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers or {}


def error_response(status: int, code: str, message: str, details: Any = None,
                   headers: dict[str, str] | None = None) -> web.Response:
    """Render the error shape with the current request id."""
    return shared_error_response(status, code, message, request_id.get(), details, headers)


def not_found(what: str) -> ApiError:
    return ApiError(404, "not_found", f"{what} not found")


def conflict(message: str, details: Any = None) -> ApiError:
    return ApiError(409, "conflict", message, details)


def forbidden(message: str = "your role may not do this") -> ApiError:
    return ApiError(403, "forbidden", message)


def unauthorized(message: str = "authentication required") -> ApiError:
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": 'Bearer realm="vigil"'})


def invalid(message: str, details: Any = None) -> ApiError:
    return ApiError(422, "invalid", message, details)
