"""Password hashing (Argon2id), the password policy and one-time passwords.

Hashing is deliberately slow and memory-hungry, so it runs in worker threads (argon2 releases the
GIL) behind a semaphore: a burst of logins neither stalls the event loop nor allocates unbounded
memory.
"""
from __future__ import annotations

import asyncio
import os
import secrets

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MIN_LENGTH = 12
MAX_LENGTH = 256


class PasswordPolicyError(ValueError):
    """A new password does not meet the policy; the message says why."""


def check_policy(password: str, email: str = "") -> None:
    """Raise PasswordPolicyError unless `password` may be set."""
    if len(password) < MIN_LENGTH:
        raise PasswordPolicyError(f"a password needs at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise PasswordPolicyError(f"a password has at most {MAX_LENGTH} characters")
    if email and password.strip().lower() == email.strip().lower():
        raise PasswordPolicyError("a password may not be the account's email")


def generate_password() -> str:
    """A random one-time password (24 characters, 144 bits)."""
    return secrets.token_urlsafe(18)


class Passwords:
    """Hashes and verifies passwords with Argon2id (RFC 9106 low-memory profile by default)."""

    def __init__(self, time_cost: int = 3, memory_kib: int = 65536, parallelism: int = 4,
                 concurrency: int | None = None) -> None:
        self._hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism,
                                      type=Type.ID)
        self._slots = asyncio.Semaphore(concurrency or os.cpu_count() or 2)
        # Verified instead of a real hash when the email is unknown, so that answer costs the same.
        self._dummy_hash = self._hasher.hash(secrets.token_urlsafe(16))

    async def hash(self, password: str) -> str:
        """The PHC-format Argon2id hash of `password`."""
        async with self._slots:
            return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """True when `password` matches `password_hash`. With no hash (unknown user) a dummy hash
        is verified and False returned, taking as long as a real check."""
        async with self._slots:
            return await asyncio.to_thread(self._verify, password_hash, password)

    def needs_rehash(self, password_hash: str) -> bool:
        """True when the hash was made with other parameters than the current ones."""
        return self._hasher.check_needs_rehash(password_hash)

    def _verify(self, password_hash: str | None, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash or self._dummy_hash, password) and password_hash is not None
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
