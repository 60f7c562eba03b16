"""The emulator over real TCP, plain and encrypted, with the codec as the client."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import TypeVar

import pytest
from support.waiting import wait_until

from firmware_bridges.satel.emulator import SAMPLE_USER_CODE, ModuleInfo, SatelEmulator, sample_panel
from firmware_bridges.satel.protocol import (
    NEWEST_EVENT,
    Answer,
    Arm,
    Busy,
    BypassZones,
    ClearAlarm,
    Cmd,
    DeviceNameAnswer,
    DeviceType,
    Disarm,
    EncryptedSession,
    ErrorReason,
    EventAnswer,
    EventCategory,
    EventClass,
    EventTextAnswer,
    Frame,
    FrameChannel,
    FrameEvent,
    NewDataAnswer,
    OutputAction,
    OutputsAnswer,
    PartitionsAnswer,
    PartitionState,
    ProtocolError,
    ReadDeviceName,
    ReadEvent,
    ReadEventText,
    ReadNewData,
    ReadOutputs,
    ReadPartitions,
    ReadStatus,
    ReadTroubles,
    ReadZones,
    ReadZoneTemperature,
    Request,
    ResultAnswer,
    ResultCode,
    SourceKind,
    StartPush,
    StatusAnswer,
    SwitchOutputs,
    TroublesAnswer,
    UnbypassZones,
    UserCode,
    ZonesAnswer,
    ZoneState,
    ZoneTemperatureAnswer,
    decode_answer,
    describe_record,
    encode_frame,
    encode_request,
    event_code,
)

KEY = "Integra1"
DEADLINE = 10.0
A = TypeVar("A")
GOOD_CODE = UserCode.from_digits(SAMPLE_USER_CODE)
WRONG_CODE = UserCode.from_digits("9999")


class Client:
    """A minimal client built from the codec: what the edge link will do, without retries."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, key: str | None) -> None:
        self.reader = reader
        self.writer = writer
        self.channel = FrameChannel.for_key(key)
        self.pending: list[FrameEvent] = []

    @classmethod
    async def connect(cls, port: int, key: str | None = None) -> Client:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer, key)

    async def next_event(self, timeout: float = DEADLINE) -> FrameEvent | None:
        """The next decoder event, or None when the module closed the connection."""
        deadline = time.monotonic() + timeout
        while not self.pending:
            data = await asyncio.wait_for(self.reader.read(4096), max(0.0, deadline - time.monotonic()))
            if not data:
                return None
            self.pending.extend(self.channel.feed(data))
        return self.pending.pop(0)

    async def next_answer(self) -> Answer:
        event = await self.next_event()
        assert isinstance(event, Frame), f"expected a frame, got {event!r}"
        return decode_answer(event)

    async def ask(self, request: Request) -> Answer:
        self.writer.write(self.channel.encode(encode_request(request)))
        return await self.next_answer()

    async def ask_as(self, request: Request, kind: type[A]) -> A:
        answer = await self.ask(request)
        assert isinstance(answer, kind), f"expected {kind.__name__}, got {answer!r}"
        return answer

    async def closed_by_module(self) -> bool:
        """Wait (with the deadline) until the module closes the connection."""
        while True:
            try:
                data = await asyncio.wait_for(self.reader.read(4096), DEADLINE)
            except ConnectionError:
                return True
            if not data:
                return True

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except ConnectionError:
            pass


def armed(partitions: set[int]) -> PartitionsAnswer:
    return PartitionsAnswer(PartitionState.ARMED, frozenset(partitions))


@pytest.fixture(params=[None, KEY], ids=["plain", "encrypted"])
def key(request: pytest.FixtureRequest) -> str | None:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
async def emulator(key: str | None) -> AsyncIterator[SatelEmulator]:
    async with SatelEmulator(port=0, key=key) as emu:
        yield emu


@pytest.fixture
async def client(emulator: SatelEmulator, key: str | None) -> AsyncIterator[Client]:
    connected = await Client.connect(emulator.port, key)
    yield connected
    await connected.close()


async def test_read_zones(client: Client) -> None:
    assert await client.ask(ReadZones()) == ZonesAnswer(ZoneState.VIOLATION, frozenset())
    assert await client.ask(ReadZones(wide=True)) == ZonesAnswer(ZoneState.VIOLATION, frozenset(), wide=True)


