"""The Satel link against the emulated ETHM-1 (plain and encrypted): events reach the journal in
time, the first snapshot is state, and every kind of connection trouble ends in a clean reconnect
with no phantom events."""
from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from typing import Any

import msgspec
import pytest
from conftest import StartLink, sample

from edge.links.satel import LinkState
from firmware_bridges.satel.emulator import SatelEmulator, Zone, sample_panel
from firmware_bridges.satel.protocol import BUSY_BANNER
from support.waiting import wait_until


def body(env: object) -> dict:
    return msgspec.json.decode(env.body)  # type: ignore[attr-defined]


async def test_a_violation_reaches_the_journal_within_two_poll_intervals(
    emulator: SatelEmulator, key: str | None, start_link: StartLink
) -> None:
    link = await start_link(emulator.port, key, poll_interval_s=0.25)
    await link.wait_event("satel.snapshot")
    for zone in (3, 4, 5):
        violated_at = datetime.now(timezone.utc)
        emulator.violate_zone(zone)
        [event] = await link.wait_event("satel.zone.violation", zone=zone)
        # The envelope's ts is when the link saw the change: one interval to notice, one to spare.
        assert event.ts - violated_at <= timedelta(seconds=0.5), event.ts - violated_at
        assert event.source == link.panel and event.priority.value == "LOW"


async def test_the_first_snapshot_is_state_not_alarms(key: str | None, start_link: StartLink) -> None:
    async with SatelEmulator(port=0, key=key) as emulator:
        emulator.violate_zone(5)
        emulator.tamper_zone(7)
        emulator.trigger_trouble("ac")
        link = await start_link(emulator.port, key)
        [snapshot] = await link.wait_event("satel.snapshot")
        # No state diff: what happened before the start comes from the panel's own log.
        kinds = [env.kind for env in await link.events()]
        assert kinds == ["edge.link.up", "satel.log.record", "satel.log.record", "satel.snapshot"]
        records = [body(env) for env in await link.events("satel.log.record")]
        assert [(r["code"], r["category"], r["zone"], r["offline"]) for r in records] == [
            (144, "TAMPER", 7, True), (301, "TROUBLE", None, True),
        ]
        assert snapshot.priority.value == "LOW"
        state = body(snapshot)
        assert (state["violated"], state["tamper"], state["tamper_alarm"]) == ([5], [7], [7])
        assert state["partition_alarm"] == [2] and state["troubles"] == [{"part": 1, "bit": 8, "trouble": "ac"}]
        assert state["zone_names"] == {"5": "Magazyn", "7": "Okno zaplecza"}
        assert state["module_version"] == "20620190301" and state["wide"] is True


async def test_emulator_restart_reconnects_with_backoff_and_no_phantom_events(key: str | None, start_link: StartLink) -> None:
    panel = sample_panel()
    first = SatelEmulator(port=0, key=key, panel=panel)
    await first.start()
    port = first.port
    link = await start_link(port, key)
    first.violate_zone(2)
    await link.wait_event("satel.zone.violation", zone=2)
    await first.stop()

    [down] = await link.wait_event("edge.link.down")
    assert body(down)["reason"] == "connection closed by the module" and down.priority.value == "NORMAL"
    assert body(down)["planned"] is False
    status: dict[str, Any] = {}

    def failing() -> bool:
        # Between attempts the link is down; during one it is connecting: judge it between.
        status.update(link.link.status())
        return link.link.connect_failures >= 4 and status["state"] == "down"

    await wait_until(failing, what="several failed reconnects, the link down between them")
    assert "cannot connect" in status["last_error"]
    assert status["retry_in_s"] is None or status["retry_in_s"] <= 0.4
    panel.violate_zone(4)  # a real change while the link is down
    events_while_down = len(await link.events())

    second = SatelEmulator(port=port, key=key, panel=panel)
    await second.start()
    try:
        await link.wait_event("satel.snapshot", count=2)
        after = (await link.events())[events_while_down:]
        # One outage is one link.down, however many attempts failed; after it only what changed.
        assert [env.kind for env in after] == ["edge.link.up", "satel.zone.violation", "satel.snapshot"]
        assert body(after[1])["zone"] == 4
        assert len(await link.events("edge.link.down")) == 1
        assert sample("vigil_satel_reconnects_total", panel=link.panel) >= 4
        assert link.link.connect_failures == 0
    finally:
        await second.stop()


async def test_a_second_client_gets_busy_and_the_link_stays_up(emulator: SatelEmulator, key: str | None, start_link: StartLink) -> None:
    link = await start_link(emulator.port, key)
    reader, writer = await asyncio.open_connection("127.0.0.1", emulator.port)
    assert await asyncio.wait_for(reader.read(64), 5) == BUSY_BANNER
    writer.close()
    emulator.violate_zone(1)
    await link.wait_event("satel.zone.violation", zone=1)
    assert await link.events("edge.link.down") == [] and link.link.reconnects == 0


