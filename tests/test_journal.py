"""The edge journal: durable appends, ordered reads, marks, retention and the size cap."""
from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from edge.journal import AlreadyJournaled, Journal, JournalError, JournalFull
from shared.bodies import DemoTick
from shared.clock import FakeClock
from shared.envelope import Envelope, Priority, decode_envelope, new_envelope
from shared.signing import create_key_file


def _env(n: int, priority: Priority = Priority.LOW) -> Envelope:
    return new_envelope("demo.tick", "test", priority, DemoTick(n))


async def _open(path: Path, clock: FakeClock | None = None, max_bytes: int = 10**9) -> Journal:
    return await Journal.open(path / "journal.db", max_bytes=max_bytes, retention_s=3600, clock=clock or FakeClock())


async def test_append_assigns_gap_free_seqs_and_survives_reopen(tmp_path: Path) -> None:
    journal = await _open(tmp_path)
    seqs = await asyncio.gather(*(journal.append(_env(i)) for i in range(50)))
    assert sorted(seqs) == list(range(1, 51))
    await journal.close()

    journal = await _open(tmp_path)
    assert await journal.append(_env(99)) == 51
    rows = await journal.read_unforwarded("evt", 0, 1000, 10**9)
    assert [r.seq for r in rows] == list(range(1, 52))
    # The stored bytes are the envelope with its seq stamped in.
    assert decode_envelope(rows[0].envelope).seq == 1
    assert journal.unforwarded == {"evt": 51, "alarm": 0}
    await journal.close()


async def test_an_id_journaled_already_is_refused_alone_and_its_group_commits(tmp_path: Path) -> None:
    """Ids are unique. A repeat (an earlier row's id, or twice in one group commit) fails only its
    own append: a CRITICAL alarm committed in the same group is stored, and seqs stay gap-free."""
    journal = await _open(tmp_path)
    first = _env(1)
    assert await journal.append(first) == 1
    alarm = _env(2, Priority.CRITICAL)
    twin = _env(3)
    results = await asyncio.gather(journal.append(first), journal.append(twin), journal.append(alarm),
                                   journal.append(twin), journal.append(_env(4)), return_exceptions=True)
    assert isinstance(results[0], AlreadyJournaled) and isinstance(results[3], AlreadyJournaled)
    assert results[1:3] == [2, 3] and results[4] == 4
    assert await journal.has_event(str(alarm.id))
    rows = await journal.read_unforwarded("evt", 0, 1000, 10**9) + await journal.read_unforwarded("alarm", 0, 1000, 10**9)
    assert sorted(r.seq for r in rows) == [1, 2, 3, 4]
    assert await journal.append(_env(5)) == 5
    await journal.close()


