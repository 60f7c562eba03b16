"""Journal replication with Litestream (issue 16): real litestream, real nats-servers and hub.

Replicate; a replica that falls behind is visible (Litestream frozen, Litestream killed and
restarted); SIGKILL the box, delete its data dir, restore onto a fresh one, and the rows it had
not forwarded reach the hub exactly once."""
from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import msgspec
import nats
import nats.js.errors
import pytest
from nats.js.api import DiscardPolicy

from edge.config import EdgeConfig, ReplicationSettings, load_edge_config
from edge.journal import Journal
from edge.replication import (HubReplicaLogin, ReplicaPosition, Replicator, ensure_hub_bucket, hub_replica_login,
                               litestream_config, newest_file_replica_time, parse_ltx_listing, replica_lag)
from edge.restore import RestoreError, replica_url, restore_journal
from hub.ingest.edge_keys import add_edge
from shared.bodies import DemoTick
from shared.config import ConfigError
from shared.envelope import Priority, new_envelope
from shared import subjects
from shared.signing import create_key_file
from support.topology import DEFAULT_EDGE, Topology
from support.waiting import wait_until


def _settings(replica: Path, **extra: object) -> ReplicationSettings:
    values: dict = {"enabled": True, "kind": "file", "path": str(replica), "sync_interval_s": 0.2,
                    "probe_interval_s": 0.2, "lagging_after_s": 1.5, **extra}
    return ReplicationSettings(**values)


async def _append(journal: Journal, n: int, priority: Priority = Priority.LOW) -> None:
    await asyncio.gather(*(journal.append(new_envelope("demo.tick", "test", priority, DemoTick(i)))
                           for i in range(n)))


# units


def test_config_refuses_unknown_and_incomplete_replicas() -> None:
    with pytest.raises(ConfigError, match="must be one of hub, file, s3"):
        load_edge_config(env={}, overrides={"edge_id": "e1", "replication": {"kind": "nats"}})
    with pytest.raises(ConfigError, match="absolute folder"):
        load_edge_config(env={}, overrides={"edge_id": "e1", "replication": {"enabled": True, "kind": "file",
                                                                              "path": "rel"}})
    with pytest.raises(ConfigError, match="s3://"):
        load_edge_config(env={}, overrides={"edge_id": "e1", "replication": {"enabled": True, "kind": "s3"}})
    # The default replica is the hub's: only an enrolled box has the login for it.
    with pytest.raises(ConfigError, match="needs an enrolled box"):
        load_edge_config(env={}, overrides={"edge_id": "e1", "replication": {"enabled": True}})
    config = load_edge_config(env={"VIGIL_EDGE_EDGE_ID": "e1", "VIGIL_EDGE_REPLICATION_ENABLED": "true",
                                   "VIGIL_EDGE_REPLICATION_KIND": "file", "VIGIL_EDGE_REPLICATION_PATH": "/mnt/replica"})
    assert config.replication.enabled and config.replication.path == "/mnt/replica"


def test_litestream_config_has_one_replica_per_kind(tmp_path: Path) -> None:
    import json
    file_cfg = json.loads(litestream_config(_settings(tmp_path / "r"), tmp_path / "journal.db"))
    assert file_cfg["dbs"][0]["replica"] == {"type": "file", "path": str(tmp_path / "r"), "sync-interval": "200ms"}
    s3 = ReplicationSettings(enabled=True, kind="s3", url="s3://bucket/edge-1", endpoint="http://minio:9000")
    s3_cfg = json.loads(litestream_config(s3, tmp_path / "journal.db"))
    assert s3_cfg["dbs"][0]["replica"]["url"] == "s3://bucket/edge-1"
    assert s3_cfg["dbs"][0]["replica"]["endpoint"] == "http://minio:9000"
    hub = ReplicationSettings(enabled=True, kind="hub")
    login = HubReplicaLogin("nats://127.0.0.1:4223", "s3cret")
    hub_text = litestream_config(hub, tmp_path / "journal.db", login)
    assert json.loads(hub_text)["dbs"][0]["replica"] == {
        "type": "nats", "url": "nats://127.0.0.1:4223/journal", "username": "litestream",
        "password": "${VIGIL_LITESTREAM_NATS_PASSWORD}", "sync-interval": "1000ms"}
    assert "s3cret" not in hub_text and login.env()["VIGIL_LITESTREAM_NATS_PASSWORD"] == "s3cret"


