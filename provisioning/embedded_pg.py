"""An embedded PostgreSQL for `make run` and tests on machines with no server configured.

Uses the PostgreSQL binaries the `pgserver` wheel ships, but runs `postgres` itself as a supervised
child (so Ctrl-C and a killed launcher stop it too) on a TCP port of our choosing. PostgreSQL
refuses to run as root; as root we run it as the unprivileged `pgserver` user, as pgserver does.
"""
from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import subprocess
from pathlib import Path

import asyncpg

from shared.process import ManagedProcess


def _bin_dir() -> Path:
    from pgserver._commands import POSTGRES_BIN_PATH  # the wheel's bin folder

    return Path(POSTGRES_BIN_PATH)


class EmbeddedPostgres:
    """initdb (once) + postgres on host:port, data in `data_dir`."""

    SYSTEM_USER = "pgserver"

    def __init__(self, data_dir: Path, port: int, host: str = "127.0.0.1", log_dir: Path | None = None) -> None:
        self.data_dir = data_dir.resolve()
        self.port = port
        self.host = host
        self.log_dir = log_dir or self.data_dir.parent
        self._as_user: pwd.struct_passwd | None = None
        if os.geteuid() == 0:
            from pgserver.utils import ensure_prefix_permissions, ensure_user_exists

            self._as_user = ensure_user_exists(self.SYSTEM_USER)
            self._ensure_prefix = ensure_prefix_permissions
        self.process: ManagedProcess | None = None

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@{self.host}:{self.port}/{database}"

    def _demote(self) -> None:
        if self._as_user is not None:
            os.setgid(self._as_user.pw_gid)
            os.setuid(self._as_user.pw_uid)

    def _prepare_dirs(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        if self._as_user is not None:
            self._ensure_prefix(self.data_dir)
            self._ensure_prefix(_bin_dir())
            for path in (self.data_dir,):
                shutil.chown(path, self._as_user.pw_uid, self._as_user.pw_gid)
        os.chmod(self.data_dir, 0o700)

    def run_tool(self, tool: str, *args: str) -> None:
        """Run one of the bundled client programs (initdb, pg_basebackup, …) as the server's user,
        its data directory prepared; raises RuntimeError with its output when it fails."""
        self._prepare_dirs()
        result = subprocess.run([str(_bin_dir() / tool), *args], preexec_fn=self._demote, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"{tool} failed for {self.data_dir}:\n{result.stdout}\n{result.stderr}")

    def initdb(self) -> None:
        """Create the cluster unless it exists."""
        if (self.data_dir / "PG_VERSION").exists():
            return
        self.run_tool("initdb", "-D", str(self.data_dir), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                      "--no-instructions")

    async def start(self, timeout: float = 60.0) -> None:
        """Start postgres and wait until it accepts connections."""
        self._prepare_dirs()
        self.initdb()
        stale_pid = self.data_dir / "postmaster.pid"
        if stale_pid.exists():
            # A previous run was killed; postgres refuses a pid file whose process is gone only
            # sometimes (pid reuse), so check and remove it ourselves.
            try:
                pid = int(stale_pid.read_text().split()[0])
                os.kill(pid, 0)
            except (ValueError, IndexError, ProcessLookupError):
                stale_pid.unlink()
            except PermissionError:
                pass
        self.process = ManagedProcess(
            "postgres",
            [str(_bin_dir() / "postgres"), "-D", str(self.data_dir), "-p", str(self.port), "-h", self.host,
             "-k", str(self.data_dir), "-c", "fsync=on", "-c", "max_connections=200"],
            log_path=self.log_dir / "postgres.log",
            preexec=self._demote,
        )
        self.process.start()
        await self.process.wait_ready(self._accepts, timeout)

    async def _accepts(self) -> bool:
        try:
            conn = await asyncpg.connect(self.dsn(), timeout=2)
        except (OSError, asyncpg.PostgresError, asyncio.TimeoutError):
            return False
        await conn.close()
        return True

    async def ensure_database(self, name: str) -> str:
        """Create database `name` if missing; returns its DSN."""
        conn = await asyncpg.connect(self.dsn())
        try:
            if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
                await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        return self.dsn(name)

    def stop(self, timeout: float = 20.0) -> None:
        """Fast shutdown (SIGINT: roll back open transactions, checkpoint, exit)."""
        if self.process is not None:
            import signal

            self.process.stop(timeout, sig=signal.SIGINT)
