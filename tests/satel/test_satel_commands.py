"""Requests and answers: byte vectors for every command family, errors, and round-trip properties.

Expected payloads are written out by hand from the protocol reference; the framing around them
comes from an independent transcription of the reference checksum and stuffing rules.
"""

from __future__ import annotations

import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_bridges.satel.protocol import (
    NEWEST_EVENT,
    Arm,
    BypassZones,
    ClearAlarm,
    DeviceNameAnswer,
    DeviceType,
    Disarm,
    EventAnswer,
    EventClass,
    EventRecord,
    EventTextAnswer,
    Frame,
    FrameDecoder,
    IntegraVersionAnswer,
    ModuleVersionAnswer,
    MonitoringStatus,
    NewDataAnswer,
    OutputAction,
    OutputsAnswer,
    PartitionsAnswer,
    PartitionState,
    ReadDeviceName,
    ReadEvent,
    ReadEventText,
    ReadIntegraVersion,
    ReadModuleVersion,
    ReadNewData,
    ReadOutputs,
    ReadPartitions,
    ReadStatus,
    ReadTroubles,
    ReadZones,
    ReadZoneTemperature,
    ResultAnswer,
    ResultCode,
    SatelDecodeError,
    StartPush,
    StatusAnswer,
    SwitchOutputs,
    TroublesAnswer,
    UnbypassZones,
    UnknownAnswer,
    UserCode,
    ZonesAnswer,
    ZoneState,
    ZoneTemperatureAnswer,
    decode_answer,
    decode_event_record,
    decode_request,
    encode_answer,
    encode_event_record,
    encode_request,
)


def reference_frame(cmd: int, data: bytes) -> bytes:
    body = bytes((cmd,)) + data
    crc = 0x147A
    for byte in body:
        crc = ((crc << 1) & 0xFFFF) | (crc >> 15)
        crc ^= 0xFFFF
        crc = (crc + (crc >> 8) + byte) & 0xFFFF
    raw = body + crc.to_bytes(2, "big")
    return b"\xfe\xfe" + raw.replace(b"\xfe", b"\xfe\xf0") + b"\xfe\x0d"


def h(text: str) -> bytes:
    return bytes.fromhex(text)


CODE_1234 = UserCode.from_digits("1234")
CODE_1234_HEX = "12 34 ff ff ff ff ff ff"
# Manual's example partition list: partitions 1, 2 and 29.
PARTITIONS_1_2_29 = "03 00 00 10"
# Manual's example zone list: zones 1, 3, 62 and 120.
ZONES_1_3_62_120 = "05 00 00 00 00 00 00 20 00 00 00 00 00 00 80 00"

