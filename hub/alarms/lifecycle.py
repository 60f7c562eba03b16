"""The alarm lifecycle as pure functions over an immutable Bundle (docs/architecture.md §5).

    NEW ──claim──▶ CLAIMING (TTL 30 s) ──start──▶ IN_PROGRESS ──ack + note──▶ ACK ──resolve──▶
    RESOLVED ──close / 30 min idle──▶ CLOSED;  CLAIMING without progress for 30 s ──▶ NEW (reaper)

Every transition takes the version the caller saw and the current time, and returns the new
Bundle with `version + 1`, or raises: `VersionConflict` for a stale version (HTTP 409),
`IllegalTransition` for a move the state machine does not allow, `NoteRequired` for an ack of a
temperature alarm without a note. No I/O here: the repository applies the result with a
`WHERE version = $seen` guard, so two hubs racing on one bundle still produce exactly one winner.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

CLAIM_TTL = timedelta(seconds=30)
AUTO_CLOSE_AFTER = timedelta(minutes=30)


class Status(str, enum.Enum):
    NEW = "NEW"
    CLAIMING = "CLAIMING"
    IN_PROGRESS = "IN_PROGRESS"
    ACK = "ACK"
    RESOLVED = "RESOLVED"
    CLOSED = "CLOSED"

    @property
    def is_open(self) -> bool:
        """Open bundles collect new events; RESOLVED and CLOSED ones do not."""
        return self not in (Status.RESOLVED, Status.CLOSED)


class LifecycleError(Exception):
    """Base of the refusals below; `code` is the API's error code."""

    code = "lifecycle_error"


class VersionConflict(LifecycleError):
    """The bundle changed since the caller read it."""

    code = "version_conflict"


class IllegalTransition(LifecycleError):
    """The requested move is not allowed from the bundle's status."""

    code = "illegal_transition"


class NoteRequired(LifecycleError):
    """This alarm type must be acknowledged with a note."""

    code = "note_required"


class NotClaimant(LifecycleError):
    """Only the operator holding the claim may continue it."""

    code = "not_claimant"


@dataclass(frozen=True)
class Bundle:
    """An alarm bundle as the lifecycle sees it."""

    id: int
    status: Status
    version: int
    requires_note: bool = False
    claimed_by: str | None = None
    claim_expires_at: datetime | None = None
    ack_note: str | None = None
    updated_at: datetime | None = None


def _check(bundle: Bundle, seen_version: int, allowed: tuple[Status, ...], action: str) -> None:
    if bundle.version != seen_version:
        raise VersionConflict(f"bundle {bundle.id} is at version {bundle.version}, not {seen_version}")
    if bundle.status not in allowed:
        raise IllegalTransition(f"cannot {action} a {bundle.status.value} bundle")


def _held_by(bundle: Bundle, user: str) -> None:
    if bundle.claimed_by != user:
        raise NotClaimant(f"bundle {bundle.id} is claimed by {bundle.claimed_by}")


def claim(bundle: Bundle, user: str, seen_version: int, now: datetime) -> Bundle:
    """An operator takes a NEW bundle; the claim lapses after CLAIM_TTL without progress."""
    _check(bundle, seen_version, (Status.NEW,), "claim")
    return replace(bundle, status=Status.CLAIMING, version=bundle.version + 1, claimed_by=user,
                   claim_expires_at=now + CLAIM_TTL, updated_at=now)


def start(bundle: Bundle, user: str, seen_version: int, now: datetime) -> Bundle:
    """The claimant starts working the alarm; the claim no longer lapses."""
    _check(bundle, seen_version, (Status.CLAIMING,), "start")
    _held_by(bundle, user)
    if bundle.claim_expires_at is not None and now >= bundle.claim_expires_at:
        raise IllegalTransition(f"the claim on bundle {bundle.id} expired")
    return replace(bundle, status=Status.IN_PROGRESS, version=bundle.version + 1, claim_expires_at=None, updated_at=now)


def ack(bundle: Bundle, user: str, seen_version: int, now: datetime, note: str | None) -> Bundle:
    """Acknowledge with a note (mandatory when the bundle requires one)."""
    _check(bundle, seen_version, (Status.IN_PROGRESS,), "acknowledge")
    _held_by(bundle, user)
    note = (note or "").strip() or None
    if bundle.requires_note and note is None:
        raise NoteRequired(f"bundle {bundle.id} must be acknowledged with a note")
    return replace(bundle, status=Status.ACK, version=bundle.version + 1, ack_note=note, updated_at=now)


def resolve(bundle: Bundle, user: str, seen_version: int, now: datetime) -> Bundle:
    """The cause is dealt with; new events now open a new bundle."""
    _check(bundle, seen_version, (Status.ACK,), "resolve")
    _held_by(bundle, user)
    return replace(bundle, status=Status.RESOLVED, version=bundle.version + 1, updated_at=now)


def close(bundle: Bundle, user: str, seen_version: int, now: datetime) -> Bundle:
    """Close a RESOLVED bundle by hand (the auto-closer does it after AUTO_CLOSE_AFTER)."""
    _check(bundle, seen_version, (Status.RESOLVED,), "close")
    return replace(bundle, status=Status.CLOSED, version=bundle.version + 1, updated_at=now)


def reap(bundle: Bundle, now: datetime) -> Bundle | None:
    """The reaper's move: a CLAIMING bundle whose claim lapsed goes back to NEW."""
    if bundle.status is Status.CLAIMING and bundle.claim_expires_at is not None and now >= bundle.claim_expires_at:
        return replace(bundle, status=Status.NEW, version=bundle.version + 1, claimed_by=None,
                       claim_expires_at=None, updated_at=now)
    return None


def auto_close(bundle: Bundle, now: datetime) -> Bundle | None:
    """The auto-closer's move: RESOLVED and idle for AUTO_CLOSE_AFTER → CLOSED."""
    if bundle.status is Status.RESOLVED and bundle.updated_at is not None and now - bundle.updated_at >= AUTO_CLOSE_AFTER:
        return replace(bundle, status=Status.CLOSED, version=bundle.version + 1, updated_at=now)
    return None
