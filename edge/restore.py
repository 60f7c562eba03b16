"""`python -m edge restore --from hub|file:///path|s3://…`: bring a dead box's journal back onto its
replacement from the replica Litestream kept (docs/architecture.md §3 "Replication").

Run after enrolling the replacement with the same edge id (so its server has the edge's replica
leaf, for `hub`) and before the agent starts. The restored journal keeps its epoch and seqs, so the
agent forwards what the old box had not, and the hub drops what it already committed by (edge,
epoch, seq) (§6.1).
"""
from __future__ import annotations

import asyncio
import subprocess
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from edge.config import EdgeConfig, ReplicationSettings
from edge.journal import Journal, JournalError
from edge.replication import ReplicationError, hub_replica_login, litestream_binary, litestream_config
from shared.private_file import write_private_file

#: How long one `litestream restore` may take.
_RESTORE_TIMEOUT_S = 600.0


class RestoreError(Exception):
    """The journal cannot be restored; the message says why and what to do."""


@dataclass(frozen=True)
class RestoredJournal:
    """What the restored journal holds."""

    path: Path
    epoch: str
    epoch_first_seq: int
    last_seq: int
    unforwarded: dict[str, int]

    def summary(self) -> str:
        lanes = ", ".join(f"{lane} {count}" for lane, count in sorted(self.unforwarded.items()))
        return (f"journal restored to {self.path}: epoch {self.epoch} (from seq {self.epoch_first_seq}), "
                f"last seq {self.last_seq}, unforwarded rows: {lanes}")


def replica_url(source: str, config: EdgeConfig) -> str:
    """The replica URL Litestream restores from, for `file` and `s3` sources (`hub` goes by a
    config file: see restore_journal)."""
    if source == "config":
        settings = config.replication
        if settings.kind == "file" and settings.path:
            return Path(settings.path).resolve().as_uri()
        if settings.kind == "s3" and settings.url:
            return settings.url
        raise RestoreError("the config names no replica (replication.path or replication.url)")
    parts = urllib.parse.urlsplit(source)
    if parts.scheme == "file" and parts.path.startswith("/") and not parts.netloc:
        return source
    if parts.scheme == "s3" and parts.netloc:
        return source
    raise RestoreError(f"--from must be hub, file:///folder, s3://bucket/path or config, got {source!r}")


def _sidecars(path: Path) -> tuple[Path, Path, Path]:
    return path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")


def _remove_journal(path: Path) -> None:
    for file in _sidecars(path):
        file.unlink(missing_ok=True)


def _move_journal(source: Path, target: Path) -> None:
    for src, dst in zip(_sidecars(source), _sidecars(target)):
        if src.exists():
            src.replace(dst)


def run_litestream_restore(source: str, output: Path, *, config_file: Path | None = None,
                           env: dict[str, str] | None = None) -> None:
    """`litestream restore -o output source` (`source` a replica URL, or with `config_file` the
    database path the config names); raises RestoreError with Litestream's own reason."""
    output.parent.mkdir(parents=True, exist_ok=True)
    argv = [litestream_binary(), "restore", *(["-config", str(config_file)] if config_file else []), "-o", str(output),
            source]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=_RESTORE_TIMEOUT_S, check=False, env=env)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RestoreError(f"litestream restore could not run: {exc}") from None
    if done.returncode != 0 or not output.exists():
        reason = (done.stderr or done.stdout).strip().splitlines()
        where = "the hub" if config_file else source
        raise RestoreError(f"litestream restore from {where} failed: {reason[-1] if reason else done.returncode}")


def _restore_from_hub(config: EdgeConfig, output: Path) -> None:
    """Restore from the edge's replica on the hub, through the box's server (it must run, enrolled)."""
    try:
        login = hub_replica_login(config)
    except ReplicationError as exc:
        raise RestoreError(str(exc)) from None
    settings = ReplicationSettings(enabled=True, kind="hub")
    config_file = Path(config.data_dir) / "litestream" / "restore.yml"
    config_file.parent.mkdir(parents=True, exist_ok=True)
    write_private_file(config_file, litestream_config(settings, config.journal_path, login))
    try:
        run_litestream_restore(str(config.journal_path.resolve()), output, config_file=config_file, env=login.env())
    finally:
        config_file.unlink(missing_ok=True)


async def inspect_journal(path: Path, config: EdgeConfig) -> RestoredJournal:
    """Open the restored journal with the journal's own code and read its epoch, last seq and
    unforwarded rows per lane. Raises RestoreError for a file that is not a journal with an epoch."""
    try:
        journal = await Journal.open(path, max_bytes=config.journal.max_bytes,
                                     retention_s=config.journal.retention_hours * 3600)
    except JournalError as exc:
        raise RestoreError(f"the restored file is not a usable journal: {exc}") from None
    try:
        if journal.last_seq < journal.epoch.start - 1:
            raise RestoreError(f"the restored journal is inconsistent: last seq {journal.last_seq} before its "
                               f"epoch's first seq {journal.epoch.start}")
        return RestoredJournal(path, journal.epoch.id, journal.epoch.start, journal.last_seq,
                               dict(journal.unforwarded))
    finally:
        await journal.close()


def restore_journal(config: EdgeConfig, source: str, *, force: bool = False) -> RestoredJournal:
    """Restore the journal from `source` into the config's journal path, refusing to replace an
    existing journal unless `force`. The replica is restored beside the journal and checked first;
    only a good journal replaces the old one, so a failed restore changes nothing."""
    target = config.journal_path
    if target.exists() and not force:
        raise RestoreError(f"a journal already exists at {target}: it may hold rows no replica has; "
                           "move it away or pass --force to replace it")
    url = None if source == "hub" else replica_url(source, config)
    staging = target.with_name(target.name + ".restoring")
    _remove_journal(staging)
    try:
        if url is None:
            _restore_from_hub(config, staging)
        else:
            run_litestream_restore(url, staging)
        asyncio.run(inspect_journal(staging, config))
        _remove_journal(target)
        _move_journal(staging, target)
    finally:
        _remove_journal(staging)
    return asyncio.run(inspect_journal(target, config))
