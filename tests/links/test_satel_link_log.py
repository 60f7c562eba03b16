"""The link reads the panel's own event log over real TCP: alarms that happened while the agent or
its link was down reach the journal once, from the cursor on; a live alarm and its log record
share one occurrence key; names arrive cleaned; zone bitmaps of 16 and 32 bytes both decode."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import aiohttp
import msgspec
import pytest
from conftest import CODE, StartLink

from edge.links.satel import CommandResult, connection
from firmware_bridges.satel.emulator import SAMPLE_USER_CODE, ModuleInfo, SatelEmulator, sample_panel
from firmware_bridges.satel.protocol import Frame, UserCode, ZoneState
from shared.envelope import Envelope

PANEL_CODE = UserCode.from_digits(SAMPLE_USER_CODE)


def body(env: Envelope) -> dict:
    return msgspec.json.decode(env.body)  # type: ignore[no-any-return]


class PanelTime:
    """The emulated panel's RTC, set by the test: naive local time, to the minute."""

    def __init__(self, tz: str = "UTC") -> None:
        self.tz = ZoneInfo(tz)
        self.value = self.now()

    def now(self, ago: timedelta = timedelta(0)) -> datetime:
        """The current minute (less `ago`) in the panel's zone; the current minute stays within
        the link's 120 s clock drift limit."""
        moment = datetime.now(timezone.utc) - ago
        return moment.astimezone(self.tz).replace(second=0, microsecond=0, tzinfo=None)

    def __call__(self) -> datetime:
        return self.value


async def test_an_alarm_while_the_agent_was_down_comes_from_the_log_once(key: str | None, start_link: StartLink) -> None:
    panel_time = PanelTime("Europe/Warsaw")
    async with SatelEmulator(port=0, key=key, panel=sample_panel(clock=panel_time)) as emulator:
        first = await start_link(emulator.port, key, timezone="Europe/Warsaw")
        assert (await first.link.arm([1], code=CODE, who="test")).result is CommandResult.ACK
        await first.wait_event("satel.log.record", code=401)  # read live: the cursor is past it
        await first.stop_link()

        emulator.violate_zone(3)  # a burglary in the armed partition while the agent is stopped

        second = await start_link(emulator.port, key, id=first.panel, timezone="Europe/Warsaw")
        [record] = await second.wait_event("satel.log.record", code=130)
        fields = body(record)
        assert (fields["category"], fields["zone"], fields["partition"], fields["text"]) == ("ALARM", 3, 1, "Burglary alarm")
        # The panel's own time of the alarm, in the panel's time zone.
        assert fields["recorded_at"] == panel_time.value.replace(tzinfo=ZoneInfo("Europe/Warsaw")).isoformat()
        assert fields["offline"] is True and fields["history_only"] is False
        assert record.priority.value == "HIGH"
        assert record.occurrence == f"log:{first.panel}:{fields['index']}:{fields['recorded_at']}"
        # The first snapshot after a start is state: the alarm comes from the log alone.
        assert await second.events("satel.zone.alarm") == []
        await second.stop_link()

        third = await start_link(emulator.port, key, id=first.panel, timezone="Europe/Warsaw")
        await third.wait_event("satel.snapshot", count=3)
        records = await third.events("satel.log.record")
        assert [body(env)["code"] for env in records] == [401, 130]  # nothing read twice


@pytest.mark.parametrize("key", [None], ids=["plain"])
async def test_at_a_reconnect_the_diff_and_the_log_record_are_one_occurrence(key: str | None, start_link: StartLink) -> None:
    panel = sample_panel()
    first = SatelEmulator(port=0, key=key, panel=panel)
    await first.start()
    port = first.port
    link = await start_link(port, key)
    assert (await link.link.arm([1], code=CODE, who="test")).result is CommandResult.ACK
    await link.wait_event("satel.log.record", code=401)
    await first.stop()
    await link.wait_event("edge.link.down")

    panel.violate_zone(3)  # while the link is down
    second = SatelEmulator(port=port, key=key, panel=panel)
    await second.start()
    try:
        [record] = await link.wait_event("satel.log.record", code=130)
        [alarm] = await link.wait_event("satel.zone.alarm", zone=3)
        assert body(record)["offline"] is True
        # The log is journaled first; the diff's alarm is the same occurrence.
        assert record.seq < alarm.seq and alarm.occurrence == record.occurrence
        [partition_alarm] = await link.events("satel.partition.alarm")
        assert partition_alarm.occurrence is not None and partition_alarm.occurrence != record.occurrence
    finally:
        await second.stop()