def test_lag_is_zero_only_when_the_replica_holds_the_last_change() -> None:
    at = ReplicaPosition(txid=7, at=1000.0)
    assert replica_lag(1000.9, at, since=0.0, now=1005.0, whole_seconds=True) == 0.0  # same whole second
    assert replica_lag(1000.9, at, since=0.0, now=1005.0) == 5.0  # precise times: the change is newer
    assert replica_lag(1001.2, at, since=0.0, now=1010.0) == 10.0  # changes since: time since the replica moved
    assert replica_lag(1001.2, None, since=990.0, now=1010.0) == 20.0  # never replicated: since the start
    assert replica_lag(None, None, since=0.0, now=10.0) == 0.0  # no journal yet


def test_ltx_listing_parses_and_refuses_garbage() -> None:
    listing = ('[{"level": 0, "min_txid": "0000000000000001", "max_txid": "000000000000000a", "size": 9, '
               '"timestamp": "2026-01-01T00:00:05Z"}, {"level": 1, "min_txid": "0000000000000001", '
               '"max_txid": "0000000000000002", "size": 9, "timestamp": "2026-01-01T00:00:01Z"}]')
    newest = parse_ltx_listing(listing)
    assert newest is not None and newest.txid == 10
    assert parse_ltx_listing("[]") is None
    for bad in ('{"x": 1}', '[{"max_txid": "zz", "timestamp": "2026-01-01T00:00:01Z"}]', "[1]", "not json"):
        with pytest.raises((ValueError, KeyError)):
            parse_ltx_listing(bad)


def test_restore_sources(tmp_path: Path) -> None:
    config = load_edge_config(env={}, overrides={"edge_id": "e1", "data_dir": str(tmp_path / "edge")})
    with pytest.raises(RestoreError, match="needs an enrolled box"):
        restore_journal(config, "hub")
    with pytest.raises(RestoreError, match="must be hub, file"):
        replica_url("http://x/y", config)
    with pytest.raises(RestoreError, match="names no replica"):
        replica_url("config", config)
    assert replica_url("file:///mnt/r", config) == "file:///mnt/r"


# against a real Litestream


async def test_replicates_and_a_frozen_or_killed_litestream_is_visible(tmp_path: Path) -> None:
    journal_path = tmp_path / "edge" / "journal.db"
    journal = await Journal.open(journal_path, max_bytes=64 * 1024 * 1024, retention_s=3600)
    replicator = Replicator(_settings(tmp_path / "replica"), journal_path, tmp_path / "edge" / "litestream")
    stop = asyncio.Event()
    task = asyncio.create_task(replicator.run(stop))
    try:
        await _append(journal, 50)
        await wait_until(lambda: replicator.position is not None and replicator.status()["state"] == "ok"
                         and replicator.lag_s == 0.0, timeout=20, what="the replica to catch up")

        # Frozen (alive, not syncing): the journal moves on, the replica does not; the lag grows.
        replicator.process.send_signal(signal.SIGSTOP)
        await _append(journal, 10)
        await wait_until(lambda: replicator.status()["state"] == "lagging", timeout=20, what="a lagging replica")
        first_lag = replicator.lag_s
        await wait_until(lambda: replicator.lag_s > first_lag + 0.5, timeout=10, what="the lag to grow")
        replicator.process.send_signal(signal.SIGCONT)
        await wait_until(lambda: replicator.lag_s == 0.0, timeout=20, what="the replica to catch up again")

        # Killed: down, then restarted by the agent, and caught up.
        replicator.process.send_signal(signal.SIGKILL)
        await wait_until(lambda: replicator.restarts == 1, timeout=10, what="litestream restarted")
        assert "exited" in str(replicator.status()["last_error"])
        await _append(journal, 10)
        await wait_until(lambda: replicator.status()["state"] == "ok" and replicator.lag_s == 0.0
                         and replicator.process.running(), timeout=20, what="the restarted litestream to catch up")
    finally:
        stop.set()
        await task
        await journal.close()
    assert not replicator.process.running()


async def test_restore_refuses_an_existing_journal_and_a_missing_replica(tmp_path: Path) -> None:
    config = load_edge_config(env={}, overrides={"edge_id": "e1", "data_dir": str(tmp_path / "edge")})
    journal = await Journal.open(config.journal_path, max_bytes=64 * 1024 * 1024, retention_s=3600)
    await _append(journal, 3)
    await journal.close()
    with pytest.raises(RestoreError, match="already exists"):
        restore_journal(config, f"file://{tmp_path / 'replica'}")
    # Forced, from a replica that has nothing: refused, and the journal there is untouched.
    with pytest.raises(RestoreError, match="failed"):
        restore_journal(config, f"file://{tmp_path / 'replica'}", force=True)
    with sqlite3.connect(config.journal_path) as conn:
        assert conn.execute("SELECT count(*) FROM journal").fetchone()[0] == 3


# a dead box replaced: SIGKILL, data dir deleted, restore, exactly once at the hub


