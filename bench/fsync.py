"""The disk's floor under every durable latency: p99 of a bare 8 KiB write + fdatasync.

Each hub commit waits for PostgreSQL to write its WAL and fdatasync it (`wal_sync_method` is
fdatasync on Linux), and each edge journal append waits for SQLite's sync, so neither latency
figure can beat this disk's sync latency; run_all divides them by this figure of the same run
(`latency_ratio`, `api_ratio`) to tell the code's share from the machine's.

The loop writes 8 KiB (one WAL page) at the next offset of a preallocated 16 MiB file (one WAL
segment, zero-filled and synced first, as PostgreSQL prepares its segments) and fdatasyncs it,
for 10 s (1 s with --quick); one sample is the write plus its fdatasync, what a commit waits for.
The file being preallocated, a sync flushes the data page, not a new file size.

Where: PostgreSQL's data directory, asked from the local server (127.0.0.1:5432, the server
provisioning.scratch_db uses first; `SHOW data_directory` needs a superuser, hence `postgres`),
when this process may write there; otherwise the temporary directory, where the embedded
PostgreSQL the benchmarks fall back to keeps its data. The path used is printed.

What limits it: the device and its write cache, the filesystem's journal, and other processes'
I/O on a shared machine, whose bursts a p99 over 10 s catches.

    BENCH fsync_p99_ms=<p99 of write + fdatasync> ms target=5 better=lower
"""
from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

import asyncpg

from _rig import emit, percentile, run_main

# A disk syncing within 5 ms at p99 leaves the latency (50 ms) and API (25 ms) targets 10 and 5
# syncs of room; run_all derives the ratio targets from these targets.
TARGET_MS = 5.0
LOCAL_SUPERUSER_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
PAGE = 8 * 1024  # PostgreSQL's WAL page
SEGMENT = 16 * 1024 * 1024  # PostgreSQL's default WAL segment


async def data_directory() -> tuple[Path | None, str]:
    """The local PostgreSQL's data directory, or None and why it cannot be used."""
    try:
        conn = await asyncpg.connect(LOCAL_SUPERUSER_DSN, timeout=3)
    except (OSError, asyncpg.PostgresError, asyncio.TimeoutError) as exc:
        return None, f"no local PostgreSQL to ask ({type(exc).__name__}: {exc})"
    try:
        return Path(await conn.fetchval("SHOW data_directory")), ""
    except asyncpg.PostgresError as exc:
        return None, f"SHOW data_directory refused ({exc})"
    finally:
        await conn.close()


def open_preallocated(folder: Path) -> tuple[int, Path]:
    """A new SEGMENT-sized, zero-filled, synced file in `folder`; its fd and path."""
    fd, name = tempfile.mkstemp(prefix="vigil-bench-fsync-", dir=folder)
    try:
        zeros = bytes(1024 * 1024)
        for _ in range(SEGMENT // len(zeros)):
            os.write(fd, zeros)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(name)
        raise
    return fd, Path(name)


def sync_loop(fd: int, seconds: float) -> list[float]:
    """Write PAGE and fdatasync it at successive offsets, wrapping in the segment, for `seconds`;
    the milliseconds each took."""
    page = os.urandom(PAGE)
    samples: list[float] = []
    offset = 0
    end = time.perf_counter() + seconds
    while (started := time.perf_counter()) < end:
        os.pwrite(fd, page, offset)
        os.fdatasync(fd)
        samples.append((time.perf_counter() - started) * 1000)
        offset = (offset + PAGE) % SEGMENT
    return samples


def open_file(data_dir: Path | None, why_not: str) -> tuple[int, Path]:
    """The preallocated file: in the data directory when this process may write there, else in
    the temporary directory (saying why)."""
    if data_dir is not None:
        try:
            return open_preallocated(data_dir)
        except OSError as exc:
            why_not = f"{data_dir} is not writable ({exc.strerror})"
    print(f"fsync: {why_not}; using the temporary directory, where the embedded PostgreSQL keeps its data")
    return open_preallocated(Path(tempfile.gettempdir()))


async def main(quick: bool) -> None:
    fd, path = open_file(*await data_directory())
    try:
        device = os.fstat(fd).st_dev
        samples = sync_loop(fd, 1.0 if quick else 10.0)
    finally:
        os.close(fd)
        path.unlink()
    ordered = sorted(samples)
    emit("fsync_p99_ms", percentile(ordered, 99), "ms", TARGET_MS, "lower", decimals=3)
    print(f"fsync: {len(ordered)} syncs of {PAGE // 1024} KiB on {path} (device {device:#x}); "
          f"p50 {percentile(ordered, 50):.3f} ms, max {ordered[-1]:.3f} ms")


if __name__ == "__main__":
    sys.exit(run_main(__doc__ or "", main))
