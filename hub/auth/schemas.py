"""Request and response bodies of the auth and user-management routes."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

# Stored users never have the SYSTEM role (that is the hub itself).
RoleName = Literal["MASTER", "ADMIN", "OPERATOR", "TECHNICIAN", "FIELD_WORKER"]
# PostgreSQL text cannot hold NUL: refused here (422) rather than by the database (500).
NO_NUL = r"^[^\x00]*$"
Email = Annotated[str, Meta(min_length=1, max_length=254, pattern=NO_NUL)]
# Any length is accepted at login (the policy applies when a password is set); the cap only
# keeps absurd bodies from reaching the hasher.
AnyPassword = Annotated[str, Meta(min_length=1, max_length=1024)]
RefreshToken = Annotated[str, Meta(min_length=1, max_length=200)]
DisplayName = Annotated[str, Meta(max_length=200, pattern=NO_NUL)]
# An IANA zone name ("Europe/Warsaw"); checked against the zones this machine knows
# (hub.config.valid_time_zone). None: the hub's console.time_zone.
TimeZone = Annotated[str, Meta(min_length=1, max_length=64, pattern=NO_NUL)]
Version = Annotated[int, Meta(ge=1)]
ObjectId = Annotated[int, Meta(ge=1, le=2**63 - 1)]


class LoginIn(msgspec.Struct, forbid_unknown_fields=True):
    email: Email
    password: AnyPassword


class RefreshIn(msgspec.Struct, forbid_unknown_fields=True):
    refresh_token: RefreshToken


class PasswordChangeIn(msgspec.Struct, forbid_unknown_fields=True):
    current_password: AnyPassword
    new_password: AnyPassword


class TokenPair(msgspec.Struct):
    """What login, refresh and a password change answer."""

    access_token: str
    refresh_token: str
    expires_in: int
    refresh_expires_in: int
    password_change_required: bool
    token_type: str = "Bearer"


class UserOut(msgspec.Struct):
    id: int
    email: str
    display_name: str
    role: str
    active: bool
    must_change_password: bool
    locked_until: datetime | None
    objects: list[int]
    version: int
    created_at: datetime
    updated_at: datetime
    time_zone: str | None = None  # None: the hub's default (MeOut.hub_time_zone)


class MeOut(UserOut):
    """The calling user, with what their console needs to show times and offer actions."""

    hub_time_zone: str = "UTC"  # console.time_zone: the zone when time_zone is None
    permissions: list[str] = []  # hub.api.permissions names the caller's role holds


class MySettingsIn(msgspec.Struct, forbid_unknown_fields=True):
    """What a user sets for themselves (no version: their own preference, last write wins)."""

    time_zone: TimeZone | None | UnsetType = UNSET


class UserCreateIn(msgspec.Struct, forbid_unknown_fields=True):
    email: Email
    role: RoleName
    password: AnyPassword  # an initial password the user must change at first login
    display_name: DisplayName = ""


class UserPatchIn(msgspec.Struct, forbid_unknown_fields=True):
    version: Version
    role: RoleName | UnsetType = UNSET
    active: bool | UnsetType = UNSET
    password: AnyPassword | UnsetType = UNSET  # a reset: the user must change it at next login
    display_name: DisplayName | UnsetType = UNSET
    time_zone: TimeZone | None | UnsetType = UNSET


class ObjectsIn(msgspec.Struct, forbid_unknown_fields=True):
    version: Version
    object_ids: Annotated[list[ObjectId], Meta(max_length=10_000)]