REQUEST_VECTORS = [
    (ReadZones(), 0x00, ""),
    (ReadZones(ZoneState.TAMPER, wide=True), 0x01, "00"),
    (ReadZones(ZoneState.ALARM_MEMORY), 0x04, ""),
    (ReadZones(ZoneState.BYPASS), 0x06, ""),
    (ReadZones(ZoneState.LONG_VIOLATION_TROUBLE), 0x08, ""),
    (ReadZones(ZoneState.MASKED_MEMORY), 0x29, ""),
    (ReadPartitions(PartitionState.ARMED_SUPPRESSED), 0x09, ""),
    (ReadPartitions(PartitionState.ARMED), 0x0A, ""),
    (ReadPartitions(PartitionState.EXIT_TIME_SHORT), 0x10, ""),
    (ReadPartitions(PartitionState.FIRE_ALARM_MEMORY), 0x16, ""),
    (ReadPartitions(PartitionState.VIOLATED_ZONES), 0x25, ""),
    (ReadPartitions(PartitionState.ARMED_MODE_1), 0x2A, ""),
    (ReadOutputs(), 0x17, ""),
    (ReadOutputs(wide=True), 0x17, "00"),
    (ReadStatus(), 0x1A, ""),
    (ReadTroubles(1), 0x1B, ""),
    (ReadTroubles(5), 0x1F, ""),
    (ReadTroubles(1, memory=True), 0x20, ""),
    (ReadTroubles(5, memory=True), 0x24, ""),
    (ReadModuleVersion(), 0x7C, ""),
    (ReadZoneTemperature(8), 0x7D, "08"),
    (ReadZoneTemperature(256), 0x7D, "00"),
    (ReadIntegraVersion(), 0x7E, ""),
    (ReadNewData(), 0x7F, ""),
    (ReadNewData(wide=True), 0x7F, "00"),
    (StartPush(frozenset({0x00, 0x02, 0x17, 0x5F})), 0x7F, "05 00 80 00 00 00 00 00 00 00 00 80"),
    (Arm(CODE_1234, frozenset({1, 2, 29})), 0x80, f"{CODE_1234_HEX} {PARTITIONS_1_2_29}"),
    (Arm(CODE_1234, frozenset({1}), mode=3), 0x83, f"{CODE_1234_HEX} 01 00 00 00"),
    (Arm(CODE_1234, frozenset({2}), mode=0, force=True), 0xA0, f"{CODE_1234_HEX} 02 00 00 00"),
    (Arm(CODE_1234, frozenset({32}), mode=2, force=True), 0xA2, f"{CODE_1234_HEX} 00 00 00 80"),
    (Disarm(CODE_1234, frozenset({1, 2})), 0x84, f"{CODE_1234_HEX} 03 00 00 00"),
    (ClearAlarm(CODE_1234, frozenset({1})), 0x85, f"{CODE_1234_HEX} 01 00 00 00"),
    (BypassZones(CODE_1234, frozenset({1, 3, 62, 120})), 0x86, f"{CODE_1234_HEX} {ZONES_1_3_62_120}"),
    (
        UnbypassZones(CODE_1234, frozenset({1, 256}), wide=True),
        0x87,
        f"{CODE_1234_HEX} 01 {'00 ' * 30} 80",
    ),
    (SwitchOutputs(CODE_1234, frozenset({2}), OutputAction.ON), 0x88, f"{CODE_1234_HEX} 02 {'00 ' * 15}"),
    (SwitchOutputs(CODE_1234, frozenset({1}), OutputAction.OFF), 0x89, f"{CODE_1234_HEX} 01 {'00 ' * 15}"),
    (SwitchOutputs(CODE_1234, frozenset({9}), OutputAction.TOGGLE), 0x91, f"{CODE_1234_HEX} 00 01 {'00 ' * 14}"),
    (ReadEvent(), 0x8C, "ff ff ff"),
    (ReadEvent(0x012345), 0x8C, "01 23 45"),
    (ReadEventText(1001, long=True), 0x8F, "83 e9"),
    (ReadEventText(130, restore=True), 0x8F, "04 82"),
    (ReadDeviceName(DeviceType.ZONE, 3), 0xEE, "01 03"),
    (ReadDeviceName(DeviceType.OUTPUT, 256), 0xEE, "04 00"),
    (ReadDeviceName(DeviceType.USER, 255), 0xEE, "02 ff"),
]

EVENT_RECORD = EventRecord(
    not_empty=True,
    present=True,
    year_marker=2024 % 4,
    monitoring_1=MonitoringStatus.SENT,
    monitoring_2=MonitoringStatus.NOT_MONITORED,
    event_class=EventClass.ZONE_AND_TAMPER_ALARMS,
    day=17,
    month=5,
    minutes=13 * 60 + 45,
    partition=2,
    restore=False,
    code=130,
    source=7,
    object_number=1,
    user_control=3,
)
# 00 1 1 11 01 | 000 10001 | 0101 0011 | 0x39 | 00001 0 00 | 0x82 | 07 | 001 00011
EVENT_RECORD_HEX = "3d 11 53 39 08 82 07 23"

