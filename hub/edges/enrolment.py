"""Enrolment rules, free of I/O: one-time tokens, their checks, and what an edge may become.

An ADMIN creates an edge (optionally tied to an object) and gets a token; the box presents the
token once with its public key and receives its credentials. The token is the only secret the
installer carries: 256 random bits, kept at the hub only as a SHA-256, usable once, until it
expires. Every refusal says which rule refused, so an installer on a ladder knows what to ask for.
"""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

DEFAULT_TTL = timedelta(hours=24)
MIN_TTL = timedelta(minutes=5)
MAX_TTL = timedelta(days=30)
TOKEN_PREFIX = "vet_"  # "vigil enrolment token": recognisable in a paste, never confused with a password


class EnrolmentError(Exception):
    """A domain refusal; `code` is stable for the API, the message is for the installer."""

    code = "enrolment_refused"
    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class TokenUnknown(EnrolmentError):
    code, status = "token_unknown", 401


class TokenUsed(EnrolmentError):
    code, status = "token_used", 409


class TokenExpired(EnrolmentError):
    code, status = "token_expired", 410


class TokenVoided(EnrolmentError):
    code, status = "token_voided", 410


class EdgeActive(EnrolmentError):
    code, status = "edge_active", 409


class EdgeUnknown(EnrolmentError):
    code, status = "edge_unknown", 404


@dataclass(frozen=True)
class NewToken:
    """A token as shown once to the ADMIN, and what the hub stores of it."""

    token: str
    token_hash: bytes
    expires_at: datetime


@dataclass(frozen=True)
class TokenRecord:
    """A stored token, as the checks need it."""

    edge_id: str
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None
    voided_at: datetime | None


def token_hash(token: str) -> bytes:
    """What the hub stores and looks a token up by."""
    return hashlib.sha256(token.strip().encode()).digest()


def issue_token(now: datetime, ttl: timedelta = DEFAULT_TTL) -> NewToken:
    """A fresh token valid for `ttl` (5 min .. 30 days)."""
    if not MIN_TTL <= ttl <= MAX_TTL:
        raise EnrolmentError(f"a token must be valid between {MIN_TTL} and {MAX_TTL.days} days, not {ttl}")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    return NewToken(token, token_hash(token), now + ttl)


def check_token(record: TokenRecord | None, now: datetime) -> str:
    """The edge id the token enrols, or the refusal that says why not (used, voided, expired)."""
    if record is None:
        raise TokenUnknown("this enrolment token is not known to the hub: check it was copied whole, "
                           "or ask the hub admin for a new one")
    if record.used_at is not None:
        raise TokenUsed(f"this enrolment token was already used at {record.used_at:%Y-%m-%d %H:%M} UTC: "
                        "a token enrols once; ask the hub admin for a new one")
    if record.voided_at is not None:
        raise TokenVoided(f"this enrolment token was replaced or the edge revoked at {record.voided_at:%Y-%m-%d %H:%M} "
                          "UTC; ask the hub admin for the current token")
    if now >= record.expires_at:
        raise TokenExpired(f"this enrolment token expired at {record.expires_at:%Y-%m-%d %H:%M} UTC; "
                           "ask the hub admin for a new one")
    return record.edge_id


def check_may_issue(enrolled: bool, revoked: bool, edge_id: str) -> None:
    """A new token is for a new edge, one not enrolled yet, or a revoked one being re-keyed; an
    active edge must be revoked first, so a token can never take over a working box's identity."""
    if enrolled and not revoked:
        raise EdgeActive(f"edge {edge_id!r} is enrolled and active: revoke it first to enrol a new box under this id")