async def test_the_link_waits_while_another_client_holds_the_module(
    emulator: SatelEmulator, key: str | None, start_link: StartLink
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", emulator.port)
    await wait_until(lambda: emulator.server.client_connected, what="the other client to hold the module")
    link = await start_link(emulator.port, key, wait_up=False)
    [down] = await link.wait_event("edge.link.down")
    assert body(down)["reason"].startswith("module busy")
    await wait_until(lambda: link.link.connect_failures >= 2, what="a retry while busy")
    writer.close()
    await link.wait_state(LinkState.UP)
    await link.wait_event("satel.snapshot")


async def test_newer_firmware_dropping_the_first_client(key: str | None, start_link: StartLink) -> None:
    async with SatelEmulator(port=0, key=key, drop_first_client=True) as emulator:
        link = await start_link(emulator.port, key)
        reader, writer = await asyncio.open_connection("127.0.0.1", emulator.port)
        [down] = await link.wait_event("edge.link.down")
        assert body(down)["reason"] == "connection closed by the module"
        # The link takes the module back (dropping the other client, as this firmware does).
        await link.wait_event("edge.link.up", count=2)
        assert await asyncio.wait_for(reader.read(64), 5) == b""
        writer.close()


async def test_an_idle_drop_ends_in_a_reconnect(key: str | None, start_link: StartLink) -> None:
    async with SatelEmulator(port=0, key=key, idle_timeout=0.3) as emulator:
        # Polling slower than the module's idle limit: it drops the link, which comes back.
        link = await start_link(emulator.port, key, poll_interval_s=1.0)
        [down] = await link.wait_event("edge.link.down")
        assert body(down)["reason"] == "connection closed by the module"
        await link.wait_event("edge.link.up", count=2)
        assert emulator.server.stats.idle_drops >= 1
        emulator.violate_zone(6)
        await link.wait_event("satel.zone.violation", zone=6)


async def test_polling_keeps_a_module_with_an_idle_limit_connected(key: str | None, start_link: StartLink) -> None:
    async with SatelEmulator(port=0, key=key, idle_timeout=0.5) as emulator:
        link = await start_link(emulator.port, key, poll_interval_s=0.1)
        await wait_until(lambda: link.link.polls >= 15, what="15 polls")
        assert emulator.server.stats.idle_drops == 0 and link.link.reconnects == 0


async def test_a_corrupted_frame_is_counted_and_survived(emulator: SatelEmulator, key: str | None, start_link: StartLink) -> None:
    link = await start_link(emulator.port, key)
    await link.wait_event("satel.snapshot")
    emulator.corrupt_next_frame()
    await wait_until(lambda: sample("vigil_satel_crc_errors_total", panel=link.panel) == 1, what="the bad checksum counted")
    emulator.violate_zone(8)
    await link.wait_event("satel.zone.violation", zone=8)
    assert link.link.link_state is LinkState.UP and link.link.reconnects == 0
    assert sample("vigil_satel_protocol_errors_total", panel=link.panel, reason="bad_checksum") == 1


async def test_an_unanswered_request_closes_the_connection_and_reconnects(
    emulator: SatelEmulator, key: str | None, start_link: StartLink
) -> None:
    link = await start_link(emulator.port, key, request_timeout_s=0.3)
    emulator.set_response_delay(1.0)
    [down] = await link.wait_event("edge.link.down")
    assert body(down)["reason"] == "no answer to new_data within 0.3 s"
    emulator.set_response_delay(0)
    await link.wait_event("edge.link.up", count=2)
    assert sample("vigil_satel_connection_status", panel=link.panel) == 1


async def test_push_mode_reports_changes_without_polling(emulator: SatelEmulator, key: str | None, start_link: StartLink) -> None:
    link = await start_link(emulator.port, key, push=True, keepalive_s=10.0)
    [snapshot] = await link.wait_event("satel.snapshot")
    assert body(snapshot)["push"] is True and link.link.status()["mode"] == "push"
    polls = link.link.polls
    emulator.violate_zone(2)
    emulator.start_exit_time(1)
    await link.wait_event("satel.zone.violation", zone=2)
    await link.wait_event("satel.partition.exit", partition=1)
    assert link.link.polls <= polls + 1  # at most the catch-up poll right after push was turned on


async def test_zones_above_128_on_an_integra_256(key: str | None, start_link: StartLink) -> None:
    panel = sample_panel()
    panel.zones[200] = Zone(200, "Strych", 2)
    async with SatelEmulator(port=0, key=key, panel=panel) as emulator:
        link = await start_link(emulator.port, key)
        emulator.violate_zone(200)
        [event] = await link.wait_event("satel.zone.violation", zone=200)
        await wait_until(lambda: link.link.state.name(1, 200) == "Strych", what="the zone's name read after the event")


@pytest.mark.parametrize("key", [None], ids=["plain"])
async def test_a_stopped_link_records_itself_down(emulator: SatelEmulator, key: str | None, start_link: StartLink) -> None:
    link = await start_link(emulator.port, key)
    await link.stop_link()
    down = (await link.events())[-1]
    assert (down.kind, body(down)["reason"], down.priority.value) == ("edge.link.down", "edge stopping", "LOW")
    assert body(down)["planned"] is True  # the hub holds the link alarm for a grace period
    assert sample("vigil_satel_connection_status", panel=link.panel) == 0
    await wait_until(lambda: not emulator.server.client_connected, what="the module to be free")
