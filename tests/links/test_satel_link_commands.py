"""Control commands through the link: typed outcomes (ACK / NACK with reason / TIMEOUT /
UNAVAILABLE), queued between polls, never interleaved with them."""
from __future__ import annotations

import asyncio

import pytest
from conftest import CODE, StartLink, sample

from edge.links.satel import CommandResult, LinkState
from firmware_bridges.satel.emulator import SAMPLE_CLEANER_CODE, SatelEmulator
from firmware_bridges.satel.protocol import ResultCode
from support.waiting import wait_until


async def test_arm_with_the_wrong_code_is_a_nack_01(emulator: SatelEmulator, key: str | None, start_link: StartLink) -> None:
    link = await start_link(emulator.port, key)
    outcome = await link.link.arm([1], code="9999", who="test")
    assert (outcome.result, outcome.code, outcome.reason) == (CommandResult.NACK, 0x01, "user code not found")
    assert emulator.panel.partitions[1].armed_mode is None
    assert sample("vigil_satel_commands_total", panel=link.panel, result="nack") == 1


async def test_arm_with_a_violated_zone_is_nack_11_and_force_arm_is_ack(
    emulator: SatelEmulator, key: str | None, start_link: StartLink
) -> None:
    link = await start_link(emulator.port, key)
    emulator.violate_zone(2)
    refused = await link.link.arm([1], code=CODE, who="test")
    assert (refused.result, refused.code) == (CommandResult.NACK, ResultCode.CANNOT_ARM_USE_FORCE)
    assert "force arming is possible" in refused.reason
    forced = await link.link.arm([1], force=True, mode=1, code=CODE, who="test")
    assert forced.result is CommandResult.ACK and forced.ok and forced.code == 0
    await link.wait_event("satel.partition.armed", partition=1, mode=1)
    assert sample("vigil_satel_commands_total", panel=link.panel, result="ack") == 1


async def test_a_tampered_zone_refuses_even_force_arming(emulator: SatelEmulator, key: str | None, start_link: StartLink) -> None:
    link = await start_link(emulator.port, key)
    emulator.tamper_zone(6)
    outcome = await link.link.arm([2], force=True, code=CODE, who="test")
    assert (outcome.result, outcome.code) == (CommandResult.NACK, ResultCode.CANNOT_ARM)


@pytest.mark.parametrize("key", [None], ids=["plain"])
async def test_every_command_and_the_events_it_causes(emulator: SatelEmulator, key: str | None, start_link: StartLink) -> None:
    link = await start_link(emulator.port, key)
    satel = link.link
    assert (await satel.arm([2], mode=2, code=CODE, who="test")).ok
    await link.wait_event("satel.partition.armed", partition=2, mode=2)
    emulator.violate_zone(5)
    [alarm] = await link.wait_event("satel.zone.alarm", zone=5)
    assert alarm.priority.value == "CRITICAL"
    await link.wait_event("satel.partition.alarm", partition=2)
    assert (await satel.disarm([2], code=CODE, who="test")).ok
    await link.wait_event("satel.partition.disarmed", partition=2)
    await link.wait_event("satel.partition.alarm_cleared", partition=2)
    assert (await satel.clear_alarm([2], code=CODE, who="test")).ok
    await link.wait_event("satel.zone.alarm_cleared", zone=5)
    assert (await satel.switch_outputs([1, 2], on=True, code=CODE, who="test")).ok
    await link.wait_event("satel.output.on", count=2)
    assert (await satel.switch_outputs([2], on=False, code=CODE, who="test")).ok
    await link.wait_event("satel.output.off", output=2)
    assert (await satel.bypass([7], code=CODE, who="test")).ok
    await link.wait_event("satel.zone.bypass", zone=7)
    assert (await satel.bypass([7], bypass=False, code=CODE, who="test")).ok
    await link.wait_event("satel.zone.unbypass", zone=7)
    # The cleaner's code works in partition 1 only.
    no_access = await satel.disarm([2], code=SAMPLE_CLEANER_CODE, who="test")
    assert (no_access.result, no_access.code) == (CommandResult.NACK, ResultCode.NO_ACCESS)


