"""Who may use the edge's local page and API, and how they prove it (docs/architecture.md §7).

- A person logs in with a site account (edge.site_accounts) and gets a session: a random token in
  the cookie `vigil_edge_session` (HttpOnly, SameSite=Strict, Path=/, Secure over HTTPS), kept in
  this process's memory only. It ends after 30 min unused or 12 h in all, at logout, when its
  account is disabled, and when the agent restarts.
- A tool on the box (`python -m edge release|resume|diagnostics`) sends `Authorization: Bearer
  <token>` with the token the agent writes to `<data_dir>/local-api.token` at every start (0600):
  only someone who can read that file (root, the service user) gets in, as `local-cli` with an
  installer's rights. A browser never sends that header by itself, so a bearer request cannot be
  forged by another page (no ambient credential, unlike the cookie).
- Failed logins from one address cost it progressively longer waits, then a 15 min lock.

The rules (`may`, `session_expired`, `retry_after`) are pure functions of their inputs and a clock
reading; `Sessions`, `LoginThrottle` and `LocalAuth` keep the state.
"""
from __future__ import annotations

import asyncio
import enum
import hmac
import logging
import secrets
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from edge.site_accounts import (
    LOCAL_CLI, MAX_PASSWORD, Account, AccountError, AccountStore, Role, check_name, disable_account, new_account,
    verify_password,
)
from shared.clock import SYSTEM_CLOCK, Clock
from shared.private_file import create_private_file, read_private_file

log = logging.getLogger("vigil.edge.local_auth")

SESSION_COOKIE = "vigil_edge_session"
TOKEN_FILE = "local-api.token"
IDLE_S = 30 * 60.0
ABSOLUTE_S = 12 * 3600.0
MAX_SESSIONS = 256
# Login throttling per address: FREE_FAILURES in a row cost nothing (typos), each further one
# doubles the wait from 1 s up to MAX_DELAY_S, and the LOCK_FAILURES-th locks the address for
# LOCK_S. A quarter-hour without failures forgets them.
FREE_FAILURES = 3
MAX_DELAY_S = 60.0
LOCK_FAILURES = 10
LOCK_S = 15 * 60.0
MAX_ADDRESSES = 4096
# Argon2 checks running at once: each takes ~19 MiB and a core for a moment, and the agent's
# device links share this process's event loop, so a burst of logins waits here instead.
HASH_SLOTS = 2


class Action(enum.StrEnum):
    """What a request does, as far as who may do it is concerned."""

    VIEW = "view"  # status, links, diagnostics
    ARM_DISARM = "arm_disarm"  # arm, disarm, clear an alarm
    RELEASE = "release"  # release the panel for DLOADX, resume
    OUTPUTS = "outputs"
    BYPASS = "bypass"
    MANAGE_ACCOUNTS = "manage_accounts"


_GUARD = frozenset({Action.VIEW, Action.ARM_DISARM})
_INSTALLER = _GUARD | {Action.RELEASE, Action.OUTPUTS, Action.BYPASS}
_ALLOWED: dict[Role, frozenset[Action]] = {
    Role.GUARD: _GUARD,
    Role.INSTALLER: _INSTALLER,
    Role.ADMIN: _INSTALLER | {Action.MANAGE_ACCOUNTS},
}


def may(role: Role, action: Action) -> bool:
    """Whether an account of `role` may do `action`: guards arm, disarm and clear alarms;
    installers also release and resume the panel, switch outputs and bypass zones; admins also
    manage the site accounts. Everyone logged in may look."""
    return action in _ALLOWED[role]


def session_expired(created: float, last_seen: float, now: float) -> bool:
    """Whether a session made at `created` and last used at `last_seen` (monotonic seconds) has
    ended by `now`: IDLE_S unused, or ABSOLUTE_S in all."""
    return now - last_seen >= IDLE_S or now - created >= ABSOLUTE_S


def retry_after(failures: int, last_failure: float, now: float) -> float:
    """Seconds an address must still wait before its next login attempt, after `failures` failed
    attempts in a row, the last at `last_failure` (monotonic seconds); 0 when it may try now."""
    if failures < FREE_FAILURES:
        return 0.0
    wait = LOCK_S if failures >= LOCK_FAILURES else min(2.0 ** (failures - FREE_FAILURES), MAX_DELAY_S)
    return max(0.0, last_failure + wait - now)


