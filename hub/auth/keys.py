"""The RS256 key ring that signs access tokens, shared by every hub process through PostgreSQL.

One key is active (signs); `rotate()` supersedes it with a new one. A superseded key keeps
verifying until `retire_after`, which is late enough that every token it can have signed has
expired: a process may go on signing with a key for up to `reload_s` after another process
superseded it (its cached ring is that old at most), and a token lives `token_ttl_s`, plus the
clock skew every check allows. After that the key is refused everywhere (each process checks
`retire_after` against its own clock) and `retire()` deletes it.

Private keys are stored encrypted by the SecretBox, bound to their kid. A kid is the RFC 7638
thumbprint of the public key.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from hub.auth.audit import SYSTEM_ACTOR, audit
from hub.secret_box import SecretBox, SecretBoxError
from shared.clock import Clock
from shared.signing import b64url

log = logging.getLogger("vigil.hub.auth.keys")

RSA_BITS = 2048
SKEW_S = 30  # clock skew tolerated between hub processes and clients, in every time check
KEYS_LOCK_KEY = 0x56494741  # "VIGA": serialises key creation and rotation across hub processes

SQL_LOCK = "SELECT pg_advisory_xact_lock($1)"
SQL_LOAD = """
SELECT kid, private_key_enc, retire_after FROM auth_signing_keys
WHERE retire_after IS NULL OR retire_after > $1
ORDER BY superseded_at DESC NULLS FIRST, created_at DESC
"""
SQL_ACTIVE = "SELECT kid, created_at FROM auth_signing_keys WHERE superseded_at IS NULL"
SQL_SUPERSEDE = "UPDATE auth_signing_keys SET superseded_at = $2, retire_after = $3 WHERE kid = $1"
SQL_INSERT = "INSERT INTO auth_signing_keys (kid, private_key_enc, created_at) VALUES ($1, $2, $3)"
SQL_RETIRE = "DELETE FROM auth_signing_keys WHERE retire_after <= $1 RETURNING kid"


class KeyRingError(Exception):
    """The ring cannot be loaded (e.g. the secret file is not the one that sealed the keys)."""


def _uint_b64(value: int) -> str:
    return b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


def _public_numbers_jwk(public_key: rsa.RSAPublicKey) -> dict[str, str]:
    numbers = public_key.public_numbers()
    return {"e": _uint_b64(numbers.e), "kty": "RSA", "n": _uint_b64(numbers.n)}


def thumbprint_kid(public_key: rsa.RSAPublicKey) -> str:
    """The RFC 7638 JWK thumbprint (SHA-256, base64url) of an RSA public key."""
    canonical = json.dumps(_public_numbers_jwk(public_key), separators=(",", ":"), sort_keys=True)
    return b64url(hashlib.sha256(canonical.encode()).digest())


def signing_key_aad(kid: str) -> bytes:
    return b"vigil/auth_signing_keys/" + kid.encode()


@dataclass(frozen=True)
class SigningKey:
    """One key of the ring. `retire_after` is None while it is the active key."""

    kid: str
    private_key: rsa.RSAPrivateKey
    retire_after: datetime | None

    @property
    def public_key(self) -> rsa.RSAPublicKey:
        return self.private_key.public_key()

    def verifies_at(self, now: datetime) -> bool:
        """True while tokens signed by this key may still be accepted."""
        return self.retire_after is None or now < self.retire_after

    def public_jwk(self) -> dict[str, str]:
        """The public key as a JWK for the JWKS document."""
        return {**_public_numbers_jwk(self.public_key), "kid": self.kid, "use": "sig", "alg": "RS256"}


class KeyRing:
    """The signing keys, cached per process and reloaded from PostgreSQL when stale or when a
    token names a kid this process has not seen (another process rotated)."""

    def __init__(self, pool: asyncpg.Pool, box: SecretBox, clock: Clock, *, token_ttl_s: int, rotation_days: int,
                 reload_s: float = 60.0, miss_reload_s: float = 5.0) -> None:
        self._pool = pool
        self._box = box
        self._clock = clock
        self._token_ttl_s = token_ttl_s
        self._rotation = timedelta(days=rotation_days)
        self._reload_s = reload_s
        self._miss_reload_s = miss_reload_s  # bounds the reloads a flood of made-up kids can cause
        self._keys: dict[str, SigningKey] = {}
        self._active: SigningKey | None = None
        self._loaded_at = float("-inf")
        self._miss_reload_at = float("-inf")
        self._reload_lock = asyncio.Lock()

    @property
    def grace(self) -> timedelta:
        """How long a superseded key keeps verifying."""
        return timedelta(seconds=self._token_ttl_s + self._reload_s + SKEW_S)

    async def start(self) -> None:
        """Create the first key if the ring is empty, then load it. Raises KeyRingError."""
        async with self._pool.acquire() as conn:
            async with conn.transaction():
                await conn.execute(SQL_LOCK, KEYS_LOCK_KEY)
                if await conn.fetchrow(SQL_ACTIVE) is None:
                    kid = await self._insert_new(conn)
                    log.info("created the first access-token signing key %s", kid)
        await self.reload()

    async def reload(self) -> None:
        """Load every unretired key from the database."""
        async with self._reload_lock:
            rows = await self._pool.fetch(SQL_LOAD, self._clock.now())
            keys: dict[str, SigningKey] = {}
            for row in rows:
                keys[row["kid"]] = self._key_from_row(row)
            active = [k for k in keys.values() if k.retire_after is None]
            if not active:
                raise KeyRingError("no active access-token signing key in auth_signing_keys")
            self._keys, self._active = keys, active[0]
            self._loaded_at = self._clock.monotonic()

    async def signing_key(self) -> SigningKey:
        """The key to sign with now."""
        if self._active is None or self._clock.monotonic() - self._loaded_at >= self._reload_s:
            await self.reload()
        assert self._active is not None
        return self._active

    async def verification_key(self, kid: str) -> SigningKey | None:
        """The key `kid` names, or None when it is unknown or retired."""
        if self._clock.monotonic() - self._loaded_at >= self._reload_s:
            await self.reload()
        key = self._keys.get(kid)
        if key is None and self._clock.monotonic() - self._miss_reload_at >= self._miss_reload_s:
            self._miss_reload_at = self._clock.monotonic()
            await self.reload()
            key = self._keys.get(kid)
        if key is None or not key.verifies_at(self._clock.now()):
            return None
        return key

    async def jwks(self) -> dict[str, list[dict[str, str]]]:
        """The public JWKS: every key that still verifies."""
        if self._clock.monotonic() - self._loaded_at >= self._reload_s:
            await self.reload()
        now = self._clock.now()
        return {"keys": [k.public_jwk() for k in self._keys.values() if k.verifies_at(now)]}

    async def rotate(self, *, only_if_due: bool = False) -> str | None:
        """Make a new key the active one; the previous one verifies until its grace ends.
        With `only_if_due`, rotate only when the active key is older than the rotation period
        (so several processes running housekeeping rotate once). Returns the new kid."""
        now = self._clock.now()
        async with self._pool.acquire() as conn:
            async with conn.transaction():
                await conn.execute(SQL_LOCK, KEYS_LOCK_KEY)
                current = await conn.fetchrow(SQL_ACTIVE)
                if only_if_due and current is not None and current["created_at"] + self._rotation > now:
                    return None
                if current is not None:
                    await conn.execute(SQL_SUPERSEDE, current["kid"], now, now + self.grace)
                kid = await self._insert_new(conn)
                await audit(conn, now, SYSTEM_ACTOR, "auth.key.rotated", "signing_key", kid, None,
                            previous=current["kid"] if current else None, previous_retires_at=now + self.grace)
        log.info("rotated the access-token signing key to %s", kid)
        await self.reload()
        return kid

    async def retire(self) -> list[str]:
        """Delete the keys whose grace has ended; returns their kids."""
        now = self._clock.now()
        async with self._pool.acquire() as conn:
            async with conn.transaction():
                kids = [r["kid"] for r in await conn.fetch(SQL_RETIRE, now)]
                for kid in kids:
                    await audit(conn, now, SYSTEM_ACTOR, "auth.key.retired", "signing_key", kid, None)
        if kids:
            log.info("retired access-token signing keys %s", ", ".join(kids))
            await self.reload()
        return kids

    async def _insert_new(self, conn: asyncpg.Connection) -> str:
        private_key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
        kid = thumbprint_kid(private_key.public_key())
        der = private_key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption())
        await conn.execute(SQL_INSERT, kid, self._box.encrypt(der, signing_key_aad(kid)), self._clock.now())
        return kid

    def _key_from_row(self, row: asyncpg.Record) -> SigningKey:
        kid = row["kid"]
        cached = self._keys.get(kid)
        if cached is not None:  # decrypting and parsing again would give the same key
            return SigningKey(kid, cached.private_key, row["retire_after"])
        try:
            der = self._box.decrypt(bytes(row["private_key_enc"]), signing_key_aad(kid))
        except SecretBoxError as exc:
            raise KeyRingError(f"cannot open signing key {kid}: {exc}; is auth.secret_file the one the other "
                               "hub processes use?") from None
        private_key = serialization.load_der_private_key(der, password=None)
        if not isinstance(private_key, rsa.RSAPrivateKey):
            raise KeyRingError(f"signing key {kid} is not an RSA key")
        return SigningKey(kid, private_key, row["retire_after"])