def _journal_counts(path: Path) -> tuple[int, int]:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        last = conn.execute("SELECT coalesce(max(seq), 0) FROM journal").fetchone()[0]
        unforwarded = conn.execute("SELECT count(*) FROM journal WHERE forwarded_at IS NULL").fetchone()[0]
    return last, unforwarded


def _replica_covers_journal(config: EdgeConfig) -> bool:
    """True when the replica holds a file no older than the journal's WAL."""
    newest = newest_file_replica_time(Path(config.replication.path))
    wal = config.journal_path.with_name("journal.db-wal")
    return newest is not None and wal.exists() and wal.stat().st_mtime <= newest


async def test_a_dead_box_restored_forwards_what_it_had_not_exactly_once(topology: Topology, tmp_path: Path) -> None:
    replica = tmp_path / "second-disk" / "journal"
    config = topology.edge_config(replication={"enabled": True, "kind": "file", "path": str(replica),
                                               "sync_interval_s": 0.2, "probe_interval_s": 0.5, "lagging_after_s": 5.0})
    await topology.enrol(config)
    # The hub re-reads edge keys every key_cache_s: short here, since the replacement's new key
    # is enrolled moments before its first segment (on a real site, minutes pass between them).
    await topology.run_hub(topology.hub_config(ingest={"key_cache_s": 0.1}))
    env = {"VIGIL_EDGE_REPLICATION_ENABLED": "true", "VIGIL_EDGE_REPLICATION_KIND": "file",
           "VIGIL_EDGE_REPLICATION_PATH": str(replica), "VIGIL_EDGE_REPLICATION_SYNC_INTERVAL_S": "0.2"}
    agent = await topology.spawn_edge(config, **env, VIGIL_EDGE_DEMO_ENABLED="true",
                                      VIGIL_EDGE_DEMO_INTERVAL_S="0.02")
    await topology.wait_events(20, timeout=30)

    # The WAN goes: the box journals rows it cannot forward, and the replica takes them.
    assert topology.proxy is not None
    topology.proxy.cut()
    committed_at_cut = await topology.event_count()
    await wait_until(lambda: _journal_counts(config.journal_path)[1] >= 40, timeout=30, what="unforwarded rows")
    agent.send_signal(signal.SIGSTOP)  # the demo source stops writing; litestream (its child) goes on
    await wait_until(lambda: _replica_covers_journal(config), timeout=20, what="the replica to hold the journal")

    # The box dies and its disk with it.
    agent.kill()
    shutil.rmtree(config.data_dir)
    # The replacement, enrolled again with the same edge id (a new key), restores before it runs.
    signer = create_key_file(config.key_path)
    async with topology.pool.acquire() as conn:
        await add_edge(conn, config.edge_id, signer.public_raw)
    restore = subprocess.run([sys.executable, "-m", "edge", "restore", "--from", f"file://{replica}"],
                             capture_output=True, text=True, timeout=60, check=False,
                             env={**os.environ, "VIGIL_EDGE_EDGE_ID": config.edge_id,
                                  "VIGIL_EDGE_DATA_DIR": config.data_dir})
    assert restore.returncode == 0, restore.stderr
    restored_last, restored_unforwarded = _journal_counts(config.journal_path)
    assert restored_last > committed_at_cut and restored_unforwarded > 0
    assert f"last seq {restored_last}" in restore.stdout and "epoch " in restore.stdout

    topology.proxy.restore()
    await topology.spawn_edge(config, name="edge-replacement")
    await topology.wait_events(restored_last, timeout=60)
    await wait_until(lambda: _journal_counts(config.journal_path)[1] == 0, timeout=30, what="everything forwarded")
    rows = await topology.pool.fetch("SELECT seq FROM events WHERE edge_id = $1 ORDER BY seq", config.edge_id)
    assert [r["seq"] for r in rows] == list(range(1, restored_last + 1))  # each once, none missing


# the hub's replica: through the box's server and its replica leaf, into the edge's own account


async def _stream_full(topology: Topology, full: bool) -> None:
    """Make the hub's events stream refuse new segments (discard new at its current count), or
    take them again: the hub's JetStream is full, while its NATS and the leaf stay up."""
    nc = await topology.connect_hub()
    try:
        js = nc.jetstream()
        config = (await js.stream_info(subjects.EVENTS_STREAM)).config
        if full:
            count = (await js.stream_info(subjects.EVENTS_STREAM)).state.messages
            config = dataclasses.replace(config, max_msgs=count, discard=DiscardPolicy.NEW)
        else:
            config = dataclasses.replace(config, max_msgs=-1, discard=DiscardPolicy.OLD)
        await js.update_stream(config)
    finally:
        await nc.close()


