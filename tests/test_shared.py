"""shared/: envelope and segment encoding, keys and signatures, ids, backoff, config errors."""
from __future__ import annotations

import asyncio
import os
import random
import subprocess
import uuid
from pathlib import Path

import msgspec
import pytest

from edge.config import load_edge_config
from hub.config import load_hub_config
from shared.backoff import Backoff, sleep_or_stop, wait_any
from shared.bodies import DemoTick
from shared.config import ConfigError
from shared.envelope import JournalEpoch, Priority, Segment, decode_body, decode_segment, encode_envelope, join_segment, new_envelope
from shared.ids import uuid7
from shared.signing import KeyFileError, KeyFileExists, Signer, create_key_file, load_key_file, verify
from shared import subjects


def test_join_segment_equals_encoding_the_segment_struct() -> None:
    envs = [msgspec.structs.replace(new_envelope("demo.tick", "s", Priority.LOW, DemoTick(i)), seq=i + 1) for i in range(3)]
    epoch = JournalEpoch("0f" * 16, 1)
    joined = join_segment("site-1", epoch, [encode_envelope(e) for e in envs])
    assert joined == msgspec.json.encode(Segment("site-1", epoch, envs))
    back = decode_segment(joined)
    assert [e.seq for e in back.events] == [1, 2, 3]
    assert decode_body(back.events[2]) == DemoTick(2)


def test_envelope_decoding_rejects_unknown_fields_and_bad_priority() -> None:
    env = encode_envelope(new_envelope("demo.tick", "s", Priority.LOW, DemoTick(1)))
    with pytest.raises(msgspec.ValidationError):
        decode_segment(b'{"edge":"a","epoch":{"id":"x","start":1},"events":[' + env.replace(b'"LOW"', b'"URGENT"') + b"]}")
    with pytest.raises(msgspec.ValidationError):
        decode_segment(b'{"edge":"a","epoch":{"id":"x","start":1},"events":[],"extra":1}')


def test_signatures_verify_only_the_exact_bytes_and_key() -> None:
    signer, other = Signer.generate(), Signer.generate()
    sig = signer.sign(b"segment")
    assert verify(signer.public_raw, sig, b"segment")
    assert not verify(signer.public_raw, sig, b"segmenT")
    assert not verify(other.public_raw, sig, b"segment")
    assert not verify(signer.public_raw, b"\x00" * 64, b"segment")
    assert not verify(b"short", sig, b"segment")
    assert signer.key_id != other.key_id and len(signer.key_id) == 16


