"""The edge's key is made once, explicitly (`python -m edge keygen`); the agent never makes one and
refuses to start without it, before its journal is touched."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from edge.config import EdgeConfig, load_edge_config
from edge.journal import Journal
from shared.bodies import DemoTick
from shared.envelope import Priority, new_envelope

MISSING = "edge key missing at {path}: re-enrol or restore it"


def _edge(tmp_path: Path, *command: str) -> subprocess.CompletedProcess[str]:
    """`python -m edge <command>` for an edge whose data lives in tmp_path/edge."""
    env = {**os.environ, "VIGIL_EDGE_EDGE_ID": "site-1", "VIGIL_EDGE_DATA_DIR": str(tmp_path / "edge"),
           "VIGIL_EDGE_NATS_URL": "nats://127.0.0.1:1", "VIGIL_EDGE_HTTP_PORT": "0"}
    return subprocess.run([sys.executable, "-m", "edge", *command], env=env, capture_output=True, text=True, timeout=60)


def _config(tmp_path: Path) -> EdgeConfig:
    return load_edge_config(env={}, overrides={"edge_id": "site-1", "data_dir": str(tmp_path / "edge")})


def test_keygen_creates_the_key_once_and_pubkey_only_reads_it(tmp_path: Path) -> None:
    config = _config(tmp_path)
    missing = _edge(tmp_path, "pubkey")
    assert missing.returncode == 1 and missing.stdout == ""
    assert MISSING.format(path=config.key_path) in missing.stderr
    assert not config.key_path.exists()  # pubkey made no key

    first = _edge(tmp_path, "keygen")
    assert first.returncode == 0, first.stderr
    public = first.stdout.strip()
    assert config.key_path.stat().st_mode & 0o777 == 0o600
    key_bytes = config.key_path.read_bytes()

    second = _edge(tmp_path, "keygen")
    assert second.returncode == 1 and second.stdout == ""
    assert f"edge key already exists at {config.key_path}; refusing to replace it" in second.stderr
    assert config.key_path.read_bytes() == key_bytes

    shown = _edge(tmp_path, "pubkey")
    assert shown.returncode == 0 and shown.stdout.strip() == public


def test_agent_without_its_key_stops_before_opening_the_journal(tmp_path: Path) -> None:
    config = _config(tmp_path)
    assert _edge(tmp_path, "keygen").returncode == 0
    config.key_path.unlink()  # a box that lost its key

    proc = _edge(tmp_path, "run")
    assert proc.returncode == 1
    assert MISSING.format(path=config.key_path) in proc.stderr
    assert not config.journal_path.exists()
    assert not config.key_path.exists()  # and it made no new key either


def _snapshot(directory: Path) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(directory.iterdir())}


async def test_agent_without_its_key_leaves_an_existing_journal_untouched(tmp_path: Path) -> None:
    config = _config(tmp_path)
    assert _edge(tmp_path, "keygen").returncode == 0
    journal = await Journal.open(config.journal_path, max_bytes=config.journal.max_bytes, retention_s=3600)
    await journal.append(new_envelope("demo.tick", "test", Priority.LOW, DemoTick(1)))
    await journal.close()
    config.key_path.unlink()
    before = _snapshot(config.journal_path.parent)

    proc = _edge(tmp_path, "run")
    assert proc.returncode == 1 and MISSING.format(path=config.key_path) in proc.stderr
    assert _snapshot(config.journal_path.parent) == before  # not opened: no -wal, no -shm, no write


def test_an_unreadable_key_is_a_start_up_error_too(tmp_path: Path) -> None:
    config = _config(tmp_path)
    assert _edge(tmp_path, "keygen").returncode == 0
    config.key_path.write_text("not a key\n")
    proc = _edge(tmp_path, "run")
    assert proc.returncode == 1
    assert f"edge key at {config.key_path} does not hold an Ed25519 private key: re-enrol or restore it" in proc.stderr
    assert not config.journal_path.exists()