@dataclass(frozen=True)
class Principal:
    """Who a request acts for."""

    name: str
    role: Role

    @property
    def who(self) -> str:
        """How journaled commands name them: `installer:jan`, or `local-cli` for the on-box tools."""
        return LOCAL_CLI if self.name == LOCAL_CLI else f"{self.role.value}:{self.name}"

    def as_dict(self) -> dict[str, object]:
        return {"name": self.name, "role": self.role.value, "who": self.who,
                "may": [action.value for action in Action if may(self.role, action)]}


#: The on-box tools holding the token file: an installer's rights (release, resume, diagnostics).
LOCAL_CLI_PRINCIPAL = Principal(LOCAL_CLI, Role.INSTALLER)


class NotLoggedIn(Exception):
    """No valid session or token; `code` is `login_required` or `invalid_token`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class BadCredentials(Exception):
    """Wrong account name or password (or a disabled account: the answer is the same)."""


class TooManyAttempts(Exception):
    """This address failed too often; it may try again in `retry_after_s` seconds."""

    def __init__(self, retry_after_s: float) -> None:
        super().__init__(f"retry in {retry_after_s:.0f} s")
        self.retry_after_s = retry_after_s


@dataclass
class Session:
    name: str
    created: float
    last_seen: float


class Sessions:
    """The live sessions by token, in memory (a restart logs everyone out), at most MAX_SESSIONS:
    when full, the one unused longest makes room."""

    def __init__(self, clock: Clock = SYSTEM_CLOCK) -> None:
        self._clock = clock
        self._by_token: dict[str, Session] = {}

    def __len__(self) -> int:
        return len(self._by_token)

    def open(self, name: str) -> str:
        """A new session for account `name`; returns its token."""
        now = self._clock.monotonic()
        if len(self._by_token) >= MAX_SESSIONS:
            for token, session in list(self._by_token.items()):
                if session_expired(session.created, session.last_seen, now):
                    del self._by_token[token]
        if len(self._by_token) >= MAX_SESSIONS:
            del self._by_token[min(self._by_token, key=lambda t: self._by_token[t].last_seen)]
        token = secrets.token_urlsafe(32)
        self._by_token[token] = Session(name, now, now)
        return token

    def find(self, token: str) -> Session | None:
        """The live session of `token`, marked used now; None (and forgotten) when it has ended."""
        session = self._by_token.get(token)
        if session is None:
            return None
        now = self._clock.monotonic()
        if session_expired(session.created, session.last_seen, now):
            del self._by_token[token]
            return None
        session.last_seen = now
        return session

    def close(self, token: str) -> None:
        self._by_token.pop(token, None)

    def close_account(self, name: str) -> int:
        """End every session of account `name`; returns how many there were."""
        ended = [token for token, session in self._by_token.items() if session.name == name]
        for token in ended:
            del self._by_token[token]
        return len(ended)


class LoginThrottle:
    """Failed logins per address (see retry_after), for at most MAX_ADDRESSES addresses."""

    def __init__(self, clock: Clock = SYSTEM_CLOCK) -> None:
        self._clock = clock
        self._failures: OrderedDict[str, tuple[int, float]] = OrderedDict()  # oldest failure first

    def wait(self, address: str) -> float:
        """Seconds `address` must wait before trying again (0: it may try now)."""
        failures, last = self._failures.get(address, (0, 0.0))
        return retry_after(failures, last, self._clock.monotonic())

    def failed(self, address: str) -> None:
        now = self._clock.monotonic()
        failures, last = self._failures.pop(address, (0, now))
        if now - last >= LOCK_S:
            failures = 0  # a quarter-hour of quiet: a fresh start
        self._failures[address] = (failures + 1, now)
        while self._failures:
            oldest, (_, at) = next(iter(self._failures.items()))
            if now - at < LOCK_S and len(self._failures) <= MAX_ADDRESSES:
                break
            del self._failures[oldest]

    def succeeded(self, address: str) -> None:
        self._failures.pop(address, None)


def token_path(data_dir: Path | str) -> Path:
    """Where the agent keeps the local API token for the on-box tools."""
    return Path(data_dir) / TOKEN_FILE


def write_cli_token(data_dir: Path | str) -> str:
    """A new local API token in `<data_dir>/local-api.token` (0600), replacing the last start's."""
    path = token_path(data_dir)
    path.unlink(missing_ok=True)
    token = secrets.token_urlsafe(32)
    if not create_private_file(path, token + "\n"):
        raise OSError(f"{path} appeared while the agent was writing it; is another agent using this data dir?")
    return token


class TokenFileError(Exception):
    """The local API token cannot be read; the message says why."""


