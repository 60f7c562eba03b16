"""Encrypted integration mode: vectors worked out from the reference with the bare AES block cipher."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_bridges.satel.protocol import (
    BUSY_BANNER,
    Busy,
    EncryptedSession,
    ErrorReason,
    Frame,
    FrameChannel,
    PduCipher,
    ProtocolError,
    ReadStatus,
    ResultAnswer,
    ZonesAnswer,
    ZoneState,
    decode_answer,
    derive_aes_key,
    encode_answer,
    encode_request,
)

KEY = "Integra1"
AES_KEY = b"Integra1    Integra1    "


def fixed_random(n: int) -> bytes:
    return b"\x12\x34"[:n]


def aes_block(key: bytes, block: bytes) -> bytes:
    return Cipher(algorithms.AES(key), modes.ECB()).encryptor().update(block)


def by_hand(key: bytes, pdu: bytes) -> bytes:
    """The reference's chaining, one block at a time with nothing but the AES block function."""
    if len(pdu) < 16:
        pdu += bytes(16 - len(pdu))
    chain = aes_block(key, bytes(16))
    out = b""
    for start in range(0, len(pdu), 16):
        block = pdu[start : start + 16]
        if len(block) == 16:
            chain = aes_block(key, bytes(a ^ b for a, b in zip(block, chain, strict=True)))
            out += chain
        else:
            stream = aes_block(key, chain)
            out += bytes(a ^ b for a, b in zip(block, stream[: len(block)], strict=True))
    return out


def test_key_derivation() -> None:
    assert derive_aes_key(KEY) == AES_KEY
    assert derive_aes_key("ABCDEFGHIJKL") == b"ABCDEFGHIJKL" * 2


@pytest.mark.parametrize("key", ["", "ABCDEFGHIJKLM", "klucz-ą"])
def test_bad_keys_are_refused(key: str) -> None:
    with pytest.raises(ValueError, match="integration key"):
        EncryptedSession(key)


def test_pdu_shorter_than_a_block() -> None:
    frame = encode_request(ReadStatus())
    assert frame == bytes.fromhex("fe fe 1a d7 fc fe 0d")
    session = EncryptedSession(KEY, id_s=0x42, random_bytes=fixed_random)
    wire = session.wrap(frame)
    # header 12 34 | counter 00 00 | id_s 42 | id_r 00, then the 7-byte frame: 13 bytes, padded to 16.
    assert wire == bytes((16,)) + by_hand(AES_KEY, bytes.fromhex("12 34 00 00 42 00") + frame)
    assert wire == bytes.fromhex("10 c0 af 6d 81 08 d9 1d 5e 0d 7d e1 82 73 7f 51 06")


def test_pdu_with_a_partial_final_block_and_echoed_id() -> None:
    client = EncryptedSession(KEY, id_s=0x42, random_bytes=fixed_random)
    module = EncryptedSession(KEY, id_s=0x57, random_bytes=fixed_random)
    assert module.unwrap(client.wrap(encode_request(ReadStatus()))) == [encode_request(ReadStatus())]
    answer = encode_answer(ResultAnswer(0))
    assert client.unwrap(module.wrap(answer)) == [answer]

    frame = encode_answer(ZonesAnswer(ZoneState.VIOLATION, frozenset({3})))
    wire = client.wrap(frame)
    # 6 + 23 = 29 bytes: one whole block, then 13 bytes XORed with AES(previous block). The counter
    # is now 1 and id_r echoes the module's id_s 0x57.
    assert wire == bytes((29,)) + by_hand(AES_KEY, bytes.fromhex("12 34 00 01 42 57") + frame)
    assert wire == bytes.fromhex(
        "1d e3 7d ef de 34 06 83 10 94 39 1d b6 ba c8 13 fb 4f 0c 94 33 fc cc 70 1f 53 f8 41 d2 10"
    )


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=16, max_size=255))
def test_cipher_matches_the_by_hand_chaining_and_inverts(pdu: bytes) -> None:
    cipher = PduCipher(AES_KEY)
    encrypted = cipher.encrypt(pdu)
    assert encrypted == by_hand(AES_KEY, pdu)
    assert cipher.decrypt(encrypted) == pdu


def test_counter_rolls_with_every_pdu() -> None:
    session = EncryptedSession(KEY, id_s=1, random_bytes=fixed_random)
    frame = encode_answer(ResultAnswer(0))
    counters = [int.from_bytes(PduCipher(AES_KEY).decrypt(session.wrap(frame)[1:])[2:4], "big") for _ in range(3)]
    assert counters == [0, 1, 2]


def test_wrong_id_r_is_rejected() -> None:
    client = EncryptedSession(KEY, id_s=0x42)
    stranger = EncryptedSession(KEY, id_s=0x99)
    client.wrap(encode_request(ReadStatus()))  # now the client expects id_r == 0x42
    events = client.unwrap(stranger.wrap(encode_answer(ResultAnswer(0))))
    assert len(events) == 1 and isinstance(events[0], ProtocolError)
    assert events[0].reason is ErrorReason.ID_MISMATCH


def test_unwrap_byte_by_byte_and_busy_banner() -> None:
    module = EncryptedSession(KEY, id_s=7)
    channel = FrameChannel(EncryptedSession(KEY, id_s=8))
    wire = module.wrap(encode_answer(ResultAnswer(0x11))) + BUSY_BANNER
    events = [event for byte in wire for event in channel.feed(bytes((byte,)))]
    assert events == [Frame(0xEF, b"\x11"), Busy()]
    assert decode_answer(events[0]) == ResultAnswer(0x11)


def test_pdu_too_short_for_its_header_is_an_error_not_a_crash() -> None:
    events = EncryptedSession(KEY).unwrap(b"\x03abc")
    assert [type(e) for e in events] == [ProtocolError]
    assert events[0].reason is ErrorReason.BAD_PDU  # type: ignore[union-attr]


def test_wrong_key_gives_protocol_errors_only() -> None:
    wire = EncryptedSession("right").wrap(encode_answer(ResultAnswer(0)))
    events = FrameChannel(EncryptedSession("wrong")).feed(wire)
    assert all(isinstance(e, ProtocolError) for e in events)


def test_frame_too_long_for_the_length_byte() -> None:
    with pytest.raises(ValueError, match="length prefix"):
        EncryptedSession(KEY).wrap(bytes(250))


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=400), st.lists(st.integers(0, 1000), max_size=10))
def test_arbitrary_wire_bytes_never_raise(data: bytes, cuts: list[int]) -> None:
    channel = FrameChannel(EncryptedSession(KEY))
    points = sorted({cut % (len(data) + 1) for cut in cuts})
    edges = [0, *points, len(data)]
    for start, end in zip(edges, edges[1:], strict=False):
        for event in channel.feed(data[start:end]):
            assert isinstance(event, Frame | ProtocolError | Busy)
