"""DLOADX release: the link lets go of the module for N minutes, records who and why, stays away
(so the installer's DLOADX gets the module's only connection), then comes back by itself."""
from __future__ import annotations

import asyncio

import msgspec
import pytest
from conftest import CODE, StartLink

from edge.links.satel import CommandResult, LinkState
from firmware_bridges.satel.emulator import SatelEmulator
from firmware_bridges.satel.protocol import (
    FrameChannel,
    ModuleVersionAnswer,
    ReadModuleVersion,
    decode_answer,
    encode_request,
)
from support.waiting import wait_until


async def _dloadx_session(port: int, key: str | None) -> ModuleVersionAnswer:
    """What DLOADX needs: to connect and be answered (not told `Busy!`)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    channel = FrameChannel.for_key(key)
    try:
        writer.write(channel.encode(encode_request(ReadModuleVersion())))
        events: list[object] = []
        while not events:
            data = await asyncio.wait_for(reader.read(4096), 5)
            assert data, "the module closed the installer's connection"
            events = channel.feed(data)
        answer = decode_answer(events[0])  # type: ignore[arg-type]
        assert isinstance(answer, ModuleVersionAnswer)
        return answer
    finally:
        writer.close()


async def test_release_lets_dloadx_in_and_the_link_comes_back_by_itself(
    emulator: SatelEmulator, key: str | None, start_link: StartLink
) -> None:
    link = await start_link(emulator.port, key)
    await link.wait_event("satel.snapshot")
    release = await link.link.release(0.03, "Jan Kowalski", "work order 1234: new zone")
    # release() returns once the link has closed its connection; the module notices a moment later.
    assert link.link.link_state is LinkState.RELEASED
    await wait_until(lambda: not emulator.server.client_connected, what="the module to be free")
    [released] = await link.events("edge.link.released")
    body = msgspec.json.decode(released.body)
    assert (body["who"], body["why"], body["minutes"]) == ("Jan Kowalski", "work order 1234: new zone", 0.03)
    assert released.priority.value == "NORMAL" and body["until"].startswith(release.until.isoformat()[:19])
    [down] = await link.events("edge.link.down")
    assert msgspec.json.decode(down.body) == {
        "link": "satel", "reason": "released for DLOADX by Jan Kowalski: work order 1234: new zone", "planned": True,
    }
    assert link.link.status()["released"]["who"] == "Jan Kowalski"

    await _dloadx_session(emulator.port, key)
    outcome = await link.link.arm([1], code=CODE, who="test")
    assert outcome.result is CommandResult.UNAVAILABLE and "released" in outcome.reason
    # A command that could not even be sent is journaled too: who tried, what, and why not.
    [given] = await link.events("satel.command")
    assert msgspec.json.decode(given.body) == {
        "command": "arm mode 0", "items": [1], "result": "UNAVAILABLE", "code": None, "reason": outcome.reason,
        "who": "test"}
    emulator.violate_zone(3)  # the installer walks past a detector while programming

    await link.wait_event("edge.link.up", count=2, timeout=15)
    await link.wait_event("satel.zone.violation", zone=3)
    assert link.link.release_info is None and link.link.status()["released"] is None


async def test_resume_ends_a_release_early(emulator: SatelEmulator, key: str | None, start_link: StartLink) -> None:
    link = await start_link(emulator.port, key)
    await link.link.release(60, "installer", "programming")
    assert link.link.link_state is LinkState.RELEASED
    assert link.link.resume() is True
    await link.wait_event("edge.link.up", count=2)
    assert link.link.resume() is False


@pytest.mark.parametrize("key", [None], ids=["plain"])
async def test_a_release_while_the_module_is_unreachable_keeps_the_link_away(key: str | None, start_link: StartLink) -> None:
    emulator = SatelEmulator(port=0)
    await emulator.start()
    port = emulator.port
    link = await start_link(port, key)
    await emulator.stop()
    await link.wait_state(LinkState.DOWN)
    await link.link.release(30, "installer", "replacing the module")
    assert link.link.link_state is LinkState.RELEASED
    async with SatelEmulator(port=port) as back:
        failures = link.link.connect_failures
        await _dloadx_session(back.port, None)  # the module is the installer's, not Busy
        assert link.link.connect_failures == failures and link.link.link_state is LinkState.RELEASED
        link.link.resume()
        await link.wait_state(LinkState.UP)


@pytest.mark.parametrize("key", [None], ids=["plain"])
@pytest.mark.parametrize(("minutes", "who", "why", "message"), [
    (0, "a", "b", "minutes must be"),
    (481, "a", "b", "minutes must be"),
    (True, "a", "b", "minutes must be"),
    (5, " ", "b", "who must be"),
    (5, "a", "x" * 201, "why must be"),
])
async def test_a_bad_release_is_refused_and_changes_nothing(
    emulator: SatelEmulator, key: str | None, start_link: StartLink, minutes: object, who: str, why: str, message: str
) -> None:
    link = await start_link(emulator.port, key)
    with pytest.raises(ValueError, match=message):
        await link.link.release(minutes, who, why)  # type: ignore[arg-type]
    assert link.link.link_state is LinkState.UP and await link.events("edge.link.released") == []
    await wait_until(lambda: emulator.server.client_connected, what="the link to keep the module")