async def test_violation_sets_new_data_bit_then_zone_bit(emulator: SatelEmulator, client: Client) -> None:
    await client.ask(ReadZones())  # reading clears the bit, whatever happened before
    first = await client.ask_as(ReadNewData(), NewDataAnswer)
    assert ZoneState.VIOLATION not in first.commands

    emulator.violate_zone(3)
    new_data = await client.ask_as(ReadNewData(), NewDataAnswer)
    assert ZoneState.VIOLATION in new_data.commands
    assert PartitionState.VIOLATED_ZONES in new_data.commands
    assert await client.ask(ReadZones()) == ZonesAnswer(ZoneState.VIOLATION, frozenset({3}))
    after = await client.ask_as(ReadNewData(), NewDataAnswer)
    assert ZoneState.VIOLATION not in after.commands

    emulator.restore_zone(3)
    assert await client.ask(ReadZones()) == ZonesAnswer(ZoneState.VIOLATION, frozenset())


async def test_arming_results(emulator: SatelEmulator, client: Client) -> None:
    assert await client.ask(Arm(WRONG_CODE, frozenset({1}))) == ResultAnswer(ResultCode.USER_CODE_NOT_FOUND)

    emulator.violate_zone(2)
    assert await client.ask(Arm(GOOD_CODE, frozenset({1}))) == ResultAnswer(ResultCode.CANNOT_ARM_USE_FORCE)
    assert await client.ask(ReadPartitions(PartitionState.ARMED)) == armed(set())

    assert await client.ask(Arm(GOOD_CODE, frozenset({1}), force=True)) == ResultAnswer(ResultCode.OK)
    assert await client.ask(ReadPartitions(PartitionState.ARMED)) == armed({1})

    emulator.tamper_zone(6)
    assert await client.ask(Arm(GOOD_CODE, frozenset({2}), force=True)) == ResultAnswer(ResultCode.CANNOT_ARM)

    assert await client.ask(Disarm(GOOD_CODE, frozenset({1}))) == ResultAnswer(ResultCode.OK)
    assert await client.ask(ReadPartitions(PartitionState.ARMED)) == armed(set())


async def test_arming_in_mode_and_no_access(client: Client) -> None:
    cleaner = UserCode.from_digits("5678")
    assert await client.ask(Arm(cleaner, frozenset({2}))) == ResultAnswer(ResultCode.NO_ACCESS)
    assert await client.ask(Arm(GOOD_CODE, frozenset({2}), mode=2)) == ResultAnswer(ResultCode.OK)
    mode_2 = PartitionsAnswer(PartitionState.ARMED_MODE_2, frozenset({2}))
    assert await client.ask(ReadPartitions(PartitionState.ARMED_MODE_2)) == mode_2


async def test_alarm_bypass_and_event_log(emulator: SatelEmulator, client: Client) -> None:
    assert await client.ask(BypassZones(GOOD_CODE, frozenset({4}))) == ResultAnswer(ResultCode.OK)
    assert await client.ask(Arm(GOOD_CODE, frozenset({1}))) == ResultAnswer(ResultCode.OK)
    emulator.violate_zone(4)  # bypassed: no alarm
    assert await client.ask(ReadZones(ZoneState.ALARM)) == ZonesAnswer(ZoneState.ALARM, frozenset())
    emulator.violate_zone(3)
    assert await client.ask(ReadZones(ZoneState.ALARM)) == ZonesAnswer(ZoneState.ALARM, frozenset({3}))
    in_alarm = PartitionsAnswer(PartitionState.ALARM, frozenset({1}))
    assert await client.ask(ReadPartitions(PartitionState.ALARM)) == in_alarm

    newest = await client.ask_as(ReadEvent(), EventAnswer)
    assert newest.record.event_class is EventClass.ZONE_AND_TAMPER_ALARMS
    assert (newest.record.code, newest.record.source, newest.record.partition) == (130, 3, 1)
    text = await client.ask_as(ReadEventText(newest.record.code), EventTextAnswer)
    assert text.text == "Burglary alarm"

    # Walk the log back to its end: alarm, arm, bypass.
    codes = []
    answer = newest
    while not answer.record.is_end:
        codes.append(answer.record.code)
        answer = await client.ask_as(ReadEvent(answer.previous_index), EventAnswer)
    assert codes == [130, 401, 570]

    assert await client.ask(Disarm(GOOD_CODE, frozenset({1}))) == ResultAnswer(ResultCode.OK)
    assert await client.ask(ReadZones(ZoneState.ALARM_MEMORY)) == ZonesAnswer(ZoneState.ALARM_MEMORY, frozenset({3}))
    assert await client.ask(ClearAlarm(GOOD_CODE, frozenset({1}))) == ResultAnswer(ResultCode.OK)
    assert await client.ask(ReadZones(ZoneState.ALARM_MEMORY)) == ZonesAnswer(ZoneState.ALARM_MEMORY, frozenset())


