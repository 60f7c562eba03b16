"""Access tokens: short-lived RS256 JWTs naming the user, their role and their session family.

Verification accepts exactly one algorithm (RS256, by allow-list, so neither `none` nor an HMAC
token keyed with our public key passes), a known unretired `kid`, our issuer and audience, and
checks the times against the hub's clock (PyJWT would read the system clock, which tests fake).
"""
from __future__ import annotations

import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import jwt

from hub.auth.keys import SKEW_S, KeyRing
from shared.clock import Clock

VERIFIED_CACHE_SIZE = 4096

ALGORITHM = "RS256"
REQUIRED_CLAIMS = ["sub", "role", "sid", "iat", "nbf", "exp", "iss", "aud", "jti"]


class TokenRejected(Exception):
    """The token may not be used; `reason` is for logs, `expired` tells the client to refresh."""

    def __init__(self, reason: str, *, expired: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.expired = expired


@dataclass(frozen=True)
class AccessClaims:
    """What a verified access token says."""

    user_id: int
    role: str
    session_id: uuid.UUID


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expires_in: int


def _timestamp(claims: dict[str, object], name: str) -> float:
    value = claims[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TokenRejected(f"claim {name} is not a number")
    return float(value)


class AccessTokens:
    """Issues and verifies access tokens with the key ring."""

    def __init__(self, keyring: KeyRing, clock: Clock, *, issuer: str, audience: str, ttl_s: int) -> None:
        self._keyring = keyring
        self._clock = clock
        self._issuer = issuer
        # Tokens whose signature and static claims were already checked: a console sends the
        # same token with every call for 15 minutes, and RSA verification plus JWT parsing was a
        # fifth of the API's CPU. Expiry and key retirement are still checked on every use.
        self._verified: OrderedDict[str, tuple[str, dict[str, Any]]] = OrderedDict()
        self._audience = audience
        self.ttl_s = ttl_s

    async def issue(self, user_id: int, role: str, session_id: uuid.UUID) -> IssuedToken:
        """A new access token for `user_id` in session family `session_id`."""
        key = await self._keyring.signing_key()
        now = int(self._clock.now().timestamp())
        claims = {
            "sub": str(user_id), "role": role, "sid": str(session_id), "iat": now, "nbf": now,
            "exp": now + self.ttl_s, "iss": self._issuer, "aud": self._audience, "jti": uuid.uuid4().hex,
        }
        token = jwt.encode(claims, key.private_key, algorithm=ALGORITHM, headers={"kid": key.kid})
        return IssuedToken(token, self.ttl_s)

    async def verify(self, token: str) -> AccessClaims:
        """The claims of a valid token; raises TokenRejected."""
        cached = self._verified.get(token)
        if cached is not None:
            kid, claims = cached
            self._verified.move_to_end(token)
            if await self._keyring.verification_key(kid) is None:  # retired since: refuse as before
                del self._verified[token]
                raise TokenRejected("unknown or retired key id")
        else:
            kid, claims = await self._verify_signature(token)
            self._verified[token] = (kid, claims)
            if len(self._verified) > VERIFIED_CACHE_SIZE:
                self._verified.popitem(last=False)
        return self._check_claims(claims)

    async def _verify_signature(self, token: str) -> tuple[str, dict[str, Any]]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise TokenRejected("malformed token") from None
        if header.get("alg") != ALGORITHM:
            raise TokenRejected(f"algorithm {str(header.get('alg'))[:20]!r} is not accepted")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise TokenRejected("no key id")
        key = await self._keyring.verification_key(kid)
        if key is None:
            raise TokenRejected("unknown or retired key id")
        try:
            claims = jwt.decode(
                token, key.public_key, algorithms=[ALGORITHM], audience=self._audience, issuer=self._issuer,
                options={"require": REQUIRED_CLAIMS, "verify_exp": False, "verify_nbf": False, "verify_iat": False},
            )
        except jwt.InvalidTokenError as exc:
            raise TokenRejected(f"rejected by JWT checks: {type(exc).__name__}") from None
        return kid, claims

    def _check_claims(self, claims: dict[str, Any]) -> AccessClaims:
        now = self._clock.now().timestamp()
        exp, nbf, iat = (_timestamp(claims, n) for n in ("exp", "nbf", "iat"))
        if exp <= now - SKEW_S:
            raise TokenRejected("expired", expired=True)
        if nbf > now + SKEW_S or iat > now + SKEW_S:
            raise TokenRejected("not yet valid")
        sub, role, sid = claims["sub"], claims["role"], claims["sid"]
        if not (isinstance(sub, str) and sub.isascii() and sub.isdigit() and len(sub) <= 18) or not isinstance(role, str):
            raise TokenRejected("malformed subject or role")
        try:
            session_id = uuid.UUID(str(sid))
        except ValueError:
            raise TokenRejected("malformed session id") from None
        return AccessClaims(int(sub), role, session_id)
