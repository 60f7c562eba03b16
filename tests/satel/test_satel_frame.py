"""Frame layer: checksum, stuffing and the streaming decoder, by byte vectors and properties."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_bridges.satel.protocol import (
    BUSY_BANNER,
    MAX_BODY,
    Busy,
    ErrorReason,
    Frame,
    FrameDecoder,
    ProtocolError,
    checksum,
    encode_frame,
)


def reference_checksum(data: bytes) -> int:
    """The reference's algorithm, transcribed step by step (independent of the table version)."""
    crc = 0x147A
    for byte in data:
        crc = ((crc << 1) & 0xFFFF) | (crc >> 15)
        crc ^= 0xFFFF
        crc = (crc + (crc >> 8) + byte) & 0xFFFF
    return crc


def reference_frame(cmd: int, data: bytes) -> bytes:
    body = bytes((cmd,)) + data
    raw = body + reference_checksum(body).to_bytes(2, "big")
    return b"\xfe\xfe" + raw.replace(b"\xfe", b"\xfe\xf0") + b"\xfe\x0d"


def decode_all(data: bytes) -> list[Frame | ProtocolError | Busy]:
    return FrameDecoder().feed(data)


# --- checksum and encoding ----------------------------------------------------------------


def test_manual_checksum_example() -> None:
    assert checksum(bytes.fromhex("E01234FFFF")) == 0x8A9B


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64))
def test_checksum_matches_reference_transcription(data: bytes) -> None:
    assert checksum(data) == reference_checksum(data)


def test_plain_frame_vector() -> None:
    # 0x00 zones violation query, no data.
    assert encode_frame(0x00) == bytes.fromhex("fe fe 00 d7 e2 fe 0d")


def test_stuffed_data_byte() -> None:
    # Zones 2..8 violated: data byte FE goes out as FE F0.
    frame = encode_frame(0x00, bytes.fromhex("fe") + bytes(15))
    assert frame == reference_frame(0x00, bytes.fromhex("fe") + bytes(15))
    assert frame[3:5] == b"\xfe\xf0"
    assert decode_all(frame) == [Frame(0x00, bytes.fromhex("fe") + bytes(15))]


def test_stuffed_checksum_byte() -> None:
    # 7D 6F (temperature of zone 111) has checksum 0x4FFE: its low byte is sent stuffed.
    assert checksum(b"\x7d\x6f") == 0x4FFE
    frame = encode_frame(0x7D, b"\x6f")
    assert frame == bytes.fromhex("fe fe 7d 6f 4f fe f0 fe 0d")
    assert decode_all(frame) == [Frame(0x7D, b"\x6f")]


def test_encode_frame_rejects_bad_input() -> None:
    for cmd, data in ((256, b""), (-1, b""), (0x00, bytes(MAX_BODY))):
        try:
            encode_frame(cmd, data)
        except ValueError:
            continue
        raise AssertionError(f"encode_frame({cmd}, {len(data)} bytes) did not raise")


# --- decoder behaviour ----------------------------------------------------------------------


def test_busy_banner_is_its_own_event() -> None:
    assert decode_all(BUSY_BANNER) == [Busy()]
    decoder = FrameDecoder()
    events = [event for byte in BUSY_BANNER for event in decoder.feed(bytes((byte,)))]
    assert events == [Busy()]


def test_bad_checksum_is_reported_and_decoding_continues() -> None:
    good = encode_frame(0xEF, b"\x00")
    bad = bytearray(good)
    bad[4] ^= 0x01  # flip a checksum bit
    events = decode_all(bytes(bad) + good)
    assert events[0] == ProtocolError(ErrorReason.BAD_CHECKSUM, bytes(bad[2:6]), 4)
    assert events[1:] == [Frame(0xEF, b"\x00")]


def test_garbage_between_frames() -> None:
    one, two = encode_frame(0x7F, bytes(5)), encode_frame(0xEF, b"\x11")
    events = decode_all(b"\x01\x02hello" + one + b"\x0d\x0a" + two)
    assert [type(e) for e in events] == [ProtocolError, Frame, ProtocolError, Frame]
    assert events[0].reason is ErrorReason.GARBAGE and events[0].raw == b"\x01\x02hello"
    assert events[1] == Frame(0x7F, bytes(5)) and events[3] == Frame(0xEF, b"\x11")