async def test_names_outputs_troubles_and_temperature(emulator: SatelEmulator, client: Client) -> None:
    name = await client.ask(ReadDeviceName(DeviceType.ZONE, 1))
    assert name == DeviceNameAnswer(DeviceType.ZONE, 1, 2, "Wejście główne")
    assert await client.ask(ReadDeviceName(DeviceType.ZONE, 99)) == ResultAnswer(ResultCode.OTHER_ERROR)

    assert await client.ask(SwitchOutputs(GOOD_CODE, frozenset({2}), OutputAction.ON)) == ResultAnswer(0)
    assert await client.ask(ReadOutputs()) == OutputsAnswer(frozenset({2}))

    emulator.trigger_trouble("ac")
    status = await client.ask_as(ReadStatus(), StatusAnswer)
    assert status.troubles and status.troubles_memory
    assert 8 in (await client.ask_as(ReadTroubles(1), TroublesAnswer)).active
    emulator.clear_trouble("ac")
    assert not (await client.ask_as(ReadStatus(), StatusAnswer)).troubles
    assert 8 in (await client.ask_as(ReadTroubles(1, memory=True), TroublesAnswer)).active

    assert (await client.ask_as(ReadZoneTemperature(8), ZoneTemperatureAnswer)).celsius == 21.5
    assert (await client.ask_as(ReadZoneTemperature(1), ZoneTemperatureAnswer)).celsius is None


async def test_unknown_request_gets_other_error(client: Client) -> None:
    client.writer.write(client.channel.encode(encode_frame(0x99, b"")))
    event = await client.next_event()
    assert isinstance(event, Frame) and decode_answer(event) == ResultAnswer(ResultCode.OTHER_ERROR)


async def test_push_mode(emulator: SatelEmulator, client: Client) -> None:
    started = await client.ask(StartPush(frozenset({ZoneState.VIOLATION, ZoneState.ALARM})))
    assert started == ResultAnswer(ResultCode.ACCEPTED)
    emulator.violate_zone(5)
    # Pushed zone bitmaps are 32 bytes, as an ETHM-1 Plus sends them.
    assert await client.next_answer() == ZonesAnswer(ZoneState.VIOLATION, frozenset({5}), wide=True)
    # A pushed answer counts as read.
    assert ZoneState.VIOLATION not in (await client.ask_as(ReadNewData(), NewDataAnswer)).commands

    # The answer to a request comes before what the request itself caused.
    assert await client.ask(Arm(GOOD_CODE, frozenset({2}), force=True)) == ResultAnswer(ResultCode.OK)
    forced = await client.next_answer()
    assert isinstance(forced, EventAnswer) and forced.record.code == 1001

    emulator.violate_zone(6)
    assert await client.next_answer() == ZonesAnswer(ZoneState.VIOLATION, frozenset({5, 6}), wide=True)
    assert await client.next_answer() == ZonesAnswer(ZoneState.ALARM, frozenset({6}), wide=True)
    alarm = await client.next_answer()
    assert isinstance(alarm, EventAnswer) and (alarm.record.code, alarm.record.source) == (130, 6)


