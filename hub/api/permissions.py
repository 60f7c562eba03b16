"""The role matrix, in one place every route goes through (issue: operator REST API).

| permission            | OPERATOR | TECHNICIAN | FIELD_WORKER | ADMIN | MASTER |
|-----------------------|----------|------------|--------------|-------|--------|
| alarms.view           | all      | assigned   | —            | all   | all    |
| alarms.work           | yes      | —          | —            | —     | yes    |
| alarms.supervise      | —        | —          | —            | yes   | yes    |
| objects.edit          | —        | —          | —            | yes   | yes    |
| objects.view          | all      | assigned   | assigned, ro | all   | all    |
| secrets.reveal        | 10/h     | 20/h       | 20/h         | yes   | yes    |
| users.manage          | —        | —          | —            | yes   | yes    |
| panels.command        | —        | —          | —            | yes   | yes    |
| edges.manage          | —        | —          | —            | yes   | yes    |
| audit.view            | —        | —          | —            | —     | yes    |
| sms_archive.read      | —        | —          | —            | —     | yes    |
| robots.view           | all      | assigned   | —            | all   | all    |
| robots.command        | yes      | —          | —            | yes   | yes    |
| robots.edit           | yes      | —          | —            | yes   | yes    |
| robots.force          | —        | —          | —            | —     | yes    |
| system.maintenance    | —        | —          | —            | yes   | yes    |

alarms.supervise: take over or reassign an alarm another operator holds, tick any checklist.
An ADMIN holds no alarm work, so an ADMIN reassigns to someone who does (docs/architecture.md §5).

robots.view is alarms.view's scope: a robot belongs to the object its edge serves. robots.command
takes and releases a robot's lease, gives it commands and desired settings; robots.edit changes
its metadata (display name, tags, notes, enabled); robots.force takes a lease another holds, with
a reason (docs/architecture.md §5 "Robots").

SYSTEM is the hub itself (internal callers) and may do everything.
"""
from __future__ import annotations

from hub.api.errors import forbidden, not_found
from hub.api.principal import Principal, Role

_O, _T, _F, _A, _M = Role.OPERATOR, Role.TECHNICIAN, Role.FIELD_WORKER, Role.ADMIN, Role.MASTER

MATRIX: dict[str, frozenset[Role]] = {
    "alarms.view": frozenset({_O, _T, _A, _M}),
    "alarms.work": frozenset({_O, _M}),
    "alarms.supervise": frozenset({_A, _M}),
    "objects.view": frozenset({_O, _T, _F, _A, _M}),
    "objects.edit": frozenset({_A, _M}),
    "secrets.reveal": frozenset({_O, _T, _F, _A, _M}),
    "users.manage": frozenset({_A, _M}),
    "panels.command": frozenset({_A, _M}),
    "edges.manage": frozenset({_A, _M}),  # create (token), revoke
    "audit.view": frozenset({_M}),
    "sms_archive.read": frozenset({_M}),  # raw SMS text and full numbers: PII
    "robots.view": frozenset({_O, _T, _A, _M}),
    "robots.command": frozenset({_O, _A, _M}),
    "robots.edit": frozenset({_O, _A, _M}),
    "robots.force": frozenset({_M}),
    "system.maintenance": frozenset({_A, _M}),  # start and end maintenance (the API read-only)
    "self": frozenset(Role),  # any authenticated user, for their own session
}

# Roles that see only the objects assigned to them (in lists and by id).
ASSIGNED_ONLY = frozenset({Role.TECHNICIAN, Role.FIELD_WORKER})


def principal_for(user_id: int, email: str, role: str, assigned: list[int]) -> Principal:
    """The Principal a user stands for: roles that see only assigned objects carry them."""
    r = Role(role)
    return Principal(user_id, email, r, frozenset(assigned) if r in ASSIGNED_ONLY else None)

# Hourly secret reveals per role; absent means unlimited.
REVEALS_PER_HOUR: dict[Role, int] = {_O: 10, _T: 20, _F: 20}


def allowed(role: Role, permission: str) -> bool:
    """True when `role` holds `permission`."""
    if permission not in MATRIX:
        raise KeyError(f"unknown permission {permission!r}")
    return role is Role.SYSTEM or role in MATRIX[permission]


def require(principal: Principal, permission: str) -> None:
    """Raise 403 unless the caller's role holds `permission`."""
    if not allowed(principal.role, permission):
        raise forbidden(f"{principal.role.value} may not {permission.replace('.', ' ')}")


def object_filter(principal: Principal) -> list[int] | None:
    """The object ids a query must be limited to, or None for no limit."""
    if principal.role in ASSIGNED_ONLY:
        return sorted(principal.objects or ())
    return None


def require_object(principal: Principal, object_id: int | None, what: str = "object") -> None:
    """404 (not 403) for an object outside the caller's assignment: its existence is not theirs
    to learn."""
    allowed_ids = object_filter(principal)
    if allowed_ids is not None and object_id not in allowed_ids:
        raise not_found(what)
