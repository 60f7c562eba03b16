"""Operator authentication and user management for the hub API.

Wiring, once per hub process, after migrations:

    box = SecretBox.from_file(Path(config.auth.secret_file))
    auth = await build_auth(pool, config.auth, clock, box=box)
    await auth.bootstrap_master()
    app = build_api([auth.router, ...], pool, auth.authenticator)
    # and from housekeeping, every minute or so:
    await auth.maintain()
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import asyncpg

from hub.api.routing import Router
from hub.auth.authenticator import TokenAuthenticator
from hub.auth.bootstrap import Bootstrap, BootstrapError, bootstrap_master
from hub.auth.keys import KeyRing, KeyRingError
from hub.auth.login import LoginService
from hub.auth.passwords import Passwords
from hub.auth.routes import PASSWORD_CHANGE_PATHS, auth_router
from hub.auth.sessions import Sessions
from hub.auth.throttle import Throttle
from hub.auth.tokens import AccessTokens
from hub.auth.users import UserStore
from hub.config import AuthSettings
from hub.secret_box import SecretBox
from shared.clock import SYSTEM_CLOCK, Clock

__all__ = ["Auth", "Bootstrap", "BootstrapError", "KeyRingError", "build_auth"]


@dataclass
class Auth:
    """Everything the hub wires in: the authenticator and router for `build_api`, the key ring,
    the first-start bootstrap and the periodic maintenance."""

    settings: AuthSettings
    pool: asyncpg.Pool
    clock: Clock
    passwords: Passwords
    keyring: KeyRing
    tokens: AccessTokens
    sessions: Sessions
    throttle: Throttle
    login: LoginService
    users: UserStore
    authenticator: TokenAuthenticator
    router: Router

    async def bootstrap_master(self, reveal: Callable[[str, str], None] | None = None) -> Bootstrap:
        """Create the first MASTER account unless one exists (see hub.auth.bootstrap)."""
        return await bootstrap_master(self.pool, self.settings, self.passwords, self.clock, reveal)

    async def maintain(self) -> None:
        """Rotate the signing key when due, retire keys past their grace, end sessions past their
        absolute lifetime, forget ended sessions and stale throttle rows. Safe to run from every
        hub process."""
        await self.keyring.rotate(only_if_due=True)
        await self.keyring.retire()
        self.sessions.announce(await self.sessions.revoke_aged(self.pool))
        await self.sessions.purge(self.pool)
        await self.throttle.purge(self.pool)


async def build_auth(pool: asyncpg.Pool, settings: AuthSettings, clock: Clock = SYSTEM_CLOCK, *,
                     box: SecretBox | None = None, passwords: Passwords | None = None,
                     default_time_zone: str = "UTC") -> Auth:
    """Assemble auth on `pool` (migrated) and make sure a signing key exists. `box` defaults to
    the one for `settings.secret_file`; `passwords` to Argon2id at its standard cost;
    `default_time_zone` is console.time_zone, shown to users who chose none. Raises
    KeyRingError, SecretFileError."""
    box = box or SecretBox.from_file(Path(settings.secret_file))
    passwords = passwords or Passwords()
    keyring = KeyRing(pool, box, clock, token_ttl_s=settings.access_ttl_s, rotation_days=settings.key_rotation_days)
    await keyring.start()
    tokens = AccessTokens(keyring, clock, issuer=settings.issuer, audience=settings.audience,
                          ttl_s=settings.access_ttl_s)
    sessions = Sessions(clock, settings.refresh_ttl_s, settings.session_max_age_days * 86_400)
    throttle = Throttle(clock)
    login = LoginService(pool, clock, passwords, throttle, sessions, tokens)
    users = UserStore(pool, clock, passwords, sessions, default_time_zone)
    return Auth(
        settings=settings, pool=pool, clock=clock, passwords=passwords, keyring=keyring, tokens=tokens,
        sessions=sessions, throttle=throttle, login=login, users=users,
        authenticator=TokenAuthenticator(pool, tokens, PASSWORD_CHANGE_PATHS),
        router=auth_router(login, users, keyring, settings.trusted_proxies),
    )