async def test_push_mode_sends_32_byte_bitmaps_whatever_the_panel(key: str | None) -> None:
    # An INTEGRA 128 behind a module without the 32-byte capability: polled bitmaps are 16 bytes,
    # pushed ones 32 all the same.
    panel = sample_panel()
    panel.info = ModuleInfo(module_capabilities=0x00, panel_type=3)
    async with SatelEmulator(port=0, key=key, panel=panel) as emulator:
        client = await Client.connect(emulator.port, key)
        client.writer.write(client.channel.encode(encode_request(ReadZones())))
        polled = await client.next_event()
        assert isinstance(polled, Frame) and len(polled.data) == 16
        await client.ask(StartPush(frozenset({ZoneState.VIOLATION, Cmd.OUTPUTS_STATE})))
        emulator.violate_zone(2)
        pushed = await client.next_event()
        assert isinstance(pushed, Frame) and (pushed.cmd, len(pushed.data)) == (ZoneState.VIOLATION, 32)
        assert decode_answer(pushed) == ZonesAnswer(ZoneState.VIOLATION, frozenset({2}), wide=True)
        assert await client.ask(SwitchOutputs(GOOD_CODE, frozenset({1}))) == ResultAnswer(ResultCode.OK)
        outputs = await client.next_event()
        assert isinstance(outputs, Frame) and (outputs.cmd, len(outputs.data)) == (Cmd.OUTPUTS_STATE, 32)
        await client.close()


async def test_event_log_walk_and_texts(emulator: SatelEmulator, client: Client) -> None:
    """Every action logs its record, with the user or zone in the source byte; a walk from the
    newest follows the event index of each answer back to 'end of events'."""
    assert await client.ask(Arm(GOOD_CODE, frozenset({1}))) == ResultAnswer(ResultCode.OK)
    emulator.violate_zone(2)
    emulator.tamper_zone(7)
    emulator.trigger_trouble("ac")
    assert await client.ask(ClearAlarm(GOOD_CODE, frozenset({1}))) == ResultAnswer(ResultCode.OK)
    cleaner = UserCode.from_digits("5678")
    assert await client.ask(Disarm(cleaner, frozenset({1}))) == ResultAnswer(ResultCode.OK)
    assert await client.ask(UnbypassZones(GOOD_CODE, frozenset({5}))) == ResultAnswer(ResultCode.OK)

    walked = []
    answer = await client.ask_as(ReadEvent(), EventAnswer)
    assert answer.requested_index == NEWEST_EVENT
    while not answer.record.is_end:
        walked.append(answer.record)
        requested = answer.previous_index
        answer = await client.ask_as(ReadEvent(requested), EventAnswer)
        assert answer.requested_index == requested
    described = [
        (d.code, d.restore, d.category, d.source, d.number) for d in map(describe_record, reversed(walked))
    ]
    assert described == [
        (401, True, EventCategory.ARM, SourceKind.USER, 1),
        (130, False, EventCategory.ALARM, SourceKind.ZONE, 2),
        (144, False, EventCategory.TAMPER, SourceKind.ZONE, 7),
        (301, False, EventCategory.TROUBLE, SourceKind.NONE, None),
        (406, False, EventCategory.ALARM_CLEARED, SourceKind.USER, 1),
        (401, False, EventCategory.DISARM, SourceKind.USER, 2),
        (570, True, EventCategory.BYPASS, SourceKind.ZONE, 5),
    ]
    assert [record.partition for record in reversed(walked)] == [1, 1, 2, 1, 1, 1, 2]

    for code, restore, text in ((130, False, "Burglary alarm"), (401, True, "Arm by user"), (999, False, "Unknown event")):
        answer = await client.ask_as(ReadEventText(code, restore, long=True), EventTextAnswer)
        assert (answer.text, answer.long_kind) == (text, event_code(code).long_kind)


async def test_a_cleared_event_log_starts_with_the_reset(emulator: SatelEmulator, client: Client) -> None:
    emulator.tamper_zone(1)
    old = await client.ask_as(ReadEvent(), EventAnswer)
    emulator.clear_event_log()
    newest = await client.ask_as(ReadEvent(), EventAnswer)
    assert (newest.record.code, describe_record(newest.record).category) == (621, EventCategory.SYSTEM)
    assert newest.previous_index != old.previous_index
    assert (await client.ask_as(ReadEvent(newest.previous_index), EventAnswer)).record.is_end


async def test_names_are_sent_as_stored_nul_included(emulator: SatelEmulator, client: Client) -> None:
    emulator.rename("zone", 3, "Biu\x00ro")
    client.writer.write(client.channel.encode(encode_request(ReadDeviceName(DeviceType.ZONE, 3))))
    frame = await client.next_event()
    assert isinstance(frame, Frame) and frame.data[3:19] == b"Biu\x00ro".ljust(16)
    # The codec cleans what the panel sends.
    assert decode_answer(frame) == DeviceNameAnswer(DeviceType.ZONE, 3, 1, "Biuro")