ANSWER_VECTORS = [
    (ZonesAnswer(ZoneState.VIOLATION, frozenset({1, 3, 62, 120})), 0x00, ZONES_1_3_62_120),
    (ZonesAnswer(ZoneState.VIOLATION, frozenset({2, 3, 4, 5, 6, 7, 8})), 0x00, "fe" + " 00" * 15),
    (
        ZonesAnswer(ZoneState.TAMPER_ALARM, frozenset({1, 129, 256}), wide=True),
        0x03,
        "01" + " 00" * 15 + " 01" + " 00" * 14 + " 80",
    ),
    (ZonesAnswer(ZoneState.ISOLATE, frozenset()), 0x26, "00 " * 16),
    (PartitionsAnswer(PartitionState.ARMED, frozenset({1, 2, 29})), 0x0A, PARTITIONS_1_2_29),
    (PartitionsAnswer(PartitionState.WARNING_ALARMS, frozenset({8})), 0x2B, "80 00 00 00"),
    (OutputsAnswer(frozenset({1, 16})), 0x17, "01 80" + " 00" * 14),
    (OutputsAnswer(frozenset({256}), wide=True), 0x17, "00 " * 31 + "80"),
    (StatusAnswer(datetime.datetime(2024, 5, 17, 13, 45, 9), 0x40, 0x20), 0x1A, "20 24 05 17 13 45 09 40 20"),
    (TroublesAnswer(1, False, bytes([0x80]) + bytes(46)), 0x1B, "80" + " 00" * 46),
    (TroublesAnswer(2, True, bytes(39)), 0x21, "00 " * 39),
    (TroublesAnswer(5, True, bytes(48)), 0x24, "00 " * 48),
    (ModuleVersionAnswer("12320120527", 0x01), 0x7C, "31 32 33 32 30 31 32 30 35 32 37 01"),
    (ZoneTemperatureAnswer(8, 153), 0x7D, "08 00 99"),
    (ZoneTemperatureAnswer(256, 0xFFFF), 0x7D, "00 ff ff"),
    (IntegraVersionAnswer(72, "12120180502", 0, True), 0x7E, "48 31 32 31 32 30 31 38 30 35 30 32 00 ff"),
    (NewDataAnswer(frozenset({0x00, 0x1A})), 0x7F, "01 00 00 04 00"),
    (NewDataAnswer(frozenset({0x2F}), size=6), 0x7F, "00 00 00 00 00 80"),
    (ResultAnswer(ResultCode.OK), 0xEF, "00"),
    (ResultAnswer(ResultCode.CANNOT_ARM_USE_FORCE), 0xEF, "11"),
    (ResultAnswer(ResultCode.ACCEPTED), 0xEF, "ff"),
    (EventAnswer(EVENT_RECORD, 0x000102, NEWEST_EVENT), 0x8C, f"{EVENT_RECORD_HEX} 00 01 02 ff ff ff"),
    (
        EventTextAnswer(130, False, False, 1, 0x0003, "Burglary alarm"),
        0x8F,
        "00 82 01 00 03" + " 42 75 72 67 6c 61 72 79 20 61 6c 61 72 6d 20 20",
    ),
    (
        EventTextAnswer(401, True, True, 2, 0x0005, "Arm by user"),
        0x8F,
        "85 91 02 00 05 41 72 6d 20 62 79 20 75 73 65 72" + " 20" * 35,
    ),
    (
        DeviceNameAnswer(DeviceType.ZONE, 1, 2, "Wejście główne"),
        0xEE,
        "01 01 02 57 65 6a 9c 63 69 65 20 67 b3 f3 77 6e 65 20 20",
    ),
    (
        DeviceNameAnswer(DeviceType.ZONE_WITH_PARTITION, 256, 1, "Strefa", 2),
        0xEE,
        "05 00 01 53 74 72 65 66 61" + " 20" * 10 + " 02",
    ),
]


@pytest.mark.parametrize(("request_", "cmd", "data"), REQUEST_VECTORS, ids=lambda v: type(v).__name__)
def test_request_vectors(request_: object, cmd: int, data: str) -> None:
    assert encode_request(request_) == reference_frame(cmd, h(data))
    assert decode_request(Frame(cmd, h(data))) == request_


@pytest.mark.parametrize(("answer", "cmd", "data"), ANSWER_VECTORS, ids=lambda v: type(v).__name__)
def test_answer_vectors(answer: object, cmd: int, data: str) -> None:
    assert encode_answer(answer) == reference_frame(cmd, h(data))
    assert decode_answer(Frame(cmd, h(data))) == answer


def test_full_frame_with_stuffed_checksum() -> None:
    # Result 0x54 has checksum 0x4EFE; the whole frame as it travels.
    assert encode_answer(ResultAnswer(0x54)) == h("fe fe ef 54 4e fe f0 fe 0d")


# --- user codes -----------------------------------------------------------------------------


