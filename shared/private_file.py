"""Files only their owner may read (key files, the hub's secret, passwords, server configs):
written 0600 in one step, and refused when someone loosened their mode."""
from __future__ import annotations

import os
from pathlib import Path

PRIVATE_MODE = 0o600


def _write_private_tmp(path: Path, text: str) -> Path:
    """`text` in full, fsync'd, in a new 0600 file beside `path`: never readable by others, not
    even for an instant (the mode is set at creation)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)  # a leftover of a crashed start
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_MODE)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def create_private_file(path: Path, text: str) -> bool:
    """Write `text` to a new file at `path` with mode 0600, atomically: it is written in full to a
    private temporary file and linked into place, so two processes starting together never see a
    half-written file, and the loser of the race keeps the winner's. False when a file was
    already there (it is left as it was)."""
    tmp = _write_private_tmp(path, text)
    try:
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        return True
    finally:
        tmp.unlink(missing_ok=True)


def write_private_file(path: Path, text: str) -> None:
    """Write `text` to `path` with mode 0600, replacing what was there atomically: a reader sees
    the old content or the new, whole (a config a server may reload at any moment)."""
    tmp = _write_private_tmp(path, text)
    try:
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read_private_file(path: Path, what: str, error: type[Exception]) -> str:
    """The stripped text of a private file; raises `error` naming `what` when it cannot be read
    or others may read it."""
    try:
        mode = path.stat().st_mode & 0o777
        text = path.read_text().strip()
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror}") from exc
    if mode & 0o077:
        raise error(f"{what} {path} has mode {mode:o}; it must be 600 (chmod 600 {path})")
    return text
