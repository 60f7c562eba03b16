"""`python -m edge check` row by row without an agent running (issue 10): a Satel panel is probed
directly (right key: green; wrong key or nothing listening: red, with the fix); an unenrolled box
says to enrol; the table marks red rows and a terminal gets colour."""
from __future__ import annotations

from pathlib import Path

from edge.check import Row, render, run_checks
from edge.config import EdgeConfig, load_edge_config
from firmware_bridges.satel.emulator import SatelEmulator
from shared.process import free_port
from shared.signing import create_key_file

KEY = "VigilTestKey"


def _config(tmp_path: Path, panels: list[dict]) -> EdgeConfig:
    return load_edge_config(env={}, overrides={
        "edge_id": "site-9", "data_dir": str(tmp_path), "nats_url": f"nats://127.0.0.1:{free_port()}",
        "nats_password_file": "", "satel": {"panels": panels}})


async def _no_agent() -> None:
    return None


def _row(rows: list[Row], name: str) -> Row:
    [row] = [r for r in rows if r.name == name]
    return row


async def test_an_unenrolled_box_with_one_good_and_two_bad_panels(tmp_path: Path) -> None:
    async with SatelEmulator(port=0, key=KEY) as emulator:
        config = _config(tmp_path, [
            {"id": "good", "host": "127.0.0.1", "port": emulator.port, "integration_key": KEY},
            {"id": "wrong-key", "host": "127.0.0.1", "port": emulator.port, "integration_key": "NotTheKey1"},
            {"id": "nobody", "host": "127.0.0.1", "port": free_port()},
        ])
        rows = await run_checks(config, _no_agent)
    assert _row(rows, "Satel panel good").ok
    wrong = _row(rows, "Satel panel wrong-key")
    assert not wrong.ok and "integration key" in wrong.fix
    nobody = _row(rows, "Satel panel nobody")
    assert not nobody.ok and "cannot connect" in nobody.detail and "LAN cable" in nobody.fix
    for name in ("edge key", "hub HTTPS", "hub leaf credential"):
        assert not _row(rows, name).ok and "enrol" in _row(rows, name).fix
    assert not _row(rows, "local NATS (agent)").ok
    assert _row(rows, "data folder").ok


async def test_the_key_row_turns_green_with_a_key_and_the_table_shows_fixes(tmp_path: Path) -> None:
    create_key_file(tmp_path / "edge.key")
    rows = await run_checks(_config(tmp_path, []), _no_agent)
    assert _row(rows, "edge key").ok
    plain = render(rows, colour=False)
    assert "\033[" not in plain and "FAIL  hub HTTPS" in plain and "fix: enrol the box" in plain
    assert "\033[31mFAIL" in render(rows, colour=True)


async def test_with_an_agent_running_its_link_states_are_used(tmp_path: Path) -> None:
    async def agent() -> list[dict]:
        return [{"panel": "p1", "state": "up"}, {"panel": "p2", "state": "down", "last_error": "no answer"}]

    rows = await run_checks(_config(tmp_path, [{"id": "p1", "host": "127.0.0.1", "port": free_port()}]), agent)
    assert _row(rows, "Satel panel p1").ok  # not probed: the module serves one client, the agent's
    p2 = _row(rows, "Satel panel p2")
    assert not p2.ok and "no answer" in p2.detail