def test_user_code_vectors() -> None:
    assert UserCode.from_digits("1234").raw == h("12 34 ff ff ff ff ff ff")
    assert UserCode.from_digits("12347").raw == h("12 34 7f ff ff ff ff ff")
    assert UserCode.from_digits("1234", prefix="97").raw == h("97 12 34 ff ff ff ff ff")
    assert UserCode.from_digits("87654321", prefix="12345678").raw == h("12 34 56 78 87 65 43 21")
    assert UserCode.from_digits("1234", prefix="97").digits == "971234"


@pytest.mark.parametrize("code", ["", "123456789", "12a4", "12 34", "١٢٣٤", "-123"])
def test_user_code_refuses_anything_but_1_to_8_digits(code: str) -> None:
    with pytest.raises(ValueError, match="user code must be 1–8 decimal digits"):
        UserCode.from_digits(code)


def test_user_code_prefix_is_checked_too() -> None:
    with pytest.raises(ValueError, match="code prefix"):
        UserCode.from_digits("1234", prefix="9x")


def test_user_code_never_shows_in_repr() -> None:
    request = Arm(UserCode.from_digits("4321"), frozenset({1}))
    assert "4321" not in repr(request) and "43 21" not in repr(request)
    assert "<redacted>" in repr(request)


def test_malformed_code_bytes_have_no_digits() -> None:
    assert UserCode(h("12 ab ff ff ff ff ff ff")).digits is None
    assert UserCode(h("ff ff ff ff ff ff ff ff")).digits is None


# --- events ---------------------------------------------------------------------------------


def test_event_record_fields() -> None:
    record = decode_event_record(h(EVENT_RECORD_HEX))
    assert record == EVENT_RECORD
    assert record.timestamp(datetime.datetime(2025, 1, 1)) == datetime.datetime(2024, 5, 17, 13, 45)
    assert not record.is_end
    assert decode_event_record(bytes(8)).is_end


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=8, max_size=8))
def test_every_event_record_bit_round_trips(data: bytes) -> None:
    assert encode_event_record(decode_event_record(data)) == data


# --- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "frame",
    [
        Frame(0x00, bytes(15)),  # zone bitmap must be 16 or 32 bytes
        Frame(0x0A, bytes(5)),
        Frame(0x1B, bytes(46)),
        Frame(0x7F, bytes(4)),
        Frame(0x7E, b"\x48" + b"\xff" * 11 + b"\x00\xff"),  # version not ASCII
        Frame(0x8F, h("80 01 00 00 00") + bytes(16)),  # long flag but short text
        Frame(0xEE, h("00 00 00") + bytes(16)),  # partition 0
        Frame(0xEF, b""),
    ],
)
def test_malformed_answers_raise_a_typed_error(frame: Frame) -> None:
    with pytest.raises(SatelDecodeError) as caught:
        decode_answer(frame)
    assert caught.value.frame == frame


def test_unknown_answer_is_not_an_error() -> None:
    assert decode_answer(Frame(0x99, b"\x01")) == UnknownAnswer(0x99, b"\x01")


@pytest.mark.parametrize(
    "frame",
    [Frame(0x00, b"\x01"), Frame(0x80, bytes(11)), Frame(0x86, bytes(20)), Frame(0x1A, b"\x00"), Frame(0x99, b"")],
)
def test_malformed_requests_raise_a_typed_error(frame: Frame) -> None:
    with pytest.raises(SatelDecodeError):
        decode_request(frame)


@pytest.mark.parametrize(
    "build",
    [
        lambda: Arm(CODE_1234, frozenset({33})),
        lambda: Arm(CODE_1234, frozenset({1}), mode=4),
        lambda: BypassZones(CODE_1234, frozenset({129})),
        lambda: ReadTroubles(6),
        lambda: ReadZoneTemperature(0),
        lambda: ReadEvent(1 << 24),
        lambda: ReadDeviceName(DeviceType.PARTITION, 256),
        lambda: StartPush(frozenset({96})),
        lambda: DeviceNameAnswer(1, 1, 0, "a name far longer than sixteen bytes"),
        lambda: DeviceNameAnswer(1, 1, 0, "日本"),
        lambda: TroublesAnswer(1, False, bytes(3)),
        lambda: ModuleVersionAnswer("1.23"),
    ],
)
def test_invalid_fields_are_refused_with_value_error(build: object) -> None:
    with pytest.raises(ValueError):
        build()  # type: ignore[operator]