@pytest.mark.parametrize("push", [False, True], ids=["poll", "push"])
async def test_a_live_alarm_and_its_log_record_are_one_occurrence(
    emulator: SatelEmulator, key: str | None, start_link: StartLink, push: bool
) -> None:
    link = await start_link(emulator.port, key, push=push, keepalive_s=10.0)
    await link.wait_event("satel.snapshot")
    assert (await link.link.arm([1], code=CODE, who="test")).result is CommandResult.ACK
    emulator.violate_zone(3)
    [live] = await link.wait_event("satel.zone.alarm", zone=3)
    [record] = await link.wait_event("satel.log.record", code=130)
    assert live.occurrence is not None and live.occurrence.startswith(f"live:{link.panel}:")
    assert record.occurrence == live.occurrence and record.seq > live.seq
    assert body(record)["offline"] is False and record.priority.value == "HIGH"
    # Records that are no alarm carry their own key.
    [armed] = await link.wait_event("satel.log.record", code=401)
    assert armed.occurrence is not None and armed.occurrence.startswith("log:") and armed.priority.value == "LOW"


@pytest.mark.parametrize("key", [None], ids=["plain"])
async def test_a_name_with_a_nul_reaches_the_journal_cleaned(key: str | None, start_link: StartLink) -> None:
    async with SatelEmulator(port=0, control_port=0) as emulator:
        async with aiohttp.ClientSession(f"http://127.0.0.1:{emulator.control_port}") as http:
            async with http.post("/zones/3/name", json={"name": "Biu\u0000ro"}) as response:
                assert response.status == 200
            async with http.post("/zones/3/violate") as response:
                assert response.status == 200
        link = await start_link(emulator.port, key)
        [snapshot] = await link.wait_event("satel.snapshot")
        assert body(snapshot)["zone_names"]["3"] == "Biuro"
        emulator.restore_zone(3)
        [restore] = await link.wait_event("satel.zone.restore", zone=3)
        assert body(restore)["name"] == "Biuro"


@pytest.mark.parametrize("key", [None], ids=["plain"])
async def test_a_first_start_reads_back_the_window_and_old_records_are_history(
    key: str | None, start_link: StartLink
) -> None:
    panel_time = PanelTime()
    panel = sample_panel(clock=panel_time)
    panel_time.value = panel_time.now(ago=timedelta(hours=3))
    for _ in range(30):
        panel.tamper_zone(1)
        panel.restore_tamper(1)
    panel_time.value = panel_time.now()
    assert panel.arm(PANEL_CODE, {2}, 0).value == 0
    panel.violate_zone(6)
    async with SatelEmulator(port=0, key=key, panel=panel) as emulator:
        link = await start_link(emulator.port, key, event_log_window=50)
        await link.wait_event("satel.snapshot")
        records = await link.events("satel.log.record")
        assert len(records) == 50
        history = [env for env in records if body(env)["history_only"]]
        assert len(history) == 48 and {env.priority.value for env in history} == {"LOW"}
        recent = [(body(env)["code"], env.priority.value, body(env)["offline"]) for env in records[-2:]]
        assert recent == [(401, "LOW", True), (130, "HIGH", True)]


@pytest.mark.parametrize("key", [None], ids=["plain"])
async def test_a_reset_panel_log_is_read_back_with_a_warning(
    key: str | None, start_link: StartLink, caplog: pytest.LogCaptureFixture
) -> None:
    async with SatelEmulator(port=0, key=key) as emulator:
        first = await start_link(emulator.port, key)
        emulator.tamper_zone(7)
        await first.wait_event("satel.log.record", code=144)
        await first.stop_link()
        emulator.clear_event_log()
        emulator.tamper_zone(8)
        second = await start_link(emulator.port, key, id=first.panel)
        await second.wait_event("satel.snapshot", count=2)
        codes = [(body(env)["code"], body(env)["zone"]) for env in await second.events("satel.log.record")]
        assert codes == [(144, 7), (621, None), (144, 8)]
        assert "no longer holds the last record journaled" in caplog.text


@pytest.mark.parametrize("key", [None], ids=["plain"])
@pytest.mark.parametrize(("push", "size"), [(False, 16), (True, 32)], ids=["poll-16", "push-32"])
async def test_zone_bitmaps_of_16_and_32_bytes_both_decode(
    key: str | None, start_link: StartLink, monkeypatch: pytest.MonkeyPatch, push: bool, size: int
) -> None:
    decoded: list[tuple[int, int]] = []
    decode = connection.decode_answer

    def spy(frame: Frame) -> object:
        decoded.append((frame.cmd, len(frame.data)))
        return decode(frame)

    monkeypatch.setattr(connection, "decode_answer", spy)
    panel = sample_panel()
    panel.info = ModuleInfo(module_capabilities=0x00, panel_type=3)  # an INTEGRA 128: 16-byte queries
    async with SatelEmulator(port=0, key=key, panel=panel) as emulator:
        link = await start_link(emulator.port, key, push=push, keepalive_s=10.0)
        await link.wait_event("satel.snapshot")
        assert link.link.state.wide is False
        emulator.violate_zone(2)
        await link.wait_event("satel.zone.violation", zone=2)
        assert (ZoneState.VIOLATION, size) in decoded
