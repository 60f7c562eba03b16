"""The alarm path tells the truth, end to end with real processes: an emulated panel → a real
`python -m edge run` → journal → leaf NATS → hub → PostgreSQL (issue 9)."""
from __future__ import annotations

import asyncio
import json
import signal
import urllib.request
from typing import Any

import msgspec
import pytest

from edge.site_accounts import create_account
from firmware_bridges.satel.emulator import SatelEmulator
from shared.process import ManagedProcess
from support.edge_login import PASSWORD, session_cookie
from support.topology import Topology
from support.waiting import wait_until

pytestmark = pytest.mark.slow

PANEL = "panel-1"


def _panels(port: int) -> str:
    return json.dumps([{"id": PANEL, "host": "127.0.0.1", "port": port, "reconnect_min_s": 0.05,
                        "reconnect_max_s": 0.5, "request_timeout_s": 1.0, "poll_interval_s": 0.1}])


async def _register_panel(topology: Topology) -> int:
    object_id = await topology.pool.fetchval("INSERT INTO objects (name) VALUES ('Bank') RETURNING id")
    return await topology.pool.fetchval(
        "INSERT INTO panels (object_id, edge_id, source) VALUES ($1, 'site-1', $2) RETURNING id", object_id, PANEL)


async def _zone_state(topology: Topology, panel_id: int, zone: int) -> dict[str, Any] | None:
    raw = await topology.pool.fetchval(
        "SELECT state FROM panel_state WHERE panel_id = $1 AND element = 'zone' AND number = $2", panel_id, zone)
    return msgspec.json.decode(raw) if raw else None


async def _stop(proc: ManagedProcess) -> None:
    assert proc.proc is not None
    proc.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(proc.proc.wait, 30) == 0, proc.log_tail()


async def test_a_reinstalled_box_with_a_new_journal_is_applied_at_once(topology: Topology) -> None:
    """Wipe the edge's journal and restart the agent: its seqs start at 1 again under a new epoch,
    and the hub applies the new state instead of ignoring it until the old maximum; the old
    epoch's events stay."""
    async with SatelEmulator(port=0) as emulator:
        emulator.rename("zone", 3, "Biuro\x00\x00")  # real panels' names sometimes hold NULs
        config = topology.edge_config()
        await topology.enrol(config)
        panel_id = await _register_panel(topology)
        await topology.run_hub(topology.hub_config())
        proc = await topology.spawn_edge(config, VIGIL_EDGE_SATEL_PANELS=_panels(emulator.port))
        await wait_until(lambda: _link(topology, panel_id, "CONNECTED"), timeout=60, what="the link up at the hub")
        for _ in range(3):  # enough seqs that the new journal's first ones are all below them
            emulator.violate_zone(3)
            await wait_until(lambda: _violated(topology, panel_id, 3, True), timeout=30, what="zone 3 violated")
            emulator.restore_zone(3)
            await wait_until(lambda: _violated(topology, panel_id, 3, False), timeout=30, what="zone 3 restored")
        names = {r["name"] for r in await topology.pool.fetch(
            "SELECT body->>'name' AS name FROM events WHERE kind = 'satel.zone.violation'")}
        # The name is read once the zone is first active, so the first violation may carry none.
        assert names <= {"", "Biuro"} and "Biuro" in names, "NULs cleaned at the codec, the name at the hub"
        await _stop(proc)  # its planned link down reaches the hub before it exits
        old_events = await topology.event_count()

        journal_dir = config.journal_path.parent
        for leftover in journal_dir.glob(config.journal_path.name + "*"):
            leftover.unlink()
        proc = await topology.spawn_edge(config, "edge-2", VIGIL_EDGE_SATEL_PANELS=_panels(emulator.port))

        async def epochs() -> int:
            return await topology.pool.fetchval("SELECT count(*) FROM edge_epochs WHERE edge_id = 'site-1'")

        await wait_until(lambda: _equals(epochs, 2), timeout=60, what="the new journal epoch at the hub")
        emulator.violate_zone(5)
        await wait_until(lambda: _violated(topology, panel_id, 5, True), timeout=30, what="zone 5 violated, new epoch")
        assert await topology.event_count() > old_events
        first_epoch_rows = await topology.pool.fetchval(
            "SELECT count(*) FROM events e JOIN edge_epochs ep USING (edge_id, epoch) WHERE ep.ordinal = 1")
        assert first_epoch_rows == old_events
        status = await topology.pool.fetch("SELECT ordinal, missing FROM edge_epoch_status ORDER BY ordinal")
        assert [(r["ordinal"], r["missing"]) for r in status] == [(1, 0), (2, 0)]
        await _stop(proc)


async def _violated(topology: Topology, panel_id: int, zone: int, expected: bool) -> bool:
    state = await _zone_state(topology, panel_id, zone)
    return state is not None and state.get("violated") is expected