def test_sets_are_accepted_as_any_iterable() -> None:
    assert Arm(CODE_1234, [2, 1]) == Arm(CODE_1234, frozenset({1, 2}))  # type: ignore[arg-type]
    assert hash(Arm(CODE_1234, {1}))  # type: ignore[arg-type]


def test_result_answer_helpers() -> None:
    assert ResultAnswer(0x00).ok and ResultAnswer(0xFF).ok and not ResultAnswer(0x01).ok
    assert ResultAnswer(0x12).result is ResultCode.CANNOT_ARM
    assert ResultAnswer(0x83).result is None


def test_derived_values() -> None:
    assert ZoneTemperatureAnswer(1, 0x006E).celsius == 0.0
    assert ZoneTemperatureAnswer(1, 0x0001).celsius == -54.5
    assert ZoneTemperatureAnswer(1, 0xFFFF).celsius is None
    assert ModuleVersionAnswer("12320120527", 1).supports_wide
    status = StatusAnswer(None, 0xC0, 0x20)
    assert status.service_mode and status.troubles and status.troubles_memory
    assert TroublesAnswer(1, False, bytes([0x80, 0x01]) + bytes(45)).active == frozenset({8, 9})


def test_invalid_rtc_decodes_as_no_clock() -> None:
    assert decode_answer(Frame(0x1A, h("20 24 13 45 99 99 99 00 00"))).clock is None  # type: ignore[union-attr]
    assert decode_answer(Frame(0x1A, h("ff ff ff ff ff ff ff 00 00"))).clock is None  # type: ignore[union-attr]


# --- round-trip properties -----------------------------------------------------------------

digits = st.text("0123456789", min_size=1, max_size=8)
codes = st.builds(UserCode.from_digits, digits, st.one_of(st.just(""), digits))
partitions = st.frozensets(st.integers(1, 32), max_size=8)


def zone_sets(wide: bool) -> st.SearchStrategy[frozenset[int]]:
    return st.frozensets(st.integers(1, 256 if wide else 128), max_size=10)


def with_width(build: object) -> st.SearchStrategy[object]:
    return st.booleans().flatmap(lambda wide: build(wide))  # type: ignore[operator]


requests = st.one_of(
    st.builds(ReadZones, st.sampled_from(ZoneState), st.booleans()),
    st.builds(ReadPartitions, st.sampled_from(PartitionState)),
    st.builds(ReadOutputs, st.booleans()),
    st.just(ReadStatus()),
    st.builds(ReadTroubles, st.integers(1, 5), st.booleans()),
    st.just(ReadModuleVersion()),
    st.just(ReadIntegraVersion()),
    st.builds(ReadZoneTemperature, st.integers(1, 256)),
    st.builds(ReadNewData, st.booleans()),
    st.builds(StartPush, st.frozensets(st.integers(0, 95))),
    st.builds(Arm, codes, partitions, st.integers(0, 3), st.booleans()),
    st.builds(Disarm, codes, partitions),
    st.builds(ClearAlarm, codes, partitions),
    with_width(lambda w: st.builds(BypassZones, codes, zone_sets(w), st.just(w))),
    with_width(lambda w: st.builds(UnbypassZones, codes, zone_sets(w), st.just(w))),
    with_width(lambda w: st.builds(SwitchOutputs, codes, zone_sets(w), st.sampled_from(OutputAction), st.just(w))),
    st.builds(ReadEvent, st.integers(0, 0xFFFFFF)),
    st.builds(ReadEventText, st.integers(0, 0x3FF), st.booleans(), st.booleans()),
    st.builds(ReadDeviceName, st.integers(0, 255), st.integers(1, 255)),
    st.builds(ReadDeviceName, st.sampled_from([1, 4, 5]), st.just(256)),
)

_CP1250_UNDEFINED = {0x81, 0x83, 0x88, 0x90, 0x98}


def texts(size: int) -> st.SearchStrategy[str]:
    """Texts a panel may send that decode to themselves: no control bytes (0x7F is DEL), which
    the codec drops."""
    printable = st.integers(0x20, 0xFF).filter(lambda b: b not in _CP1250_UNDEFINED and b != 0x7F)
    return st.lists(printable, max_size=size).map(
        lambda values: bytes(values).decode("cp1250").rstrip(" ")
    )