def test_key_file_is_created_0600_once_and_wider_modes_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "edge.key"
    with pytest.raises(KeyFileError, match=f"edge key missing at {path}: re-enrol or restore it"):
        load_key_file(path)
    signer = create_key_file(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_key_file(path).key_id == signer.key_id  # stable across restarts
    with pytest.raises(KeyFileExists, match="already exists"):
        create_key_file(path)
    assert load_key_file(path).key_id == signer.key_id  # the refused creation changed nothing
    assert [p.name for p in path.parent.iterdir()] == ["edge.key"]  # and left no temporary file
    path.chmod(0o644)
    with pytest.raises(KeyFileError, match="mode 644"):
        load_key_file(path)
    path.chmod(0o600)
    path.write_text("not a key\n")
    with pytest.raises(KeyFileError, match="does not hold"):
        load_key_file(path)


def test_uuid7_is_version_7_and_strictly_increasing() -> None:
    ids = [uuid7() for _ in range(5000)]
    assert all(i.version == 7 and i.variant == uuid.RFC_4122 for i in ids[:10])
    assert ids == sorted(ids) and len(set(ids)) == len(ids)


def test_subject_helpers_round_trip() -> None:
    assert subjects.parse_stored_subject("vigil.edge.site-1.alarm.3") == ("site-1", "alarm")
    assert subjects.parse_stored_subject("vigil.edge.site-1.cmd.3") is None
    assert subjects.parse_stored_subject("vigil.edge.site-1.evt") is None
    assert subjects.valid_edge_id("site-1") and not subjects.valid_edge_id("Site.1")
    a = subjects.segment_msg_id("e", 1, 5, b"x")
    assert a == subjects.segment_msg_id("e", 1, 5, b"x") != subjects.segment_msg_id("e", 1, 5, b"y")


def test_backoff_is_full_jitter_capped_and_resets() -> None:
    backoff = Backoff(0.5, 4.0, rng=random.Random(7))
    delays = [backoff.next_delay() for _ in range(20)]
    ceilings = [min(4.0, 0.5 * 2**i) for i in range(20)]
    assert all(0 <= d <= c for d, c in zip(delays, ceilings))
    assert max(delays[5:]) > 2.0  # it does reach towards the cap
    backoff.reset()
    assert backoff.next_delay() <= 0.5
    with pytest.raises(ValueError):
        Backoff(0, 1)


async def test_sleep_or_stop_returns_early_when_stopped() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.call_soon(stop.set)
    started = loop.time()
    assert await sleep_or_stop(30, stop) is True
    assert loop.time() - started < 5
    assert await sleep_or_stop(0.01, asyncio.Event()) is False


async def test_wait_any_returns_when_one_event_is_set_and_false_on_timeout() -> None:
    first, second = asyncio.Event(), asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.call_soon(second.set)
    assert await wait_any((first, second), timeout=30) is True
    assert await wait_any((first, asyncio.Event()), timeout=0.01) is False
    first.set()
    assert await wait_any((first,), timeout=None) is True
    assert len([t for t in asyncio.all_tasks() if t is not asyncio.current_task()]) == 0  # no waiter left behind


def test_config_errors_name_the_key_the_value_and_the_source(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"`edge.edge_id` is required.*VIGIL_EDGE_EDGE_ID"):
        load_edge_config(env={})
    with pytest.raises(ConfigError, match=r"`edge.journal.max_bytes` = 'lots' \(from environment variable VIGIL_EDGE_JOURNAL_MAX_BYTES\)"):
        load_edge_config(env={"VIGIL_EDGE_EDGE_ID": "a", "VIGIL_EDGE_JOURNAL_MAX_BYTES": "lots"})
    conf = tmp_path / "edge.toml"
    conf.write_text('edge_id = "a"\n[forwarder]\nwindow = "wide"\n')
    with pytest.raises(ConfigError, match=rf"`edge.forwarder.window` = 'wide' \(from {conf}\)"):
        load_edge_config(conf, env={})
    conf.write_text('edge_id = "a"\nmystery = 1\n')
    with pytest.raises(ConfigError, match=r"`edge.mystery` is not a known setting"):
        load_edge_config(conf, env={})
    conf.write_text("edge_id = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_edge_config(conf, env={})
    with pytest.raises(ConfigError, match="edge_id 'Bad.Id'"):
        load_edge_config(env={"VIGIL_EDGE_EDGE_ID": "Bad.Id"})
    with pytest.raises(ConfigError, match="does not exist"):
        load_edge_config(tmp_path / "missing.toml", env={})
    with pytest.raises(ConfigError, match="database_url must be a postgresql:// URL"):
        load_hub_config(env={"VIGIL_HUB_DATABASE_URL": "mysql://x"})
    # A failover URL (several servers) must ask for the writable one, or a write may land on a standby.
    with pytest.raises(ConfigError, match="several servers.*got none"):
        load_hub_config(env={"VIGIL_HUB_DATABASE_URL": "postgresql://u@a:5432,b:5432/vigil"})
    with pytest.raises(ConfigError, match="database_owner_url names several servers.*got any"):
        load_hub_config(env={"VIGIL_HUB_DATABASE_OWNER_URL": "postgresql://a,b/vigil?target_session_attrs=any"})
    for attrs in ("read-write", "primary"):
        url = f"postgresql://u:p%2C@a:5432,b:5433/vigil?target_session_attrs={attrs}"
        assert load_hub_config(env={"VIGIL_HUB_DATABASE_URL": url}).database_url == url
    # A comma in the password is no second server.
    assert load_hub_config(env={"VIGIL_HUB_DATABASE_URL": "postgresql://u:a,b@h/vigil"}).database_url
    # Environment overrides the file, the file overrides defaults.
    conf.write_text('edge_id = "from-file"\nhttp_port = 9000\n')
    cfg = load_edge_config(conf, env={"VIGIL_EDGE_HTTP_PORT": "9001"})
    assert (cfg.edge_id, cfg.http_port, cfg.journal.max_bytes) == ("from-file", 9001, 512 * 1024 * 1024)


@pytest.mark.parametrize("module", ["edge", "hub"])
def test_services_exit_with_the_config_error_on_bad_config(module: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    env.update({"VIGIL_EDGE_EDGE_ID": "a", "VIGIL_EDGE_HTTP_PORT": "eighty", "VIGIL_HUB_HTTP_PORT": "eighty"})
    args = ["run"] if module == "edge" else ["serve"]
    result = subprocess.run([os.sys.executable, "-m", module, *args], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert f"`{module}.http_port` = 'eighty'" in result.stderr


def test_free_ports_come_from_below_the_ephemeral_range_and_never_twice() -> None:
    """A port an outgoing connection could take before the server binds it is never handed out."""
    import socket

    from shared.process import FREE_PORT_MIN, _ephemeral_low, free_port

    ports = [free_port() for _ in range(50)]
    assert len(set(ports)) == 50
    assert all(FREE_PORT_MIN <= p < _ephemeral_low() for p in ports)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", ports[0]))  # free indeed