async def _equals(probe: Any, value: object) -> bool:
    return await probe() == value


MASTER = ("master@example.com", "truth e2e master password 1")


def _http(method: str, url: str, body: dict[str, Any] | None = None, token: str | None = None,
          cookie: dict[str, str] | None = None) -> Any:
    headers = {"Content-Type": "application/json"} | ({"Authorization": f"Bearer {token}"} if token else {}) | (cookie or {})
    request = urllib.request.Request(url, method=method, data=json.dumps(body).encode() if body is not None else None,
                                     headers=headers)
    with urllib.request.urlopen(request, timeout=30) as resp:
        return json.loads(resp.read())


async def test_an_alarm_while_the_agent_was_down_reaches_the_queue_once_with_both_times(topology: Topology) -> None:
    """Stop the agent (a planned stop: no LINK alarm), trip a zone of an armed partition, start it:
    the panel's event log brings the alarm to the operator queue once, with when it happened and
    when it was reported; another restart duplicates nothing."""
    async with SatelEmulator(port=0) as emulator:
        config = topology.edge_config()
        await topology.enrol(config)
        panel_id = await _register_panel(topology)
        hub = topology.hub_config(auth={"secret_file": str(topology.root / "hub-secret.key"),
                                        "master_email": MASTER[0], "master_password": MASTER[1]})
        await topology.spawn_hub(hub)
        token = (await asyncio.to_thread(_http, "POST", f"http://127.0.0.1:{hub.http_port}/api/v1/auth/login",
                                         {"email": MASTER[0], "password": MASTER[1]}))["access_token"]
        create_account(config.data_dir, "ola", PASSWORD, "guard")  # a site guard, made at enrolment
        proc = await topology.spawn_edge(config, VIGIL_EDGE_SATEL_PANELS=_panels(emulator.port))
        await wait_until(lambda: _link(topology, panel_id, "CONNECTED"), timeout=60, what="the link up at the hub")
        edge_api = f"http://127.0.0.1:{config.http_port}/api/v1/links/satel/{PANEL}"
        cookie = await asyncio.to_thread(session_cookie, config, "ola")
        armed = await asyncio.to_thread(_http, "POST", f"{edge_api}/arm", {"partitions": [1], "code": "1234"}, None,
                                        cookie)
        assert armed["result"] == "ACK", armed

        async def audited() -> list[Any]:
            return await topology.pool.fetch("SELECT actor, details FROM audit_log WHERE action = 'panel.command'")

        await wait_until(audited, timeout=30, what="the local arm in the hub's audit log")
        [entry] = await audited()
        assert entry["actor"] == "edge:site-1:guard:ola", "the logged-in account, never an address"
        assert "1234" not in entry["details"], "the user code never leaves the box"
        await _stop(proc)
        await wait_until(lambda: _link(topology, panel_id, "DISCONNECTED"), timeout=30, what="the planned stop")
        assert await topology.pool.fetchval("SELECT link_planned FROM panels WHERE id = $1", panel_id) is True

        emulator.violate_zone(3)  # a break-in while the agent is away
        proc = await topology.spawn_edge(config, "edge-2", VIGIL_EDGE_SATEL_PANELS=_panels(emulator.port))

        async def queue() -> list[dict[str, Any]]:
            page = await asyncio.to_thread(_http, "GET", f"http://127.0.0.1:{hub.http_port}/api/v1/alarms?status=NEW",
                                           None, token)
            return page["items"]

        async def burglary() -> bool:
            return any(a["alarm_type"] == "BURGLARY" for a in await queue())

        await wait_until(burglary, timeout=60, what="the offline alarm in the operator queue")
        [alarm] = [a for a in await queue() if a["alarm_type"] == "BURGLARY"]
        assert alarm["event_count"] == 1 and alarm["happened_offline_at"] and alarm["reported_at"]
        assert alarm["happened_offline_at"] <= alarm["reported_at"]
        assert not any(a["alarm_type"] == "LINK" for a in await queue()), "a planned stop inside its grace"
        await _stop(proc)

        proc = await topology.spawn_edge(config, "edge-3", VIGIL_EDGE_SATEL_PANELS=_panels(emulator.port))
        emulator.violate_zone(5)  # something new after the restart: once it is stored, the restart's reads are too
        await wait_until(lambda: _violated(topology, panel_id, 5, True), timeout=60, what="zone 5 after the restart")
        assert [a["event_count"] for a in await queue() if a["alarm_type"] == "BURGLARY"] == [1]
        records = await topology.pool.fetchval(
            "SELECT count(*) FROM events WHERE kind = 'satel.log.record' AND body->>'category' = 'ALARM'")
        assert records == 1
        await _stop(proc)


async def _link(topology: Topology, panel_id: int, status: str) -> bool:
    return await topology.pool.fetchval("SELECT link_status FROM panels WHERE id = $1", panel_id) == status
