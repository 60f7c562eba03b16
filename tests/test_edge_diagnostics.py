"""`python -m edge diagnostics`: a support bundle with the config, the agent's and the links'
state, the journal's figures and log tails, and no secret anywhere in it (issue 10)."""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import msgspec

from edge.journal import Journal
from edge.local_auth import LocalAuth, read_cli_token, token_path
from edge.site_accounts import ACCOUNTS_FILE, create_account
from firmware_bridges.satel.emulator import SatelEmulator
from shared.bodies import DemoTick
from shared.envelope import Priority, new_envelope
from shared.process import free_port
from shared.signing import create_key_file
from support.topology import Topology
from support.waiting import wait_until

INTEGRATION_KEY = "Integra1Zx9"


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edge", *args], env=env, capture_output=True, text=True, timeout=60)


async def test_the_bundle_holds_the_state_and_no_secret(tmp_path: Path) -> None:
    data = tmp_path / "edge"
    private_key = create_key_file(data / "edge.key").private_raw()
    key_text = (data / "edge.key").read_text().strip()
    journal = await Journal.open(data / "journal.db", max_bytes=1 << 20, retention_s=60)
    for n in range(3):
        await journal.append(new_envelope("demo.tick", "x", Priority.LOW, DemoTick(n)))
    epoch = journal.epoch
    await journal.close()
    # The local page's secrets: a site account's hash and the on-box tools' token (an agent that
    # died without removing it).
    password_hash = create_account(data, "jan", "site password 1", "installer").password_hash
    LocalAuth.start(data)
    token = read_cli_token(token_path(data))
    # A secret that slipped into a log line must not travel either.
    log = tmp_path / "edge.log"
    log.write_text("".join(f'{{"msg": "line {n}"}}\n' for n in range(5000))
                   + f'{{"msg": "connecting with key {INTEGRATION_KEY} and {key_text}, token {token}, {password_hash}"}}\n')
    panels = [{"id": "panel-1", "host": "127.0.0.1", "port": free_port(), "integration_key": INTEGRATION_KEY,
               "code_prefix": "97"}]
    env = {**os.environ, "VIGIL_EDGE_EDGE_ID": "site-1", "VIGIL_EDGE_DATA_DIR": str(data),
           "VIGIL_EDGE_HTTP_PORT": str(free_port()), "VIGIL_EDGE_SATEL_PANELS": json.dumps(panels)}

    result = _run(["diagnostics", "--out", str(tmp_path / "out"), "--log", str(log), "--lines", "100"], env)
    assert result.returncode == 0, result.stderr
    [bundle] = (tmp_path / "out").glob("vigil-edge-site-1-*.tar.gz")
    assert str(bundle) in result.stdout and bundle.stat().st_mode & 0o777 == 0o600
    with tarfile.open(bundle) as tar:
        files = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]
    everything = b"".join(files.values())
    for secret in (INTEGRATION_KEY.encode(), key_text.encode(), private_key, token.encode(), password_hash.encode(),
                   b"$argon2id$"):
        assert secret not in everything
    assert not any(ACCOUNTS_FILE in name or "token" in name for name in files), sorted(files)
    config = json.loads(files["config.json"])
    assert config["satel"]["panels"][0]["integration_key"] == "<redacted>"
    assert config["satel"]["panels"][0]["code_prefix"] == "<redacted>"
    assert config["edge_id"] == "site-1" and config["satel"]["panels"][0]["host"] == "127.0.0.1"
    figures = json.loads(files["journal.json"])
    assert (figures["last_seq"], figures["rows"], figures["epoch"]["id"]) == (3, 3, epoch.id)
    assert figures["unforwarded"]["evt"]["rows"] == 3
    assert "is it running?" in json.loads(files["agent.json"])["error"]  # the token is stale: nothing answers
    [log_name] = [name for name in files if name.startswith("logs/")]
    lines = files[log_name].decode().splitlines()
    assert len(lines) == 100 and "<redacted>" in lines[-1] and "line 4999" in lines[-2]
    assert msgspec.json.decode(files["manifest.json"])["edge_id"] == "site-1"


def test_an_unwritable_out_folder_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    env = {**os.environ, "VIGIL_EDGE_EDGE_ID": "site-1", "VIGIL_EDGE_DATA_DIR": str(tmp_path / "edge")}
    result = _run(["diagnostics", "--out", str(blocker / "sub")], env)
    assert result.returncode == 1 and "cannot write the bundle" in result.stderr


async def test_a_running_agents_state_and_links_are_in_the_bundle(topology: Topology, tmp_path: Path) -> None:
    async with SatelEmulator(port=0, key=INTEGRATION_KEY) as emulator:
        config = topology.edge_config()
        await topology.enrol(config)
        panels = json.dumps([{"id": "panel-1", "host": "127.0.0.1", "port": emulator.port,
                              "integration_key": INTEGRATION_KEY}])
        await topology.spawn_edge(config, VIGIL_EDGE_SATEL_PANELS=panels)
        env = {**os.environ, "VIGIL_EDGE_EDGE_ID": config.edge_id, "VIGIL_EDGE_DATA_DIR": config.data_dir,
               "VIGIL_EDGE_HTTP_PORT": str(config.http_port), "VIGIL_EDGE_SATEL_PANELS": panels}

        async def link_up() -> bool:
            result = await asyncio.to_thread(_run, ["diagnostics", "--out", str(tmp_path / "out")], env)
            assert result.returncode == 0, result.stderr
            bundle = sorted((tmp_path / "out").glob("*.tar.gz"))[-1]
            with tarfile.open(bundle) as tar:
                agent = json.loads(tar.extractfile("agent.json").read())  # type: ignore[union-attr]
                everything = b"".join(tar.extractfile(m).read() for m in tar.getmembers())  # type: ignore[union-attr]
            assert INTEGRATION_KEY.encode() not in everything
            bundle.unlink()
            return agent.get("status", {}).get("links", {}).get("satel", [{}])[0].get("state") == "up" \
                and agent["satel"]["panel-1"]["settings"]["integration_key"] == "<redacted>"

        await wait_until(link_up, timeout=60, what="the running agent's link state in the bundle")
