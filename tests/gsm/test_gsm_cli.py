"""``python -m firmware_bridges.gsm.pdu decode`` run as a real process."""

from __future__ import annotations

import datetime
import json
import subprocess
import sys

from firmware_bridges.gsm.pdu import Concat, encode_deliver

DECODE = [sys.executable, "-m", "firmware_bridges.gsm.pdu", "decode"]
HELLO = "07911326040000F0040B911346610089F60000208062917314080CC8329BFD065DDF72363904"


def test_decode_prints_one_object_per_pdu_and_carries_on_after_a_bad_one() -> None:
    when = datetime.datetime(2026, 1, 15, 7, 5, tzinfo=datetime.timezone(datetime.timedelta(hours=-5)))
    part = encode_deliver("BluLog", "Zażółć", encoding="ucs2", smsc_time=when, concat=Concat(513, 3, 2, 16)).hex()
    result = subprocess.run(
        [*DECODE, HELLO, "00FF", part],
        capture_output=True,
        timeout=60,
        check=True,
        env={"PYTHONIOENCODING": "utf-8", "PATH": ""},
    )
    good, bad, multipart = (json.loads(line) for line in result.stdout.decode("utf-8").splitlines())
    assert {k: good[k] for k in ("sender", "text", "timestamp", "encoding", "concat")} == {
        "sender": "+31641600986",
        "text": "Hello World!",
        "timestamp": "2002-08-26T19:37:41+00:00",
        "encoding": "gsm7",
        "concat": None,
    }
    assert bad == {"error": "TP-MTI 3 is not SMS-DELIVER", "pdu": "00FF"}
    assert multipart["text"] == "Zażółć" and multipart["sender"] == "BluLog"
    assert multipart["timestamp"] == "2026-01-15T07:05:00-05:00"
    assert multipart["concat"] == {"ref": 513, "total": 3, "part": 2, "ref_bits": 16}


def test_decode_without_a_pdu_is_a_usage_error() -> None:
    result = subprocess.run(DECODE, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "HEX" in result.stderr
