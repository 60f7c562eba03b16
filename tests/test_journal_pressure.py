"""The journal under disk pressure (issue 16): the retention order, the free-space floor (a fake
filesystem reading, and a real size-capped tmpfs when root), loud refusal and its report to the
hub, all with a fake clock."""
from __future__ import annotations

import asyncio
import os
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Iterator

import msgspec
import pytest
from prometheus_client import REGISTRY

from edge.config import JournalSettings, load_edge_config
from edge.journal import Journal, JournalError, JournalFull
from edge.journal_pressure import DiskPolicy, DiskReading, RefusalTally, disk_cap, free_floor, kind_label
from edge.readiness import journal_check
from hub.alarms.classify import SYSTEM, TROUBLE, classify
from hub.alarms.describe import describe_event
from shared.bodies import BODY_TYPES, DemoTick, JournalRefused
from shared.bodies.robots import RobotTelemetry
from shared.clock import FakeClock
from shared.config import ConfigError
from shared.envelope import Envelope, Priority, decode_envelope, new_envelope
from shared.robots import Pose, Telemetry
from support.small_disk import small_disk

KIB = 1024


def _tick(clock: FakeClock, priority: Priority = Priority.LOW, n: int = 0) -> Envelope:
    return new_envelope("demo.tick", "test", priority, DemoTick(n), clock=clock)


def _sample(clock: FakeClock, n: int = 0) -> Envelope:
    body = RobotTelemetry(robot="RB-001", message_id=f"m{n}", sent_at=clock.now(),
                          telemetry=Telemetry(pose=Pose(x=1.5, y=n / 10), battery_pct=80.0, speed_mps=0.4))
    return new_envelope("robot.telemetry", "RB-001", Priority.LOW, body, clock=clock)


def _evicted(kind: str, priority: str, state: str) -> float:
    return REGISTRY.get_sample_value("vigil_journal_evicted_total",
                                     {"kind": kind, "priority": priority, "state": state}) or 0.0


def _refused() -> float:
    return REGISTRY.get_sample_value("vigil_journal_refused_total") or 0.0


def _seqs(path: Path) -> set[int]:
    """Every seq the journal file holds, read on a connection of its own (WAL: no waiting)."""
    conn = sqlite3.connect(path)
    try:
        return {row[0] for row in conn.execute("SELECT seq FROM journal")}
    finally:
        conn.close()


async def _open(path: Path, clock: FakeClock, max_bytes: int = 64 * KIB, disk: DiskPolicy | None = None) -> Journal:
    return await Journal.open(path, max_bytes=max_bytes, retention_s=3600, clock=clock, disk=disk)


async def _fill_with_alarms(journal: Journal, clock: FakeClock) -> list[int]:
    """Append HIGH rows until the journal refuses one; the seqs stored."""
    stored = []
    with pytest.raises(JournalFull):
        while True:
            stored.append(await journal.append(_tick(clock, Priority.HIGH)))
    return stored


