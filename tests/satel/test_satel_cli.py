"""The two command lines: the protocol decoder and the standalone emulator, run as real processes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys

from firmware_bridges.satel.protocol import (
    Arm,
    EncryptedSession,
    Frame,
    FrameChannel,
    ReadZones,
    ResultAnswer,
    UserCode,
    ZonesAnswer,
    ZoneState,
    decode_answer,
    encode_answer,
    encode_request,
)

DECODE = [sys.executable, "-m", "firmware_bridges.satel.protocol", "decode"]


def run_decode(*args: str) -> list[dict[str, object]]:
    result = subprocess.run([*DECODE, *args], capture_output=True, text=True, timeout=60, check=True)
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_decode_prints_one_json_object_per_frame() -> None:
    answer = encode_answer(ZonesAnswer(ZoneState.VIOLATION, frozenset({1, 3}))).hex(" ")
    request = encode_request(ReadZones()).hex(":")
    objects = run_decode(answer, request, "fe fe ef 11", "4e bb fe 0d")
    assert objects[0] == {
        "cmd": 0,
        "name": "zones_violation",
        "data": "05" + "00" * 15,
        "crc_ok": True,
        "direction": "answer",
        "type": "ZonesAnswer",
        "fields": {"state": "violation", "zones": [1, 3], "wide": False},
    }
    assert objects[1]["direction"] == "request" and objects[1]["type"] == "ReadZones"
    # The last frame's bytes were split across two arguments; they are concatenated.
    assert objects[2]["name"] == "result" and objects[2]["crc_ok"] is True
    assert objects[2]["fields"] == {"code": 17, "result": "cannot_arm_use_force", "ok": False}


def test_decode_busy_banner_and_bad_checksum() -> None:
    objects = run_decode("10 42 75 73 79 21 0d 0a", "fe fe ef 00 00 00 fe 0d")
    assert objects[0] == {"name": "busy"}
    assert objects[1] == {"cmd": 0xEF, "name": "result", "data": "00", "crc_ok": False}


def test_decode_with_key_decrypts_first() -> None:
    wire = EncryptedSession("Integra1").wrap(encode_answer(ResultAnswer(0)))
    objects = run_decode("--key", "Integra1", wire.hex())
    assert objects == [
        {
            "cmd": 0xEF,
            "name": "result",
            "data": "00",
            "crc_ok": True,
            "direction": "answer",
            "type": "ResultAnswer",
            "fields": {"code": 0, "result": "ok", "ok": True},
        }
    ]


def test_decoded_fields_redact_user_codes() -> None:
    (record,) = run_decode(encode_request(Arm(UserCode.from_digits("4321"), frozenset({1}))).hex())
    assert record["type"] == "Arm"
    assert record["fields"] == {"code": "<redacted>", "partitions": [1], "mode": 0, "force": False}


def test_decode_rejects_bad_hex() -> None:
    result = subprocess.run([*DECODE, "fe fe zz"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "not hexadecimal" in result.stderr


async def test_emulator_runs_standalone() -> None:
    help_text = subprocess.run(
        [sys.executable, "-m", "firmware_bridges.satel.emulator", "--help"],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout
    assert "--port" in help_text and "--control-port" in help_text and "--key" in help_text

    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "firmware_bridges.satel.emulator", "--port", "0", "--key", "Integra1",
        stdout=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        banner = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
        port = int(banner.split(":")[1].split()[0])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        channel = FrameChannel.for_key("Integra1")
        writer.write(channel.encode(encode_request(ReadZones())))
        events: list[object] = []
        while not events:
            events = channel.feed(await asyncio.wait_for(reader.read(4096), 10))
        assert isinstance(events[0], Frame)
        assert decode_answer(events[0]) == ZonesAnswer(ZoneState.VIOLATION, frozenset())
        writer.close()
    finally:
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 30) == 0


def test_bench_script_prints_one_bench_line() -> None:
    result = subprocess.run(
        [sys.executable, "bench/satel_codec.py", "--quick"], capture_output=True, text=True, timeout=120, check=True
    )
    bench_lines = [line for line in result.stdout.splitlines() if line.startswith("BENCH ")]
    assert len(bench_lines) == 1
    name, unit, target, better = bench_lines[0].split(" ")[1:]
    assert name.startswith("satel_codec=") and float(name.split("=")[1]) > 0
    assert (unit, target, better) == ("frames/s", "target=200000", "better=higher")
