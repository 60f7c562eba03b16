"""The auth and user-management routes."""
from __future__ import annotations

import ipaddress
from typing import Sequence

from aiohttp import web

from hub.api.routing import Call, Router
from hub.auth.keys import KeyRing
from hub.auth.login import LoginService
from hub.auth.schemas import (LoginIn, MeOut, MySettingsIn, ObjectsIn, PasswordChangeIn, RefreshIn, TokenPair,
                              UserCreateIn, UserOut, UserPatchIn)
from hub.auth.users import UserStore

ME_PATH = "/api/v1/auth/me"
# Not in PASSWORD_CHANGE_PATHS: a user who must change their password changes nothing else first.
MY_SETTINGS_PATH = "/api/v1/auth/me/settings"
PASSWORD_PATH = "/api/v1/auth/password"
# What a user who must change their password may still call (login, refresh and logout are public).
PASSWORD_CHANGE_PATHS = frozenset({ME_PATH, PASSWORD_PATH})
JWKS_MAX_AGE_S = 60
TAGS = ("auth",)


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _trusted(address: str, proxies: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in proxies)


def client_ip(request: web.Request, proxies: Sequence[Network] = ()) -> str:
    """The caller's address as the throttle and the audit log record it: the socket's peer, or,
    when that peer is a trusted proxy, the nearest X-Forwarded-For hop that is not one. Hops are
    read right to left because only those appended by our own proxies can be believed; whatever
    the client wrote to the left of them is its own claim."""
    address = request.remote or "unknown"
    if not _trusted(address, proxies):
        return address
    hops = [hop.strip() for value in request.headers.getall("X-Forwarded-For", []) for hop in value.split(",")]
    for hop in reversed(hops):
        try:
            address = str(ipaddress.ip_address(hop))
        except ValueError:
            break  # a garbled hop: stop at the last proxy we trust rather than guess
        if not _trusted(address, proxies):
            break
    return address


def auth_router(login: LoginService, users: UserStore, keyring: KeyRing,
                trusted_proxies: Sequence[str] = ()) -> Router:
    """The router for /api/v1/auth/*, /api/v1/users* and the JWKS document. X-Forwarded-For is
    honoured only from a peer in `trusted_proxies` (IPs or CIDRs)."""
    router = Router()
    proxies = [ipaddress.ip_network(p, strict=False) for p in trusted_proxies]

    @router.post("/api/v1/auth/login", public=True, in_maintenance=True, body=LoginIn, response=TokenPair, tags=TAGS)
    async def log_in(call: Call) -> TokenPair:
        """Exchange email and password for an access and a refresh token."""
        return await login.login(call.body.email, call.body.password, client_ip(call.request, proxies))

    @router.post("/api/v1/auth/refresh", public=True, in_maintenance=True, body=RefreshIn, response=TokenPair, tags=TAGS)
    async def refresh(call: Call) -> TokenPair:
        """Spend a refresh token for a new pair (a spent token ends its whole session)."""
        return await login.refresh(call.body.refresh_token, client_ip(call.request, proxies))

    @router.post("/api/v1/auth/logout", public=True, in_maintenance=True, body=RefreshIn, status=204, tags=TAGS)
    async def log_out(call: Call) -> None:
        """End the session the refresh token belongs to, with its access tokens."""
        await login.logout(call.body.refresh_token, client_ip(call.request, proxies))

    @router.get("/api/v1/auth/jwks", public=True, tags=TAGS)
    @router.get("/.well-known/jwks.json", public=True, tags=TAGS)
    async def jwks(call: Call) -> web.Response:
        """The public keys that verify access tokens (JWKS)."""
        return web.json_response(await keyring.jwks(), headers={"Cache-Control": f"public, max-age={JWKS_MAX_AGE_S}"})

    @router.get(ME_PATH, permission="self", response=MeOut, tags=TAGS)
    async def me(call: Call) -> MeOut:
        """The calling user, with the hub's default time zone and their role's permissions."""
        return await users.me(call.user)

    @router.patch(MY_SETTINGS_PATH, permission="self", in_maintenance=True, body=MySettingsIn, response=MeOut, tags=TAGS)
    async def set_my_settings(call: Call) -> MeOut:
        """Change your own settings: `time_zone` (an IANA name, or null for the hub's default)."""
        return await users.set_own(call.user, call.body, client_ip(call.request, proxies))

    @router.post(PASSWORD_PATH, permission="self", in_maintenance=True, body=PasswordChangeIn, response=TokenPair, carries_secret=True,
                 tags=TAGS)
    async def change_password(call: Call) -> TokenPair:
        """Change your own password; every session ends and a new token pair is returned."""
        return await login.change_password(call.user, call.body.current_password, call.body.new_password,
                                           client_ip(call.request, proxies))

    @router.get("/api/v1/users", permission="users.manage", response=list[UserOut], tags=("users",))
    async def list_users(call: Call) -> list[UserOut]:
        """Every user."""
        return await users.list()

    @router.post("/api/v1/users", permission="users.manage", body=UserCreateIn, response=UserOut, status=201,
                 tags=("users",))
    async def create_user(call: Call) -> UserOut:
        """Create a user with an initial password they must change at first login."""
        return await users.create(call.user, call.body, client_ip(call.request, proxies))

    @router.get("/api/v1/users/{id}", permission="users.manage", response=UserOut, tags=("users",))
    async def get_user(call: Call) -> UserOut:
        """One user."""
        return await users.get(call.path_int("id"))

    @router.patch("/api/v1/users/{id}", permission="users.manage", body=UserPatchIn, response=UserOut,
                  tags=("users",))
    async def patch_user(call: Call) -> UserOut:
        """Change a user's role, active flag, display name or time zone, or reset their password (at `version`)."""
        return await users.patch(call.user, call.path_int("id"), call.body, client_ip(call.request, proxies))

    @router.put("/api/v1/users/{id}/objects", permission="users.manage", body=ObjectsIn, response=UserOut,
                tags=("users",))
    async def set_objects(call: Call) -> UserOut:
        """Replace the objects a TECHNICIAN or FIELD_WORKER is assigned to (at `version`)."""
        return await users.set_objects(call.user, call.path_int("id"), call.body, client_ip(call.request, proxies))

    return router