@pytest.mark.parametrize("key", [None], ids=["plain"])
async def test_bad_input_is_a_clear_error_and_sends_nothing(emulator: SatelEmulator, key: str | None, start_link: StartLink) -> None:
    link = await start_link(emulator.port, key)
    with pytest.raises(ValueError, match="partition 33"):
        await link.link.arm([33], code=CODE, who="test")
    with pytest.raises(ValueError, match="arming mode 4"):
        await link.link.arm([1], mode=4, code=CODE, who="test")
    with pytest.raises(ValueError, match="user code must be"):
        await link.link.disarm([1], code="12ab", who="test")
    with pytest.raises(ValueError, match="at least one partition"):
        await link.link.clear_alarm([], code=CODE, who="test")
    assert link.link.state.wide  # the sample site is an INTEGRA 256 PLUS
    with pytest.raises(ValueError, match="zone 257 is outside 1..256"):
        await link.link.bypass([257], code=CODE, who="test")
    for result in ("ack", "nack", "timeout", "unavailable"):
        assert sample("vigil_satel_commands_total", panel=link.panel, result=result) == 0


@pytest.mark.parametrize("key", [None], ids=["plain"])
async def test_commands_while_the_link_is_down_are_unavailable(key: str | None, start_link: StartLink) -> None:
    emulator = SatelEmulator(port=0)
    await emulator.start()
    link = await start_link(emulator.port, key)
    await emulator.stop()
    await link.wait_state(LinkState.DOWN)
    outcome = await link.link.arm([1], code=CODE, who="test")
    assert outcome.result is CommandResult.UNAVAILABLE and "link down" in outcome.reason
    assert sample("vigil_satel_commands_total", panel=link.panel, result="unavailable") == 1


@pytest.mark.parametrize("key", [None], ids=["plain"])
async def test_an_unanswered_command_is_a_timeout_and_the_link_reconnects(
    emulator: SatelEmulator, key: str | None, start_link: StartLink
) -> None:
    link = await start_link(emulator.port, key, request_timeout_s=0.3, poll_interval_s=5.0)
    emulator.set_response_delay(1.0)
    outcome = await link.link.switch_outputs([1], on=True, code=CODE, who="test")
    assert outcome.result is CommandResult.TIMEOUT
    assert "no answer to outputs_on within 0.3 s" in outcome.reason and "may or may not" in outcome.reason
    emulator.set_response_delay(0)
    await link.wait_event("edge.link.up", count=2)
    assert sample("vigil_satel_commands_total", panel=link.panel, result="timeout") == 1


@pytest.mark.parametrize("key", [None], ids=["plain"])
async def test_a_full_queue_refuses_instead_of_growing(emulator: SatelEmulator, key: str | None, start_link: StartLink) -> None:
    link = await start_link(emulator.port, key, command_queue=1)
    outcomes = await asyncio.gather(*(link.link.switch_outputs([1], on=True, code=CODE, who="test") for _ in range(3)))
    results = [outcome.result for outcome in outcomes]
    assert results[0] is CommandResult.ACK
    refused = [outcome for outcome in outcomes if outcome.result is CommandResult.UNAVAILABLE]
    assert refused and all("already queued" in outcome.reason for outcome in refused)


async def test_commands_and_polls_share_the_connection_without_interleaving(
    emulator: SatelEmulator, key: str | None, start_link: StartLink
) -> None:
    link = await start_link(emulator.port, key, poll_interval_s=0.05)
    polls = link.link.polls
    outcomes = await asyncio.gather(*(link.link.switch_outputs([1 + i % 2], on=i % 3 != 0, code=CODE, who="test") for i in range(12)))
    assert all(outcome.ok for outcome in outcomes), outcomes
    await wait_until(lambda: link.link.polls > polls + 3, what="polls between the commands")
    assert link.link.reconnects == 0 and emulator.server.stats.protocol_errors == 0
    assert sample("vigil_satel_commands_total", panel=link.panel, result="ack") == 12