async def test_appended_rows_are_durable_against_a_killed_process(tmp_path: Path) -> None:
    """A child appends and is SIGKILLed right after append returns: the row is on disk."""
    script = f"""
import asyncio, os, signal, sys
from edge.journal import Journal
from shared.bodies import DemoTick
from shared.envelope import Priority, new_envelope
async def main():
    j = await Journal.open(__import__('pathlib').Path({str(tmp_path)!r}) / 'journal.db', max_bytes=10**9, retention_s=3600)
    seq = await j.append(new_envelope('demo.tick', 't', Priority.HIGH, DemoTick(1)))
    print(seq, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
asyncio.run(main())
"""
    result = subprocess.run([os.sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == -9, result.stderr
    assert result.stdout.strip() == "1"
    journal = await _open(tmp_path)
    rows = await journal.read_unforwarded("alarm", 0, 10, 10**9)
    assert [r.seq for r in rows] == [1]
    await journal.close()


async def test_lanes_split_by_priority_and_reads_respect_limits(tmp_path: Path) -> None:
    journal = await _open(tmp_path)
    for i, prio in enumerate([Priority.LOW, Priority.CRITICAL, Priority.NORMAL, Priority.HIGH, Priority.LOW]):
        await journal.append(_env(i, prio))
    assert [r.seq for r in await journal.read_unforwarded("alarm", 0, 10, 10**9)] == [2, 4]
    assert [r.seq for r in await journal.read_unforwarded("evt", 0, 10, 10**9)] == [1, 3, 5]
    assert [r.seq for r in await journal.read_unforwarded("evt", 1, 10, 10**9)] == [3, 5]
    assert [r.seq for r in await journal.read_unforwarded("evt", 0, 2, 10**9)] == [1, 3]
    # A byte cap smaller than one row still returns that row, never nothing.
    assert [r.seq for r in await journal.read_unforwarded("evt", 0, 10, 1)] == [1]
    await journal.close()


async def test_mark_forwarded_and_prune_after_retention(tmp_path: Path) -> None:
    clock = FakeClock()
    journal = await _open(tmp_path, clock)
    for i in range(10):
        await journal.append(_env(i))
    assert await journal.mark_forwarded("evt", 1, 6) == 6
    assert await journal.mark_forwarded("evt", 1, 6) == 0  # idempotent
    assert journal.unforwarded["evt"] == 4
    assert [r.seq for r in await journal.read_unforwarded("evt", 0, 100, 10**9)] == [7, 8, 9, 10]
    assert await journal.prune() == 0  # not old enough yet
    clock.advance(3601)
    assert await journal.prune() == 6
    await journal.close()
    # Seqs never repeat, even once every row is gone.
    journal = await _open(tmp_path, clock)
    await journal.mark_forwarded("evt", 7, 10)
    clock.advance(3601)
    await journal.prune()
    await journal.close()
    journal = await _open(tmp_path, clock)
    assert await journal.append(_env(0)) == 11
    await journal.close()


async def test_wait_for_rows_wakes_on_append(tmp_path: Path) -> None:
    journal = await _open(tmp_path)
    waiter = asyncio.create_task(journal.wait_for_rows("alarm", 0))
    await journal.append(_env(1))  # other lane: must not wake it
    await asyncio.sleep(0)
    assert not waiter.done()
    await journal.append(_env(2, Priority.CRITICAL))
    await asyncio.wait_for(waiter, 5)
    await journal.close()


def _evicted(state: str) -> float:
    """Rows evicted in `state` ("forwarded", or "unforwarded LOW"/"unforwarded NORMAL"), over every kind."""
    forwarded, _, priority = state.partition(" ")
    return sum(sample.value for metric in REGISTRY.collect() if metric.name == "vigil_journal_evicted"
               for sample in metric.samples if sample.name == "vigil_journal_evicted_total"
               and sample.labels["state"] == forwarded and (not priority or sample.labels["priority"] == priority))


async def test_size_cap_evicts_forwarded_first_then_low_and_never_alarms(tmp_path: Path) -> None:
    journal = await _open(tmp_path, max_bytes=65536)
    # Fill with: forwarded LOW, unforwarded LOW, unforwarded CRITICAL.
    seqs_fwd = [await journal.append(_env(i)) for i in range(100)]
    await journal.mark_forwarded("evt", seqs_fwd[0], seqs_fwd[-1])
    low = [await journal.append(_env(i)) for i in range(100)]
    crit = [await journal.append(_env(i, Priority.CRITICAL)) for i in range(100)]
    before = {s: _evicted(s) for s in ("forwarded", "unforwarded LOW")}
    # Keep appending NORMAL until something unforwarded must go.
    while journal.total_bytes + 400 < journal.max_bytes:
        await journal.append(_env(0, Priority.NORMAL))
    for _ in range(150):
        await journal.append(_env(0, Priority.NORMAL))
    assert _evicted("forwarded") - before["forwarded"] == 100
    assert _evicted("unforwarded LOW") - before["unforwarded LOW"] > 0
    remaining_alarm = [r.seq for r in await journal.read_unforwarded("alarm", 0, 1000, 10**9)]
    assert remaining_alarm == crit
    remaining_low = [r.seq for r in await journal.read_unforwarded("evt", 0, 10000, 10**9) if r.seq in set(low)]
    assert remaining_low == sorted(remaining_low)  # oldest went first
    assert journal.total_bytes <= journal.max_bytes
    await journal.close()


async def test_a_journal_full_of_unforwarded_alarms_refuses_loudly(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    journal = await _open(tmp_path, max_bytes=65536)
    stored = []
    with pytest.raises(JournalFull):
        while True:
            stored.append(await journal.append(_env(0, Priority.HIGH)))
    refused_before = REGISTRY.get_sample_value("vigil_journal_refused_total") or 0
    with pytest.raises(JournalFull):
        await journal.append(_env(0, Priority.CRITICAL))
    assert (REGISTRY.get_sample_value("vigil_journal_refused_total") or 0) == refused_before + 1
    assert any("JOURNAL FULL" in r.getMessage() for r in caplog.records)
    # Every stored alarm is still there, and a refused seq is reused (no gap).
    rows = await journal.read_unforwarded("alarm", 0, 10000, 10**9)
    assert [r.seq for r in rows] == stored == list(range(1, len(stored) + 1))
    await journal.mark_forwarded("alarm", 1, 10)
    # Room returned: the report of the refusal (edge.journal.refused, tests/test_journal_pressure.py)
    # is journaled first, then the new alarm.
    assert await journal.append(_env(0, Priority.CRITICAL)) == len(stored) + 2
    await journal.close()


def _read_only_dir(tmp_path: Path) -> Path:
    """A folder nothing can write to, holding an edge key (an enrolled box whose disk went
    read-only: the journal, not the key, is what fails)."""
    target = tmp_path / "ro"
    target.mkdir()
    if os.geteuid() != 0:
        create_key_file(target / "edge.key")
        target.chmod(0o555)
        return target
    # Root ignores permission bits; a read-only mount is what a root process cannot write to.
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(target)], capture_output=True)
    if result.returncode != 0:
        pytest.skip(f"cannot make a read-only folder as root here: {result.stderr.decode().strip()}")
    create_key_file(target / "edge.key")
    subprocess.run(["mount", "-o", "remount,ro", str(target)], check=True, capture_output=True)
    return target


@pytest.fixture
def read_only_dir(tmp_path: Path):  # type: ignore[no-untyped-def]
    target = _read_only_dir(tmp_path)
    yield target
    if os.geteuid() == 0:
        subprocess.run(["umount", str(target)], capture_output=True)


async def test_read_only_folder_fails_at_open_with_a_clear_message(read_only_dir: Path) -> None:
    with pytest.raises(JournalError, match=r"journal folder .* is not writable"):
        await Journal.open(read_only_dir / "journal.db", max_bytes=10**9, retention_s=3600)


def test_edge_agent_on_a_read_only_folder_exits_with_the_reason(read_only_dir: Path) -> None:
    env = {**os.environ, "VIGIL_EDGE_EDGE_ID": "site-1", "VIGIL_EDGE_DATA_DIR": str(read_only_dir)}
    result = subprocess.run([os.sys.executable, "-m", "edge", "run"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "is not writable" in result.stderr and str(read_only_dir) in result.stderr


async def test_a_journal_has_one_epoch_for_life_and_a_new_journal_a_new_one(tmp_path: Path) -> None:
    """The epoch is made with the journal, survives reopening, and a wiped journal gets a new one
    starting at seq 1 (issue 9 §2)."""
    path = tmp_path / "journal.db"
    j = await Journal.open(path, max_bytes=1 << 20, retention_s=60)
    first = j.epoch
    assert first.start == 1 and len(first.id) == 32
    await j.append(new_envelope("demo.tick", "x", Priority.LOW, DemoTick(1)))
    await j.close()
    j = await Journal.open(path, max_bytes=1 << 20, retention_s=60)
    assert j.epoch == first
    await j.close()
    for leftover in tmp_path.iterdir():
        leftover.unlink()
    j = await Journal.open(path, max_bytes=1 << 20, retention_s=60)
    assert j.epoch.id != first.id and j.epoch.start == 1
    assert await j.append(new_envelope("demo.tick", "x", Priority.LOW, DemoTick(2))) == 1
    await j.close()


async def test_a_journal_from_before_epochs_starts_its_epoch_at_its_first_unforwarded_row(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    j = await Journal.open(path, max_bytes=1 << 20, retention_s=60)
    for n in range(5):
        await j.append(new_envelope("demo.tick", "x", Priority.LOW, DemoTick(n)))
    await j.mark_forwarded("evt", 1, 3)
    await j.close()
    with sqlite3.connect(path) as db:  # what a journal written before epochs existed looks like
        db.execute("DELETE FROM journal_epoch")
    j = await Journal.open(path, max_bytes=1 << 20, retention_s=60)
    assert j.epoch.start == 4
    await j.close()