async def test_eviction_order_samples_then_forwarded_then_low_then_normal_never_alarms(tmp_path: Path) -> None:
    """Every append past the cap evicts from the first tier that still has rows, oldest first:
    telemetry samples (even newer than everything else), forwarded rows, unforwarded LOW,
    unforwarded NORMAL; the unforwarded alarms stay. Each eviction is counted by kind and
    priority."""
    clock = FakeClock()
    path = tmp_path / "journal.db"
    journal = await _open(path, clock)
    forwarded = [await journal.append(_tick(clock)) for _ in range(40)]
    await journal.mark_forwarded("evt", forwarded[0], forwarded[-1])
    low = [await journal.append(_tick(clock)) for _ in range(40)]
    normal = [await journal.append(_tick(clock, Priority.NORMAL)) for _ in range(40)]
    alarms = [await journal.append(_tick(clock, Priority.CRITICAL)) for _ in range(20)]
    samples = [await journal.append(_sample(clock, i)) for i in range(40)]  # the newest, yet first to go
    tiers = [samples, forwarded, low, normal]
    before = {key: _evicted(*key) for key in (("robot.telemetry", "LOW", "unforwarded"), ("demo.tick", "LOW", "forwarded"),
                                              ("demo.tick", "LOW", "unforwarded"), ("demo.tick", "NORMAL", "unforwarded"),
                                              ("demo.tick", "CRITICAL", "unforwarded"))}
    pushed = 0
    while any(set(low) & _seqs(path)) or not set(normal) - _seqs(path):
        clock.advance(1)
        await journal.append(_tick(clock, Priority.NORMAL, pushed))
        pushed += 1
        assert pushed < 5000, "the journal never evicted the unforwarded LOW rows"
        held = _seqs(path)
        gone = [[s for s in tier if s not in held] for tier in tiers]
        for i, tier in enumerate(tiers):
            # Oldest first within a tier, and a tier only once every earlier tier is empty.
            assert gone[i] == tier[:len(gone[i])]
            if gone[i]:
                assert all(len(gone[j]) == len(tiers[j]) for j in range(i))
        assert set(alarms) <= held
        assert journal.total_bytes <= journal.max_bytes
    await journal.close()

    assert _evicted("robot.telemetry", "LOW", "unforwarded") - before[("robot.telemetry", "LOW", "unforwarded")] == 40
    assert _evicted("demo.tick", "LOW", "forwarded") - before[("demo.tick", "LOW", "forwarded")] == 40
    assert _evicted("demo.tick", "LOW", "unforwarded") - before[("demo.tick", "LOW", "unforwarded")] == 40
    assert _evicted("demo.tick", "NORMAL", "unforwarded") > before[("demo.tick", "NORMAL", "unforwarded")]
    assert _evicted("demo.tick", "CRITICAL", "unforwarded") == before[("demo.tick", "CRITICAL", "unforwarded")]
    status = journal.pressure_status()
    assert status["evicted_by_kind_priority"]["robot.telemetry"] == {"LOW": 40}
    assert status["evicted_by_kind_priority"]["demo.tick"]["LOW"] == 80
    assert "CRITICAL" not in status["evicted_by_kind_priority"]["demo.tick"]
    assert status["evicted_unforwarded"] == 80 + status["evicted_by_kind_priority"]["demo.tick"]["NORMAL"]


async def test_forwarded_telemetry_goes_before_older_forwarded_events(tmp_path: Path) -> None:
    clock = FakeClock()
    path = tmp_path / "journal.db"
    journal = await _open(path, clock)
    events = [await journal.append(_tick(clock, Priority.NORMAL)) for _ in range(30)]
    samples = [await journal.append(_sample(clock, i)) for i in range(30)]
    await journal.mark_forwarded("evt", events[0], samples[-1])
    while set(samples) & _seqs(path):
        await journal.append(_tick(clock, Priority.HIGH))
        assert set(events) <= _seqs(path), "a forwarded event went while samples were left"
    await journal.close()


async def test_pressure_state_holds_then_decays_with_the_clock(tmp_path: Path) -> None:
    clock = FakeClock()
    journal = await _open(tmp_path / "journal.db", clock, disk=DiskPolicy(hold_s=60))
    assert journal.pressure_status()["state"] == "ok"
    while journal.pressure_status()["state"] == "ok":
        await journal.append(_tick(clock))
    lost_at = clock.now()
    status = journal.pressure_status()
    assert status["state"] == "evicting" and status["since"] == lost_at.isoformat()
    assert REGISTRY.get_sample_value("vigil_journal_pressure") == 1
    clock.advance(59)
    assert journal.pressure_status()["state"] == "evicting"
    clock.advance(2)
    status = journal.pressure_status()
    assert status["state"] == "ok" and status["since"] == clock.now().isoformat()
    assert REGISTRY.get_sample_value("vigil_journal_pressure") == 0
    await journal.close()


