"""Who is calling: the authenticated user as every permission check sees it."""
from __future__ import annotations

import uuid

import enum
from dataclasses import dataclass, field
from typing import Protocol

from aiohttp import web


class Role(str, enum.Enum):
    SYSTEM = "SYSTEM"
    MASTER = "MASTER"
    ADMIN = "ADMIN"
    OPERATOR = "OPERATOR"
    TECHNICIAN = "TECHNICIAN"
    FIELD_WORKER = "FIELD_WORKER"


@dataclass(frozen=True)
class Principal:
    """An authenticated caller. `objects` is the set of object ids the caller is assigned to, for
    the roles that only see assigned objects; None means every object."""

    user_id: int
    email: str
    role: Role
    objects: frozenset[int] | None = None
    # The sign-in session the caller acts in (None for internal callers). Not part of equality:
    # two principals are the same caller with the same rights whatever session they came by.
    session_id: uuid.UUID | None = field(default=None, compare=False)

    @property
    def actor(self) -> str:
        """How the audit log and the lifecycle name this caller."""
        return f"user:{self.user_id}"


class Authenticator(Protocol):
    """Turns a request's credentials into a Principal, or raises ApiError(401)."""

    async def authenticate(self, request: web.Request) -> Principal: ...