def test_sync_resynchronises_a_partial_frame() -> None:
    partial = encode_frame(0x00, bytes(16))[:10]
    events = decode_all(partial + encode_frame(0xEF, b"\x00"))
    assert events[0].reason is ErrorReason.TRUNCATED
    assert events[1] == Frame(0xEF, b"\x00")


def test_more_than_two_fe_still_start_a_frame() -> None:
    assert decode_all(b"\xfe\xfe\xfe\xfe" + encode_frame(0xEF, b"\x01")[2:]) == [Frame(0xEF, b"\x01")]


def test_fe_command_byte_is_stuffed_and_decoded() -> None:
    frame = encode_frame(0xFE, b"\x01")
    assert frame.startswith(b"\xfe\xfe\xfe\xf0")
    assert decode_all(frame) == [Frame(0xFE, b"\x01")]


def test_bad_escape_is_an_error() -> None:
    events = decode_all(b"\xfe\xfe\xef\x00\xfe\x55\x00" + encode_frame(0xEF, b"\x02"))
    assert events[0].reason is ErrorReason.BAD_ESCAPE
    assert events[-1] == Frame(0xEF, b"\x02")


def test_too_short_frame() -> None:
    assert decode_all(b"\xfe\xfe\x01\x02\xfe\x0d")[0].reason is ErrorReason.TOO_SHORT


def test_too_long_frame_is_dropped_with_bounded_buffer() -> None:
    decoder = FrameDecoder()
    events = decoder.feed(b"\xfe\xfe" + b"\x01" * 5000)
    assert [e.reason for e in events] == [ErrorReason.TOO_LONG]
    assert len(events[0].raw) <= 64 and events[0].size > 2 * MAX_BODY
    assert decoder.buffered <= 2
    assert decoder.feed(encode_frame(0xEF, b"\x00")) == [Frame(0xEF, b"\x00")]


def test_unknown_command_bytes_are_frames_too() -> None:
    assert decode_all(encode_frame(0x99, b"abc")) == [Frame(0x99, b"abc")]


# --- properties -------------------------------------------------------------------------------

frames = st.builds(
    lambda cmd, data: (Frame(cmd, data), encode_frame(cmd, data)),
    # 0xF0 right after a stray FE is ambiguous by the protocol's own rules (FE FE FE F0 is also
    # "FE FE + escaped FE"); no command uses it.
    st.integers(0, 255).filter(lambda cmd: cmd != 0xF0),
    st.binary(max_size=40),
)


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({cut % (len(data) + 1) for cut in cuts})
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in zip(edges, edges[1:], strict=False)]


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=600), st.lists(st.integers(0, 10_000), max_size=20))
def test_arbitrary_bytes_never_raise_and_buffer_stays_bounded(data: bytes, cuts: list[int]) -> None:
    decoder = FrameDecoder()
    for chunk in chunked(data, cuts):
        for event in decoder.feed(chunk):
            assert isinstance(event, Frame | ProtocolError | Busy)
        assert decoder.buffered <= 2 * MAX_BODY + 2


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300), frames, st.lists(st.integers(0, 10_000), max_size=12))
def test_a_valid_frame_after_garbage_is_never_lost(garbage: bytes, frame: tuple[Frame, bytes], cuts: list[int]) -> None:
    expected, wire = frame
    decoder = FrameDecoder()
    events = [event for chunk in chunked(garbage + wire, cuts) for event in decoder.feed(chunk)]
    decoded = [event for event in events if isinstance(event, Frame)]
    assert decoded and decoded[-1] == expected


stream_items = st.one_of(
    frames.map(lambda f: f[1]),
    st.just(BUSY_BANNER),
    st.binary(max_size=20),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(stream_items, max_size=12), st.lists(st.integers(0, 10_000), max_size=30))
def test_chunking_does_not_change_frames_or_banners(items: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(items)
    whole = [e for e in FrameDecoder().feed(stream) if not isinstance(e, ProtocolError)]
    decoder = FrameDecoder()
    pieces = [e for chunk in chunked(stream, cuts) for e in decoder.feed(chunk) if not isinstance(e, ProtocolError)]
    assert pieces == whole


@settings(max_examples=100, deadline=None)
@given(st.lists(frames, max_size=10))
def test_frames_one_byte_at_a_time(items: list[tuple[Frame, bytes]]) -> None:
    decoder = FrameDecoder()
    stream = b"".join(wire for _, wire in items)
    events = [event for byte in stream for event in decoder.feed(bytes((byte,)))]
    assert events == [frame for frame, _ in items]