async def test_full_of_alarms_refuses_loudly_and_reports_once_when_room_returns(tmp_path: Path) -> None:
    clock = FakeClock()
    journal = await _open(tmp_path / "journal.db", clock)
    stored = await _fill_with_alarms(journal, clock)
    first_at = clock.now()
    refused_before = _refused()
    clock.advance(30)
    for priority in (Priority.CRITICAL, Priority.CRITICAL, Priority.LOW):
        with pytest.raises(JournalFull):
            await journal.append(_tick(clock, priority))
    assert _refused() == refused_before + 3
    status = journal.pressure_status()
    assert status["state"] == "refusing"
    assert status["refused_by_priority"] == {"HIGH": 1, "CRITICAL": 2, "LOW": 1}
    assert status["unreported_refusals"] == 4
    assert (status["first_refused_at"], status["last_refused_at"]) == (first_at.isoformat(), clock.now().isoformat())
    assert REGISTRY.get_sample_value("vigil_journal_pressure") == 2

    # The link returns: the forwarder marks alarms forwarded, which makes room; the refusals are
    # journaled as one HIGH event on the alarm lane, before anything newer.
    await journal.mark_forwarded("alarm", stored[0], stored[9])
    report_seq = await journal.append(_tick(clock, Priority.CRITICAL)) - 1
    rows = [r for r in await journal.read_unforwarded("alarm", 0, 10_000, 10**9) if r.seq == report_seq]
    report = decode_envelope(rows[0].envelope)
    assert (report.kind, report.priority, report.source) == ("edge.journal.refused", Priority.HIGH, "journal")
    body = msgspec.json.decode(report.body, type=BODY_TYPES[report.kind])
    assert body == JournalRefused(refused={"HIGH": 1, "CRITICAL": 2, "LOW": 1}, first_at=first_at,
                                  last_at=first_at + timedelta(seconds=30), cap_bytes=64 * KIB, low_disk=False)
    status = journal.pressure_status()
    assert status["state"] == "ok" and status["unreported_refusals"] == 0
    # Once: more room and more appends journal no second report.
    await journal.mark_forwarded("alarm", stored[10], stored[-1])
    for _ in range(5):
        await journal.append(_tick(clock, Priority.HIGH))
    kinds = [decode_envelope(r.envelope).kind for r in await journal.read_unforwarded("alarm", 0, 10_000, 10**9)]
    assert kinds.count("edge.journal.refused") == 1
    await journal.close()


async def test_unreported_refusals_survive_a_restart_and_a_refused_report_is_no_refusal(tmp_path: Path) -> None:
    clock = FakeClock()
    path = tmp_path / "journal.db"
    journal = await _open(path, clock)
    stored = await _fill_with_alarms(journal, clock)
    await journal.close()

    journal = await _open(path, clock)  # still full: its report is refused, and waits
    assert journal.pressure_status()["unreported_refusals"] == 1
    refused_before = _refused()
    with pytest.raises(JournalFull):
        await journal.append(_tick(clock, Priority.CRITICAL))
    assert _refused() == refused_before + 1  # the alarm, not the report
    assert journal.pressure_status()["unreported_refusals"] == 2
    await journal.mark_forwarded("alarm", stored[0], stored[4])
    await journal.append(_tick(clock, Priority.NORMAL))  # after the report: it is committed by now
    await journal.close()

    journal = await _open(path, clock)
    reports = [decode_envelope(r.envelope) for r in await journal.read_unforwarded("alarm", 0, 10_000, 10**9)]
    reports = [r for r in reports if r.kind == "edge.journal.refused"]
    assert len(reports) == 1
    assert msgspec.json.decode(reports[0].body, type=JournalRefused).refused == {"HIGH": 1, "CRITICAL": 1}
    assert journal.pressure_status()["unreported_refusals"] == 0
    await journal.close()


