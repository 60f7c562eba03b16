"""The alarm lifecycle as pure functions over an immutable Bundle (docs/architecture.md §5).

    NEW ──claim──▶ CLAIMING (TTL 30 s) ──start──▶ IN_PROGRESS ──ack + note──▶ ACK ──resolve──▶
    RESOLVED ──close / 30 min idle──▶ CLOSED;  CLAIMING without progress for 30 s ──▶ NEW (reaper)

    A supervisor may take over (or reassign) a CLAIMING, IN_PROGRESS or ACK bundle, with a reason;
    a bundle still NEW past its priority's threshold is escalated once (no status change).

Every transition takes the version the caller saw and the current time, and returns the new
Bundle with `version + 1`, or raises: `VersionConflict` for a stale version (HTTP 409),
`IllegalTransition` for a move the state machine does not allow, `NoteRequired` for an ack of a
temperature alarm without a note, `UnknownResolution` for a resolve without a known resolution
code, `ReasonRequired` and `AlreadyHolder` for a take-over without a reason or to the holder. No
I/O here: the repository applies the result with a `WHERE version = $seen` guard, so two hubs
racing on one bundle still produce exactly one winner.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Mapping

from hub.alarms.outcomes import RESOLUTIONS

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


class UnknownResolution(LifecycleError):
    """A resolve must name one of hub.alarms.outcomes.RESOLUTIONS."""

    code = "invalid"


class ReasonRequired(LifecycleError):
    """A take-over must say why: the previous operator and the audit log read it."""

    code = "reason_required"


class AlreadyHolder(LifecycleError):
    """A take-over to the operator who already holds the bundle changes nothing."""

    code = "already_holder"


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
    priority: str = "NORMAL"
    service_mode: bool = False
    created_at: datetime | None = None  # when the hub opened it: escalation counts from here
    escalated_at: datetime | None = None
    resolution: str | None = None
    resolution_note: str | None = None


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


def resolve(bundle: Bundle, user: str, seen_version: int, now: datetime, resolution: str,
            note: str | None = None) -> Bundle:
    """The cause is dealt with, and how it ended is recorded (a RESOLUTIONS code, an optional
    note); new events now open a new bundle."""
    _check(bundle, seen_version, (Status.ACK,), "resolve")
    _held_by(bundle, user)
    if resolution not in RESOLUTIONS:
        raise UnknownResolution(f"unknown resolution {resolution!r}; one of {', '.join(RESOLUTIONS)}")
    return replace(bundle, status=Status.RESOLVED, version=bundle.version + 1, updated_at=now,
                   resolution=resolution, resolution_note=(note or "").strip() or None)


TAKE_OVER_FROM = (Status.CLAIMING, Status.IN_PROGRESS, Status.ACK)


def take_over(bundle: Bundle, to: str, seen_version: int, now: datetime, reason: str) -> Bundle:
    """A supervisor moves a bundle being worked to `to` (themselves, or the operator they name).
    The status stays; a CLAIMING bundle gets a fresh claim TTL, so the new holder has the same
    time to start it as anyone who claims."""
    _check(bundle, seen_version, TAKE_OVER_FROM, "take over")
    if not reason.strip():
        raise ReasonRequired(f"say why bundle {bundle.id} is taken over")
    if bundle.claimed_by == to:
        raise AlreadyHolder(f"bundle {bundle.id} is already held by {to}")
    expires = now + CLAIM_TTL if bundle.status is Status.CLAIMING else bundle.claim_expires_at
    return replace(bundle, version=bundle.version + 1, claimed_by=to, claim_expires_at=expires, updated_at=now)


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


def escalation_due(bundle: Bundle, now: datetime, after: Mapping[str, timedelta]) -> timedelta | None:
    """The escalator's test: a bundle still NEW `after[priority]` after the hub opened it, not
    escalated yet and not in service mode, is due; returns its threshold, or None. Priorities
    missing from `after` never escalate. A claim that lapsed back to NEW does not restart the
    count: the alarm has waited all along."""
    threshold = after.get(bundle.priority)
    if (threshold is None or bundle.status is not Status.NEW or bundle.escalated_at is not None
            or bundle.service_mode or bundle.created_at is None or now - bundle.created_at < threshold):
        return None
    return threshold


def auto_close(bundle: Bundle, now: datetime) -> Bundle | None:
    """The auto-closer's move: RESOLVED and idle for AUTO_CLOSE_AFTER → CLOSED."""
    if bundle.status is Status.RESOLVED and bundle.updated_at is not None and now - bundle.updated_at >= AUTO_CLOSE_AFTER:
        return replace(bundle, status=Status.CLOSED, version=bundle.version + 1, updated_at=now)
    return None
