"""A real filesystem that fills up: a size-capped tmpfs mounted for one test. Mounting needs root;
without it (or where mount is refused) the test is skipped with the reason."""
from __future__ import annotations

import os
import subprocess
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest


@contextmanager
def small_disk(where: Path, size_mib: int) -> Iterator[Path]:
    """`where` (made here) as a tmpfs of `size_mib` MiB, unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("a size-capped filesystem needs root to mount a tmpfs; the fake-filesystem tests cover the policy")
    where.mkdir(parents=True)
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mib}m", "tmpfs", str(where)],
                            capture_output=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.decode().strip()}")
    try:
        yield where
    finally:
        # Lazy: a failed test, or a process it started, may still hold files open there.
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def fill_to(path: Path, free_bytes: int) -> int:
    """Write `path` (a ballast file: another program's log) until its filesystem has about
    `free_bytes` left; returns the ballast's size."""
    st = os.statvfs(path.parent)
    size = max(0, st.f_bavail * st.f_frsize - free_bytes)
    with open(path, "wb") as f:
        f.write(b"\0" * size)
        f.flush()
        os.fsync(f.fileno())
    return size