async def test_second_client_gets_busy_banner(emulator: SatelEmulator, client: Client, key: str | None) -> None:
    await client.ask(ReadStatus())
    second = await Client.connect(emulator.port, key)
    assert await second.next_event() == Busy()
    assert await second.next_event() is None
    await second.close()
    assert emulator.server.stats.busy_rejections == 1
    assert await client.ask(ReadZones()) == ZonesAnswer(ZoneState.VIOLATION, frozenset())


async def test_drop_first_client_mode(key: str | None) -> None:
    async with SatelEmulator(port=0, key=key, drop_first_client=True) as emulator:
        first = await Client.connect(emulator.port, key)
        await first.ask(ReadStatus())
        second = await Client.connect(emulator.port, key)
        assert await first.closed_by_module()
        assert await second.ask(ReadZones()) == ZonesAnswer(ZoneState.VIOLATION, frozenset())
        await first.close()
        await second.close()


async def test_idle_connection_is_dropped(key: str | None) -> None:
    async with SatelEmulator(port=0, key=key, idle_timeout=0.3) as emulator:
        client = await Client.connect(emulator.port, key)
        await client.ask(ReadStatus())
        assert await client.closed_by_module()
        assert emulator.server.stats.idle_drops == 1
        await client.close()
        await wait_until(lambda: not emulator.server.client_connected, what="the module to free up")
        # The module is free again.
        again = await Client.connect(emulator.port, key)
        assert await again.ask(ReadZones()) == ZonesAnswer(ZoneState.VIOLATION, frozenset())
        await again.close()


async def test_cut_connections(emulator: SatelEmulator, client: Client) -> None:
    await client.ask(ReadStatus())
    emulator.cut_connections()
    assert await client.closed_by_module()


async def test_corrupt_next_frame_and_response_delay(emulator: SatelEmulator, client: Client) -> None:
    emulator.corrupt_next_frame()
    client.writer.write(client.channel.encode(encode_request(ReadZones())))
    event = await client.next_event()
    assert isinstance(event, ProtocolError) and event.reason is ErrorReason.BAD_CHECKSUM
    assert await client.ask(ReadZones()) == ZonesAnswer(ZoneState.VIOLATION, frozenset())

    emulator.set_response_delay(0.2)
    started = time.monotonic()
    await client.ask(ReadStatus())
    assert time.monotonic() - started >= 0.2


async def test_wrong_key_client_gets_no_frames() -> None:
    async with SatelEmulator(port=0, key=KEY) as emulator:
        client = await Client.connect(emulator.port)
        # Fixed header bytes make what the module decrypts (garbage) the same on every run.
        wrong = EncryptedSession("not-the-key", id_s=1, random_bytes=lambda n: bytes(n))
        client.writer.write(wrong.wrap(encode_request(ReadZones())))
        await wait_until(lambda: emulator.server.stats.protocol_errors > 0, what="a protocol error")
        assert emulator.server.stats.frames_received == 0
        await client.close()


async def test_code_prefix(key: str | None) -> None:
    async with SatelEmulator(port=0, key=key, panel=sample_panel(code_prefix="97")) as emulator:
        client = await Client.connect(emulator.port, key)
        assert await client.ask(Arm(GOOD_CODE, frozenset({1}))) == ResultAnswer(ResultCode.USER_CODE_NOT_FOUND)
        with_prefix = UserCode.from_digits(SAMPLE_USER_CODE, prefix="97")
        assert await client.ask(Arm(with_prefix, frozenset({1}))) == ResultAnswer(ResultCode.OK)
        await client.close()


async def test_diagnostics_redact_secrets(emulator: SatelEmulator, client: Client, key: str | None) -> None:
    await client.ask(ReadStatus())
    dump = json.dumps(emulator.diagnostics())
    assert SAMPLE_USER_CODE not in dump and "5678" not in dump
    assert KEY not in dump
    assert emulator.diagnostics()["encryption"]["enabled"] is (key is not None)
    assert emulator.diagnostics()["client_connected"] is True