versions = st.text("0123456789", min_size=11, max_size=11)
clocks = st.one_of(
    st.none(),
    st.datetimes(datetime.datetime(2000, 1, 1), datetime.datetime(2099, 12, 31)).map(
        lambda moment: moment.replace(microsecond=0)
    ),
)
# Sizes from the reference table: troubles parts 1-5, troubles memory parts 1-5.
TROUBLE_SIZES = {(1, False): 47, (2, False): 26, (3, False): 60, (4, False): 30, (5, False): 31}
TROUBLE_SIZES |= {(1, True): 47, (2, True): 39, (3, True): 60, (4, True): 30, (5, True): 48}
trouble_answers = st.sampled_from(sorted(TROUBLE_SIZES)).flatmap(
    lambda key: st.builds(
        TroublesAnswer,
        st.just(key[0]),
        st.just(key[1]),
        st.binary(min_size=TROUBLE_SIZES[key], max_size=TROUBLE_SIZES[key]),
    )
)
_ANSWER_CMDS = {s.value for s in ZoneState} | {s.value for s in PartitionState} | {
    0x17, 0x1A, *range(0x1B, 0x25), 0x7C, 0x7D, 0x7E, 0x7F, 0x8C, 0x8F, 0xEE, 0xEF,
}

answers = st.one_of(
    with_width(lambda w: st.builds(ZonesAnswer, st.sampled_from(ZoneState), zone_sets(w), st.just(w))),
    st.builds(PartitionsAnswer, st.sampled_from(PartitionState), partitions),
    with_width(lambda w: st.builds(OutputsAnswer, zone_sets(w), st.just(w))),
    st.builds(StatusAnswer, clocks, st.integers(0, 255), st.integers(0, 255)),
    trouble_answers,
    st.builds(ModuleVersionAnswer, versions, st.integers(0, 255)),
    st.builds(ZoneTemperatureAnswer, st.integers(1, 256), st.integers(0, 0xFFFF)),
    st.builds(IntegraVersionAnswer, st.integers(0, 255), versions, st.integers(0, 255), st.booleans()),
    st.integers(5, 7).flatmap(
        lambda size: st.builds(NewDataAnswer, st.frozensets(st.integers(0, size * 8 - 1)), st.just(size))
    ),
    st.builds(ResultAnswer, st.integers(0, 255)),
    st.builds(
        EventAnswer,
        st.binary(min_size=8, max_size=8).map(decode_event_record),
        st.integers(0, 0xFFFFFF),
        st.integers(0, 0xFFFFFF),
    ),
    st.booleans().flatmap(
        lambda long: st.builds(
            EventTextAnswer,
            st.integers(0, 0x3FF),
            st.booleans(),
            st.just(long),
            st.integers(0, 255),
            st.integers(0, 0xFFFF),
            texts(46 if long else 16),
        )
    ),
    st.builds(
        DeviceNameAnswer, st.integers(0, 255), st.integers(1, 255), st.integers(0, 255), texts(16),
        st.one_of(st.none(), st.integers(0, 255)),
    ),
    st.builds(
        UnknownAnswer, st.integers(0, 255).filter(lambda cmd: cmd not in _ANSWER_CMDS), st.binary(max_size=100)
    ),
)


def through_the_wire(wire: bytes) -> Frame:
    events = FrameDecoder().feed(wire)
    assert len(events) == 1 and isinstance(events[0], Frame)
    return events[0]


@settings(max_examples=200, deadline=None)
@given(requests)
def test_every_request_round_trips(request_: object) -> None:
    assert decode_request(through_the_wire(encode_request(request_))) == request_  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None)
@given(answers)
def test_every_answer_round_trips(answer: object) -> None:
    assert decode_answer(through_the_wire(encode_answer(answer))) == answer  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 255), st.binary(max_size=80))
def test_decoding_arbitrary_frames_only_raises_the_typed_error(cmd: int, data: bytes) -> None:
    for decode in (decode_answer, decode_request):
        try:
            decode(Frame(cmd, data))
        except SatelDecodeError:
            pass