async def test_the_hub_replica_restores_a_dead_box_exactly_once(topology: Topology, tmp_path: Path) -> None:
    site = topology.site(DEFAULT_EDGE)
    replication = {"enabled": True, "kind": "hub", "sync_interval_s": 0.2, "probe_interval_s": 0.5,
                   "lagging_after_s": 5.0}
    config = topology.edge_config(replication=replication, hub={"credentials_dir": str(site.auth.directory)})
    await topology.enrol(config)
    await topology.run_hub(topology.hub_config(ingest={"key_cache_s": 0.1}))
    env = {"VIGIL_EDGE_REPLICATION_ENABLED": "true", "VIGIL_EDGE_REPLICATION_KIND": "hub",
           "VIGIL_EDGE_REPLICATION_SYNC_INTERVAL_S": "0.2", "VIGIL_EDGE_HUB_CREDENTIALS_DIR": str(site.auth.directory)}
    agent = await topology.spawn_edge(config, **env, VIGIL_EDGE_DEMO_ENABLED="true", VIGIL_EDGE_DEMO_INTERVAL_S="0.02")
    await topology.wait_events(20, timeout=30)

    # The hub's stream refuses segments: the box journals rows it cannot forward, the leaf stays up,
    # and the replica in the edge's account on the hub takes them.
    await _stream_full(topology, True)
    await wait_until(lambda: _journal_counts(config.journal_path)[1] >= 40, timeout=30, what="unforwarded rows")
    agent.send_signal(signal.SIGSTOP)  # the demo source stops writing; litestream (its child) goes on
    journal_last = _journal_counts(config.journal_path)[0]
    scratch = tmp_path / "scratch"

    def replica_has_all() -> bool:
        shutil.rmtree(scratch, ignore_errors=True)
        scratch_config = msgspec.structs.replace(config, data_dir=str(scratch))
        try:
            restore_journal(scratch_config, "hub")
        except RestoreError:
            return False
        return _journal_counts(scratch_config.journal_path)[0] == journal_last

    await wait_until(lambda: asyncio.to_thread(replica_has_all), timeout=30, what="the hub replica to hold the journal")

    # The box dies and its disk with it; the replacement (a new key, the same edge id) restores from the hub.
    agent.kill()
    shutil.rmtree(config.data_dir)
    signer = create_key_file(config.key_path)
    async with topology.pool.acquire() as conn:
        await add_edge(conn, config.edge_id, signer.public_raw)
    # In a thread: the WAN proxy the leaf goes through runs on this test's event loop.
    restore = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "edge", "restore", "--from", "hub"],
                             capture_output=True, text=True, timeout=120, check=False,
                             env={**os.environ, "VIGIL_EDGE_EDGE_ID": config.edge_id,
                                  "VIGIL_EDGE_DATA_DIR": config.data_dir, "VIGIL_EDGE_NATS_URL": config.nats_url,
                                  "VIGIL_EDGE_HUB_CREDENTIALS_DIR": str(site.auth.directory)})
    assert restore.returncode == 0, restore.stderr
    restored_last, restored_unforwarded = _journal_counts(config.journal_path)
    assert restored_last == journal_last and restored_unforwarded >= 40
    assert f"last seq {restored_last}" in restore.stdout

    await _stream_full(topology, False)
    await topology.spawn_edge(config, name="edge-replacement", **env)
    await topology.wait_events(restored_last, timeout=60)
    await wait_until(lambda: _journal_counts(config.journal_path)[1] == 0, timeout=30, what="everything forwarded")
    rows = await topology.pool.fetch("SELECT seq FROM events WHERE edge_id = $1 ORDER BY seq", config.edge_id)
    assert [r["seq"] for r in rows] == list(range(1, restored_last + 1))  # each once, none missing


async def test_an_edges_replica_account_holds_its_bucket_and_nothing_else(topology: Topology) -> None:
    """Litestream's login reaches the edge's own account on the hub: its JetStream holds one
    stream (the bucket), the hub's streams are not there, and a second stream is refused."""
    site = topology.site(DEFAULT_EDGE)
    config = topology.edge_config(hub={"credentials_dir": str(site.auth.directory)})
    login = hub_replica_login(config)
    await ensure_hub_bucket(login)
    await ensure_hub_bucket(login)  # made once, found the second time
    nc = await nats.connect(config.nats_url, user="litestream", password=login.password)
    try:
        js = nc.jetstream()
        info = await js.account_info()
        assert info.domain == "hub" and info.streams == 1
        with pytest.raises(nats.js.errors.NotFoundError):
            await js.stream_info(subjects.EVENTS_STREAM)
        with pytest.raises(nats.js.errors.APIError, match="maximum number of streams"):
            await js.add_stream(name="MORE", subjects=["more.>"])
    finally:
        await nc.close()
