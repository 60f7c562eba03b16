"""Routes declared with their types, so one declaration drives decoding, validation, permission
checks and the OpenAPI document (which therefore cannot drift from the routes).

A handler takes a `Call` and returns a msgspec Struct, a dict/list, or an aiohttp response:

    @router.post("/api/v1/alarms/{id}/claim", body=Transition, response=AlarmOut, permission="alarms.work")
    async def claim(call: Call) -> AlarmOut: ...
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Mapping

import msgspec
from aiohttp import web

from hub.api.errors import ApiError, invalid
from hub.api.principal import Principal

MAX_BODY_BYTES = 1024 * 1024
_encoder = msgspec.json.Encoder()


@dataclass
class Call:
    """One API call: the request, the caller, the decoded body and query, the path parameters."""

    request: web.Request
    principal: Principal | None
    body: Any = None
    query: Any = None
    raw_body: bytes = b""

    @property
    def user(self) -> Principal:
        """The caller (routes that are not public always have one)."""
        assert self.principal is not None
        return self.principal

    def path_int(self, name: str) -> int:
        """A numeric path parameter; 404 when it is not a number (such a resource cannot exist)."""
        raw = self.request.match_info[name]
        if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
            raise ApiError(404, "not_found", f"no resource with {name} {raw!r}")
        return int(raw)

    def path(self, name: str) -> str:
        return self.request.match_info[name]


Handler = Callable[[Call], Awaitable[Any]]


@dataclass(frozen=True)
class Route:
    """A declared route: what it takes, what it returns, who may call it."""

    method: str
    path: str
    handler: Handler
    summary: str
    permission: str | None
    public: bool
    body: type | None
    query: type | None
    response: type | None
    status: int
    idempotent_post: bool
    # The response carries a credential shown once (an enrolment token), or the request a secret (a
    # panel's integration key): neither is kept for replay, not even as a digest of the body.
    carries_secret: bool = False
    produces: str = "application/json"
    consumes: tuple[str, ...] = ("application/json",)
    tags: tuple[str, ...] = ()
    # A form upload (the OpenAPI schema of its fields): the handler reads the body itself as a
    # stream, under its own size cap, and keeps Idempotency-Key itself once it knows what it read
    # (hub.api.app.idempotently).
    form: Mapping[str, Any] | None = None
    # What identifies the request for Idempotency-Key, when not its whole body: a body holding a
    # secret that may be replayed (a panel command's user code) is fingerprinted without it.
    fingerprint: Callable[["Call"], bytes] | None = None
    # Taken while the centre is in maintenance (the API is otherwise read-only then): signing in
    # and out, one's own settings, and ending maintenance itself.
    in_maintenance: bool = False


@dataclass
class Router:
    routes: list[Route] = field(default_factory=list)

    def add(self, method: str, path: str, *, summary: str = "", permission: str | None = None, public: bool = False,
            body: type | None = None, query: type | None = None, response: type | None = None, status: int = 200,
            produces: str = "application/json", consumes: tuple[str, ...] = ("application/json",),
            tags: tuple[str, ...] = (), carries_secret: bool = False,
            form: Mapping[str, Any] | None = None,
            fingerprint: Callable[[Call], bytes] | None = None,
            in_maintenance: bool = False) -> Callable[[Handler], Handler]:
        if not public and permission is None:
            raise ValueError(f"{method} {path}: a non-public route needs a permission")

        def register(handler: Handler) -> Handler:
            self.routes.append(Route(method, path, handler, summary or (handler.__doc__ or "").strip().split("\n")[0],
                                     permission, public, body, query, response, status,
                                     idempotent_post=(method == "POST" and not public and not carries_secret
                                                      and form is None),
                                     carries_secret=carries_secret, produces=produces, consumes=consumes, tags=tags,
                                     form=form, fingerprint=fingerprint, in_maintenance=in_maintenance))
            return handler

        return register

    def get(self, path: str, **kw: Any) -> Callable[[Handler], Handler]:
        return self.add("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> Callable[[Handler], Handler]:
        return self.add("POST", path, **kw)

    def put(self, path: str, **kw: Any) -> Callable[[Handler], Handler]:
        return self.add("PUT", path, **kw)

    def patch(self, path: str, **kw: Any) -> Callable[[Handler], Handler]:
        return self.add("PATCH", path, **kw)

    def delete(self, path: str, **kw: Any) -> Callable[[Handler], Handler]:
        return self.add("DELETE", path, **kw)


def _field_path(message: str) -> str | None:
    match = re.search(r"at `\$([^`]*)`", message)
    missing = re.search(r"required field `([^`]+)`", message)
    path = match.group(1).lstrip(".") if match else ""
    if missing:
        return ".".join(p for p in (path, missing.group(1)) if p)
    return path or None


def decode_json(raw: bytes, type_: type) -> Any:
    """Decode and validate a JSON body; 422 with the offending field's path on failure."""
    try:
        return msgspec.json.decode(raw, type=type_)
    except msgspec.ValidationError as exc:
        raise invalid("the request body is invalid", {"field": _field_path(str(exc)), "reason": str(exc)}) from None
    except msgspec.DecodeError as exc:
        raise ApiError(400, "bad_json", "the request body is not valid JSON", {"reason": str(exc)}) from None


def decode_query(request: web.Request, type_: type) -> Any:
    """Decode query parameters into a Struct (strings converted); 422 naming the parameter."""
    data: dict[str, Any] = {}
    info = msgspec.inspect.type_info(type_)
    list_fields = {f.name for f in info.fields if isinstance(f.type, msgspec.inspect.ListType)}  # type: ignore[attr-defined]
    for key in request.query.keys():
        data[key] = request.query.getall(key) if key in list_fields else request.query[key]
    try:
        return msgspec.convert(data, type_, strict=False)
    except msgspec.ValidationError as exc:
        raise invalid("a query parameter is invalid", {"field": _field_path(str(exc)), "reason": str(exc)}) from None


def to_response(result: Any, route: Route) -> web.StreamResponse:
    """Encode a handler's result (Struct, dict, list, or a ready response)."""
    if isinstance(result, web.StreamResponse):
        return result
    if result is None and route.status == 204:
        return web.Response(status=204)
    return web.Response(body=_encoder.encode(result), status=route.status, content_type="application/json")
