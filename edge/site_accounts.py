"""Site accounts: the people who may log in to the edge's local page (docs/architecture.md §7).

They live in the edge's data dir, in a small SQLite file (`site-accounts.db`, mode 0600): the
agent reads it at every login and request while `python -m edge accounts …` writes it, and SQLite
keeps those two processes from losing each other's writes. Passwords are kept only as Argon2id
hashes. An account is never deleted, only disabled, so "who" in an old journaled command still
names someone the box knew.

The first site admin is made at enrolment (`create_account`); a site admin adds the installers
and guards (`python -m edge accounts add`, or the local page's accounts API).
"""
from __future__ import annotations

import enum
import functools
import os
import re
import secrets
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from shared.clock import SYSTEM_CLOCK, Clock
from shared.private_file import PRIVATE_MODE

ACCOUNTS_FILE = "site-accounts.db"
MIN_PASSWORD = 10
MAX_PASSWORD = 256
# Lower-case so "Jan" and "jan" can never be two accounts; no ":" so "role:name" stays unambiguous.
_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
#: The name the on-box CLIs act under (edge.local_auth); no site account may take it.
LOCAL_CLI = "local-cli"

SQL_SCHEMA = """
CREATE TABLE IF NOT EXISTS site_accounts (
    name          TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'installer', 'guard')),
    created_at    TEXT NOT NULL,
    disabled_at   TEXT
)
"""
SQL_ADD = "INSERT INTO site_accounts (name, password_hash, role, created_at) VALUES (?, ?, ?, ?)"
SQL_GET = "SELECT name, password_hash, role, created_at, disabled_at FROM site_accounts WHERE name = ?"
SQL_LIST = "SELECT name, password_hash, role, created_at, disabled_at FROM site_accounts ORDER BY name"
SQL_DISABLE = "UPDATE site_accounts SET disabled_at = coalesce(disabled_at, ?) WHERE name = ?"

# The edge is a small box: Argon2id with OWASP's minimum (19 MiB, 2 passes, 1 lane) rather than
# the hub's 64 MiB, so two logins at once stay well inside its memory.
_HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1, type=Type.ID)


class Role(enum.StrEnum):
    """What a site account may do (edge.local_auth.may): guards arm, disarm and clear alarms;
    installers also release the panel for DLOADX, switch outputs and bypass zones; admins also
    manage the accounts."""

    ADMIN = "admin"
    INSTALLER = "installer"
    GUARD = "guard"


class AccountError(ValueError):
    """An account cannot be made or changed; the message says why."""


class AccountExists(AccountError):
    """The name is taken (by an active or a disabled account)."""


class NoSuchAccount(AccountError):
    """No account has that name."""


class AccountStoreError(Exception):
    """The accounts file cannot be used (unreadable, or readable by others)."""


@dataclass(frozen=True)
class Account:
    name: str
    password_hash: str
    role: Role
    created_at: str
    disabled_at: str | None

    @property
    def active(self) -> bool:
        return self.disabled_at is None

    def public(self) -> dict[str, str | bool | None]:
        """What the accounts API and CLI show: never the hash."""
        return {"name": self.name, "role": self.role.value, "created_at": self.created_at,
                "disabled": not self.active, "disabled_at": self.disabled_at}


def check_name(name: str) -> str:
    """The account name as stored (trimmed, lower-case); raises AccountError when it is not one."""
    normal = name.strip().lower()
    if not _NAME.fullmatch(normal):
        raise AccountError(f"account name {name!r} must be 1..64 letters, digits, '.', '_' or '-', "
                           "starting with a letter or digit")
    if normal == LOCAL_CLI:
        raise AccountError(f"{LOCAL_CLI!r} is the name the on-box tools act under; choose another")
    return normal


def check_password(password: str) -> None:
    """Raise AccountError unless `password` may be set."""
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"a password needs at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise AccountError(f"a password has at most {MAX_PASSWORD} characters")


def check_role(role: str) -> Role:
    """The Role named `role`; raises AccountError for any other word."""
    try:
        return Role(role)
    except ValueError:
        raise AccountError(f"role must be one of {', '.join(r.value for r in Role)}, got {role!r}") from None


def hash_password(password: str) -> str:
    """The PHC-format Argon2id hash of `password` (slow on purpose: call it off the event loop)."""
    return _HASHER.hash(password)


@functools.cache
def _dummy_hash() -> str:
    """Verified instead of a real hash when the name is unknown or disabled, so that answer costs
    the same time and tells nobody which accounts exist."""
    return hash_password(secrets.token_urlsafe(16))