class _FakeFilesystem:
    """os.statvfs for one filesystem of `size` bytes whose free space a test sets."""

    def __init__(self, size: int, free: int) -> None:
        self.size, self.free, self.calls = size, free, 0

    def __call__(self, folder: str) -> SimpleNamespace:
        self.calls += 1
        return SimpleNamespace(f_bavail=self.free // 4096, f_frsize=4096, f_blocks=self.size // 4096)


async def test_a_filesystem_below_its_floor_evicts_samples_first_and_stops_growing(tmp_path: Path) -> None:
    clock = FakeClock()
    path = tmp_path / "journal.db"
    fs = _FakeFilesystem(size=1 << 30, free=500 << 20)
    policy = DiskPolicy(min_free_bytes=100 << 20, check_s=5, statvfs=fs)
    journal = await _open(path, clock, max_bytes=1 << 30, disk=policy)
    samples = [await journal.append(_sample(clock, i)) for i in range(300)]
    alarms = [await journal.append(_tick(clock, Priority.HIGH)) for _ in range(50)]
    checks = fs.calls
    assert checks <= 2, "the filesystem is read on every append"  # 350 small appends: within check_bytes, no time passed
    assert journal.pressure_status()["low_disk"] is False

    # Someone else fills the disk to 40 KiB under the floor: within check_s the journal notices,
    # and makes the file's own pages hold what comes next.
    fs.free = (100 << 20) - 40 * KIB
    await journal.append(_tick(clock))
    assert len(_seqs(path)) == 351  # not yet looked again
    clock.advance(5)
    await journal.append(_tick(clock))
    status = journal.pressure_status()
    assert status["low_disk"] is True and status["fs_free_bytes"] == fs.free and status["min_free_bytes"] == 100 << 20
    held = _seqs(path)
    assert set(alarms) <= held
    evicted = [s for s in samples if s not in held]
    assert evicted and evicted == samples[:len(evicted)]
    assert status["evicted_by_kind_priority"] == {"robot.telemetry": {"LOW": len(evicted)}}
    # The cap then holds steady while the disk stays where it is: no runaway eviction.
    cap = status["cap_bytes"]
    for _ in range(10):
        clock.advance(5)
        await journal.append(_tick(clock))
    assert journal.pressure_status()["cap_bytes"] >= cap - 2 * KIB
    assert set(alarms) <= _seqs(path)

    fs.free = 400 << 20
    clock.advance(5)
    await journal.append(_tick(clock))
    status = journal.pressure_status()
    assert status["low_disk"] is False and status["cap_bytes"] == 1 << 30
    await journal.close()


def test_disk_cap_and_floor_are_pure_arithmetic() -> None:
    assert free_floor(64 << 20, 0, 1 << 40) == 64 << 20
    assert free_floor(64 << 20, 5, 10 << 30) == 512 << 20
    reading = DiskReading(fs_free=900, fs_size=10_000, db_file=3_000, db_live=2_000)
    assert disk_cap(reading, floor=500, payload=1_000) is None  # above the floor: no limit
    # 600 short of a 1500 floor: the file may hold 2400 bytes of pages; 2000 are live, so the
    # payload may grow by 400 pages' worth at 2 bytes of page per byte.
    assert disk_cap(reading, floor=1_500, payload=1_000) == 1_200
    assert disk_cap(reading, floor=2_900, payload=1_000) == 500  # 2000 short: shrink to half
    assert disk_cap(reading, floor=10_000, payload=1_000) == 0
    assert kind_label("satel.zone.violation") == "satel.zone" and kind_label("robot.telemetry") == "robot.telemetry"
    assert kind_label("demo") == "demo"
    tally = RefusalTally()
    at = datetime(2026, 1, 1, tzinfo=timezone.utc)
    tally.add("HIGH", at)
    tally.add("CRITICAL", at + timedelta(seconds=5))
    again = RefusalTally.from_meta(tally.to_meta())
    assert (again.by_priority, again.first_at, again.last_at) == (tally.by_priority, at, at + timedelta(seconds=5))


async def test_below_a_floor_someone_else_filled_alarms_use_its_reserve_and_the_rest_waits(tmp_path: Path) -> None:
    """Another program's files took the disk under the floor while the journal was small: no
    eviction can give that space back, so the cap of the journal's own pages refuses LOW and
    NORMAL rows; a CRITICAL/HIGH alarm still goes into the lower half of the floor (the reserve),
    and is refused only once the filesystem is down to half the floor (edge/journal.py
    Journal._alarm_reserve)."""
    clock = FakeClock()
    path = tmp_path / "journal.db"
    floor = 8 << 20
    fs = _FakeFilesystem(size=1 << 30, free=floor - (1 << 20))
    journal = await _open(path, clock, max_bytes=1 << 30, disk=DiskPolicy(min_free_bytes=floor, check_s=1, statvfs=fs))
    kept = [await journal.append(_tick(clock, Priority.CRITICAL))]
    clock.advance(1)  # the next append looks at the filesystem again, now with rows to cap
    kept.append(await journal.append(_tick(clock, Priority.HIGH)))
    assert journal.pressure_status()["low_disk"] is True
    # Below the floor each commit folds the WAL back into the file: its growth would eat the reserve.
    assert Path(f"{path}-wal").stat().st_size == 0
    with pytest.raises(JournalFull):
        await journal.append(_tick(clock, Priority.NORMAL))
    # In one group the kept rows stay a prefix, so no seq is skipped: a tick queued ahead of an
    # alarm rides into the reserve with it; one queued after it is refused.
    results = await asyncio.gather(journal.append(_tick(clock)), journal.append(_tick(clock, Priority.HIGH)),
                                   journal.append(_tick(clock, Priority.NORMAL)), return_exceptions=True)
    assert isinstance(results[0], int) and isinstance(results[1], int) and isinstance(results[2], JournalFull), results
    kept += results[:2]
    assert _seqs(path) == set(kept) and kept == list(range(kept[0], kept[0] + 4))
    fs.free = floor // 2 - 4096  # the reserve is spent: now alarms are refused too, loudly
    clock.advance(1)
    with pytest.raises(JournalFull):
        await journal.append(_tick(clock, Priority.CRITICAL))
    assert journal.pressure_status()["state"] == "refusing"
    # The agent's /readyz names the disk, not a journal full of alarms.
    assert journal_check(journal).startswith("refusing appends: the disk is below the journal's free-space floor")
    await journal.close()


@pytest.fixture
def small_filesystem(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB tmpfs: a real filesystem that fills up."""
    with small_disk(tmp_path / "small", 16) as where:
        yield where


async def test_a_real_size_capped_filesystem_keeps_every_alarm(small_filesystem: Path) -> None:
    """About 20 MiB of telemetry, events and alarms (on disk) into a 16 MiB filesystem with a
    2 MiB floor (the WAL takes up to 4 MiB of it): no append fails, the samples went first, every
    alarm is kept, and most of the floor stays free."""
    clock = FakeClock()
    path = small_filesystem / "journal.db"
    journal = await _open(path, clock, max_bytes=1 << 30, disk=DiskPolicy(min_free_bytes=2 << 20, check_s=0.5))
    alarms = []
    for minute in range(720):
        await asyncio.gather(*(journal.append(_sample(clock, minute * 100 + i)) for i in range(60)),
                             journal.append(_tick(clock, Priority.NORMAL, minute)))
        alarms.append(await journal.append(_tick(clock, Priority.CRITICAL, minute)))
        clock.advance(60)
    status = journal.pressure_status()
    assert status["low_disk"] is True and status["evicted_by_kind_priority"]["robot.telemetry"]["LOW"] > 0
    assert set(alarms) <= _seqs(path)
    st = os.statvfs(small_filesystem)
    assert st.f_bavail * st.f_frsize > 1 << 20
    await journal.close()


async def test_without_a_timely_look_a_full_disk_fails_appends_with_the_real_reason(small_filesystem: Path) -> None:
    """The floor is what keeps room: looked at only once, the journal fills the disk and its
    appends fail naming the full disk (SQLite rolled the commit back itself; a second ROLLBACK
    used to hide the reason)."""
    clock = FakeClock()
    policy = DiskPolicy(min_free_bytes=2 << 20, check_s=1e9, check_every_bytes=1 << 40)
    journal = await _open(small_filesystem / "journal.db", clock, max_bytes=1 << 30, disk=policy)
    with pytest.raises(JournalError, match="database or disk is full"):
        for minute in range(720):
            await asyncio.gather(*(journal.append(_sample(clock, minute * 100 + i)) for i in range(60)))
    await journal.close()


def test_journal_settings_validate_and_map_to_the_policy() -> None:
    settings = JournalSettings(min_free_bytes=1 << 20, min_free_percent=2.5, disk_check_s=1.0, pressure_hold_s=30)
    assert settings.disk_policy() == DiskPolicy(min_free_bytes=1 << 20, min_free_percent=2.5, check_s=1.0, hold_s=30)
    assert JournalSettings().disk_policy().enabled
    for bad in ({"min_free_bytes": -1}, {"min_free_percent": 60}, {"disk_check_s": 0}, {"pressure_hold_s": -1}):
        with pytest.raises(ConfigError, match="journal"):
            load_edge_config(env={}, overrides={"edge_id": "site-1", "journal": bad})


def test_the_hub_shows_a_refusal_as_a_system_alarm() -> None:
    body = {"refused": {"CRITICAL": 2, "HIGH": 1}, "first_at": "2026-01-01T00:00:00Z",
            "last_at": "2026-01-01T00:05:00Z", "cap_bytes": 65536, "low_disk": True}
    meaning = classify("edge.journal.refused", body)
    assert meaning.opens == SYSTEM and meaning.restores is None and meaning.opens != TROUBLE
    assert describe_event("edge.journal.refused", body) == (
        "Edge journal full (disk low): 2 CRITICAL, 1 HIGH refused and lost between 2026-01-01T00:00:00Z and "
        "2026-01-01T00:05:00Z")
    # A malformed body still reads as words, never an error.
    assert describe_event("edge.journal.refused", {"refused": "x"}) == "Edge journal full: events refused and lost"