def read_cli_token(path: Path) -> str:
    """The running agent's local API token from its token file, for the on-box tools; raises
    TokenFileError (saying the agent may not be running: it writes the file at start)."""
    try:
        return read_private_file(path, "the local API token", TokenFileError)
    except TokenFileError as exc:
        raise TokenFileError(f"{exc} (the agent writes it when it starts: is it running?)") from None


class LocalAuth:
    """Logins, sessions and the on-box token of one running agent."""

    def __init__(self, data_dir: Path | str, cli_token: str, clock: Clock = SYSTEM_CLOCK) -> None:
        self.store = AccountStore(data_dir)
        self.sessions = Sessions(clock)
        self.throttle = LoginThrottle(clock)
        self._token_path = token_path(data_dir)
        self._cli_token = cli_token.encode()
        self._clock = clock
        self._slots = asyncio.Semaphore(HASH_SLOTS)

    @classmethod
    def start(cls, data_dir: Path | str, clock: Clock = SYSTEM_CLOCK) -> LocalAuth:
        """The agent's auth, with a new token file for the on-box tools."""
        return cls(data_dir, write_cli_token(data_dir), clock)

    def stop(self) -> None:
        """Remove the token file: with the agent gone, the tools say so instead of knocking."""
        self._token_path.unlink(missing_ok=True)

    def _throttled(self, address: str) -> None:
        wait = self.throttle.wait(address)
        if wait > 0:
            raise TooManyAttempts(wait)

    def _check(self, name: str, password: str) -> Account | None:
        if len(password) > MAX_PASSWORD:
            return None  # no account has one that long: not worth an Argon2 run
        try:
            account = self.store.get(check_name(name))
        except AccountError:
            account = None  # not a name any account can have; still pay for a hash below
        return account if verify_password(account, password) else None

    async def login(self, name: str, password: str, address: str) -> tuple[Principal, str]:
        """Check the credentials; returns who logged in and their new session token. Raises
        BadCredentials, TooManyAttempts, or AccountStoreError."""
        self._throttled(address)
        async with self._slots:
            self._throttled(address)  # attempts queued behind a burst meet the failures before them
            account = await asyncio.to_thread(self._check, name, password)
        if account is None:
            self.throttle.failed(address)
            log.warning("local page login failed", extra={"address": address, "account": name[:64]})
            raise BadCredentials()
        self.throttle.succeeded(address)
        token = self.sessions.open(account.name)
        log.info("local page login", extra={"address": address, "account": account.name, "role": account.role.value})
        return Principal(account.name, account.role), token

    async def authenticate(self, authorization: str | None, cookie: str | None) -> Principal:
        """Who a request acts for: the bearer token's `local-cli`, or the session's account (read
        again now, so a disabled account's sessions stop at once). Raises NotLoggedIn."""
        if authorization is not None:
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), self._cli_token):
                raise NotLoggedIn("invalid_token", f"that bearer token is not this agent's (the tools on the box read "
                                                   f"it from {self._token_path})")
            return LOCAL_CLI_PRINCIPAL
        session = self.sessions.find(cookie) if cookie else None
        if session is None:
            raise NotLoggedIn("login_required", "log in first: this page needs a site account"
                              if not cookie else "your session has ended; log in again")
        account = await asyncio.to_thread(self.store.get, session.name)
        if account is None or not account.active:
            self.sessions.close_account(session.name)
            raise NotLoggedIn("login_required", f"the account {session.name!r} is disabled")
        return Principal(account.name, account.role)

    def logout(self, cookie: str | None) -> None:
        if cookie:
            self.sessions.close(cookie)

    async def add_account(self, name: str, password: str, role: str, by: Principal) -> Account:
        """A new site account (the rules of edge.site_accounts); raises AccountError."""
        async with self._slots:
            account = await asyncio.to_thread(new_account, self.store, name, password, role, self._clock)
        log.info("site account added", extra={"account": account.name, "role": account.role.value, "by": by.who})
        return account

    async def disable_account(self, name: str, by: Principal) -> Account:
        """Disable an account and end its sessions; raises NoSuchAccount for an unknown name."""
        account = await asyncio.to_thread(disable_account, self.store, name, self._clock)
        ended = self.sessions.close_account(account.name)
        log.info("site account disabled", extra={"account": account.name, "by": by.who, "sessions_ended": ended})
        return account

    async def accounts(self) -> list[Account]:
        return await asyncio.to_thread(self.store.all)