def verify_password(account: Account | None, password: str) -> bool:
    """True when `account` is active and `password` is its password; with no account (or a
    disabled one) a dummy hash is checked and False returned, taking as long as a real check."""
    real = account.password_hash if account is not None and account.active else None
    try:
        matched = _HASHER.verify(real or _dummy_hash(), password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
    return matched and real is not None


def _row(row: tuple[str, str, str, str, str | None]) -> Account:
    return Account(row[0], row[1], Role(row[2]), row[3], row[4])


class AccountStore:
    """The accounts file of one data dir. Synchronous and short: the agent calls it in a thread.
    Each call opens its own connection, so the agent sees what the CLI wrote a moment ago."""

    def __init__(self, data_dir: Path | str) -> None:
        self.path = Path(data_dir) / ACCOUNTS_FILE

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        if not self.path.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            try:
                # Created private in one step; SQLite gives its journal file the same mode.
                os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_MODE))
            except FileExistsError:
                pass  # another process made it just now
        try:
            mode = self.path.stat().st_mode & 0o777
            db = sqlite3.connect(self.path, timeout=5)
        except (OSError, sqlite3.Error) as exc:
            raise AccountStoreError(f"cannot open the site accounts {self.path}: {exc}") from exc
        if mode & 0o077:
            db.close()
            raise AccountStoreError(f"the site accounts {self.path} have mode {mode:o}; they must be 600 "
                                    f"(chmod 600 {self.path})")
        try:
            with db:
                db.execute(SQL_SCHEMA)
                yield db
        except sqlite3.IntegrityError:
            raise  # the caller's to explain (a taken name)
        except sqlite3.DatabaseError as exc:
            raise AccountStoreError(f"cannot use the site accounts {self.path}: {exc}") from exc
        finally:
            db.close()

    def add(self, name: str, password_hash: str, role: Role, created_at: str) -> Account:
        """Store a new account; raises AccountExists when the name is taken."""
        try:
            with self._db() as db:
                db.execute(SQL_ADD, (name, password_hash, role.value, created_at))
        except sqlite3.IntegrityError:
            raise AccountExists(f"there is already an account {name!r}") from None
        return Account(name, password_hash, role, created_at, None)

    def get(self, name: str) -> Account | None:
        """The account called `name` (active or not), or None."""
        with self._db() as db:
            row = db.execute(SQL_GET, (name,)).fetchone()
        return _row(row) if row else None

    def all(self) -> list[Account]:
        """Every account, by name."""
        with self._db() as db:
            return [_row(row) for row in db.execute(SQL_LIST).fetchall()]

    def disable(self, name: str, at: str) -> Account:
        """Disable `name` (it can no longer log in, and its sessions stop working); raises
        NoSuchAccount for an unknown name. Disabling twice keeps the first time."""
        with self._db() as db:
            if db.execute(SQL_DISABLE, (at, name)).rowcount == 0:
                raise NoSuchAccount(f"there is no account {name!r}")
            row = db.execute(SQL_GET, (name,)).fetchone()
        return _row(row)


def new_account(store: AccountStore, name: str, password: str, role: str, clock: Clock = SYSTEM_CLOCK) -> Account:
    """Check the rules, hash the password and store the account; raises AccountError."""
    normal, chosen = check_name(name), check_role(role)
    check_password(password)
    return store.add(normal, hash_password(password), chosen, clock.now().isoformat())


def disable_account(store: AccountStore, name: str, clock: Clock = SYSTEM_CLOCK) -> Account:
    """Disable the account `name` now; raises NoSuchAccount (or AccountError for a malformed name)."""
    return store.disable(check_name(name), clock.now().isoformat())


def create_account(data_dir: Path | str, name: str, password: str, role: str) -> Account:
    """Create a site account in the edge data dir `data_dir` (the config's `data_dir`).

    For enrolment (`python -m edge enroll` makes the first site admin with role "admin") and for
    `python -m edge accounts add`. `name` is stored trimmed and lower-case and must be 1..64
    letters, digits, '.', '_' or '-'; `password` needs 10..256 characters; `role` is "admin",
    "installer" or "guard". Raises AccountError (a ValueError; its message says which rule failed,
    or that the name is taken) or AccountStoreError (the file cannot be used). The password is
    hashed with Argon2id; it is never stored, logged or returned. Blocks for the hash (~0.1 s)."""
    return new_account(AccountStore(data_dir), name, password, role)
