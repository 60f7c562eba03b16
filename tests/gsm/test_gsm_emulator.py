"""The emulated USB GSM modem (issue 14), driven as a host drives a real one: pyserial-asyncio on
its pseudo-terminal, AT command lines, PDUs read back and decoded with the project's codec, and the
HTTP control endpoint making SMS arrive and faults happen."""
from __future__ import annotations

import asyncio
import datetime
import json
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import AsyncIterator

import pytest
import serial_asyncio

from firmware_bridges.gsm.emulator import Fault, GsmEmulator
from firmware_bridges.gsm.pdu import decode_deliver
from shared.process import free_port

FINAL = ("OK", "ERROR", "+CMS ERROR", "+CME ERROR")
SENDER = "+48600123012"
POLISH = "Chłodnia: ąćęłńóśźż ĄĆĘŁŃÓŚŹŻ 9,4°C"


class Host:
    """A host on the modem's serial port: sends a command line, collects the reply up to its final
    result code; lines that are notifications go to `urcs`."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.urcs: list[str] = []

    async def line(self, timeout: float = 10) -> str:
        while True:
            raw = await asyncio.wait_for(self.reader.readuntil(b"\n"), timeout)
            text = raw.decode("ascii", "replace").strip()
            if text:
                return text

    async def at(self, command: str, timeout: float = 10) -> list[str]:
        self.writer.write(command.encode() + b"\r")
        await self.writer.drain()
        lines: list[str] = []
        while True:
            text = await self.line(timeout)
            if text == command:
                continue  # the echo
            if text.startswith(("+CMTI:", "RDY", "SMS Ready")) or (text == "+CPIN: READY" and command != "AT+CPIN?"):
                self.urcs.append(text)
                continue
            lines.append(text)
            if text.startswith(FINAL):
                return lines


@pytest.fixture
async def emulator(tmp_path: Path) -> AsyncIterator[GsmEmulator]:
    async with GsmEmulator(tmp_path / "ttyUSB0", control_port=0, capacity=3) as emu:
        yield emu


@pytest.fixture
async def host(emulator: GsmEmulator) -> AsyncIterator[Host]:
    reader, writer = await serial_asyncio.open_serial_connection(url=str(emulator.link), baudrate=115200)
    try:
        yield Host(reader, writer)
    finally:
        writer.close()


def _control(emulator: GsmEmulator, method: str, path: str, body: dict | None = None) -> tuple[int, object]:
    request = urllib.request.Request(f"http://127.0.0.1:{emulator.control_port}{path}", method=method,
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


async def test_the_modem_answers_the_command_set(host: Host) -> None:
    assert await host.at("AT") == ["OK"]
    assert await host.at("ATE0") == ["OK"]
    assert await host.at("AT+CPIN?") == ["+CPIN: READY", "OK"]
    assert await host.at("AT+CREG?") == ["+CREG: 0,1", "OK"]
    assert await host.at("AT+CSQ") == ["+CSQ: 20,99", "OK"]
    assert await host.at("AT+CGMI") == ["Vigil", "OK"]
    assert (await host.at("AT+CGSN"))[0].isdigit()
    assert await host.at("AT+CMGF=0") == ["OK"]
    assert await host.at("AT+CMGF=1") == ["+CMS ERROR: 302"]
    assert await host.at("AT+CNMI=?") == ["+CNMI: (0-2),(0-3),(0-2),(0-2),(0,1)", "OK"]
    assert await host.at("AT+CNMI=2,1,0,0,0") == ["OK"]
    assert await host.at("AT+CNMI=2,9") == ["+CMS ERROR: 302"]
    assert await host.at("AT+CNMI?") == ["+CNMI: 2,1,0,0,0", "OK"]
    assert await host.at('AT+CPMS="SM","SM","SM"') == ["+CPMS: 0,3,0,3,0,3", "OK"]
    assert await host.at("AT+CMGR=1") == ["+CMS ERROR: 321"]
    assert await host.at("AT+NOSUCH") == ["ERROR"]


async def test_an_sms_is_notified_read_listed_and_deleted(emulator: GsmEmulator, host: Host) -> None:
    await host.at("AT+CNMI=2,1,0,0,0")
    when = datetime.datetime(2026, 11, 30, 14, 5, tzinfo=datetime.timezone(datetime.timedelta(hours=-3)))
    status, answer = await asyncio.to_thread(_control, emulator, "POST", "/sms",
                                             {"sender": SENDER, "text": POLISH, "encoding": "ucs2",
                                              "smsc_time": when.isoformat()})
    assert status == 200 and answer == {"stored_at": [1], "held_by_network": 0}
    assert await host.line() == '+CMTI: "SM",1'
    reply = await host.at("AT+CMGR=1")
    assert reply[0].startswith("+CMGR: 0,,") and reply[-1] == "OK"
    sms = decode_deliver(reply[1])
    assert (sms.sender, sms.text, sms.encoding, sms.timestamp) == (SENDER, POLISH, "ucs2", when)
    assert (await host.at("AT+CMGR=1"))[0].startswith("+CMGR: 1,,"), "read once, it is REC READ"
    assert [line.split(",")[:2] for line in (await host.at("AT+CMGL=4")) if line.startswith("+CMGL")] == \
        [["+CMGL: 1", "1"]]
    assert await host.at("AT+CMGL=0") == ["OK"], "nothing unread"
    assert await host.at("AT+CMGD=1") == ["OK"]
    assert await host.at("AT+CMGD=1") == ["+CMS ERROR: 321"]


async def test_a_concatenated_message_arrives_as_its_parts(emulator: GsmEmulator, host: Host) -> None:
    await host.at("AT+CNMI=2,1,0,0,0")
    status, answer = await asyncio.to_thread(_control, emulator, "POST", "/sms",
                                             {"sender": SENDER, "text": POLISH * 3, "encoding": "ucs2", "parts": 3})
    assert status == 200 and answer["stored_at"] == [1, 2, 3]
    listed = await host.at("AT+CMGL=4")
    parts = [decode_deliver(listed[i + 1]) for i, line in enumerate(listed) if line.startswith("+CMGL")]
    assert [p.concat.part for p in parts if p.concat] == [1, 2, 3]
    assert len({p.concat.ref for p in parts if p.concat}) == 1


async def test_a_full_storage_leaves_the_message_with_the_network_until_a_delete(emulator: GsmEmulator,
                                                                                host: Host) -> None:
    await host.at("AT+CNMI=2,1,0,0,0")
    for n in range(4):
        await asyncio.to_thread(_control, emulator, "POST", "/sms", {"sender": SENDER, "text": f"message {n}"})
    for n in range(3):
        assert await host.line() == f'+CMTI: "SM",{n + 1}'
    assert (await host.at("AT+CPMS?"))[0].startswith('+CPMS: "SM",3,3')
    assert emulator.modem.waiting, "the fourth waits at the network"
    reply = await host.at("AT+CMGD=2")
    assert reply == ["OK"]
    assert await host.line() == '+CMTI: "SM",2', "stored once there is room"
    assert decode_deliver((await host.at("AT+CMGR=2"))[1]).text == "message 3"


async def test_faults_busy_sim_initialising_lost_and_interleaved_notifications_reboot_and_slow(
        emulator: GsmEmulator, host: Host) -> None:
    await host.at("AT+CNMI=2,1,0,0,0")
    await asyncio.to_thread(_control, emulator, "POST", "/faults/sim_busy", {"on": True})
    assert await host.at("AT+CPIN?") == ["+CME ERROR: 14"]
    await asyncio.to_thread(_control, emulator, "POST", "/faults/sim_busy", {"on": False})
    await asyncio.to_thread(_control, emulator, "POST", "/faults/initialising", {"on": True})
    assert await host.at("AT+CMGL=4") == ["+CMS ERROR: 515"]
    await asyncio.to_thread(_control, emulator, "POST", "/faults/initialising", {"on": False})
    # A lost notification: the message is stored, nobody is told.
    await asyncio.to_thread(_control, emulator, "POST", "/faults/lose_notification", {"on": True})
    await asyncio.to_thread(_control, emulator, "POST", "/sms", {"sender": SENDER, "text": "lost"})
    [listed] = [line for line in await host.at("AT+CMGL=4") if line.startswith("+CMGL")]
    assert listed.startswith("+CMGL: 1,0,,")
    assert host.urcs == []
    # An interleaved one lands inside the next multi-line reply.
    await asyncio.to_thread(_control, emulator, "POST", "/faults/interleave", {"on": True})
    await asyncio.to_thread(_control, emulator, "POST", "/sms", {"sender": SENDER, "text": "in between"})
    reply = await host.at("AT+CMGL=4")
    assert '+CMTI: "SM",2' in host.urcs and len([line for line in reply if line.startswith("+CMGL")]) == 2
    # A reboot resets the settings and says so.
    await asyncio.to_thread(_control, emulator, "POST", "/reboot", {})
    assert await host.at("AT+CNMI?") == ["+CNMI: 0,0,0,0,0", "OK"], "settings back to power-up values"
    assert "RDY" in host.urcs and "SMS Ready" in host.urcs
    status, _ = await asyncio.to_thread(_control, emulator, "POST", "/faults/no_such", {"on": True})
    assert status == 404
    await asyncio.to_thread(_control, emulator, "POST", "/slow", {"seconds": 1.5})
    with pytest.raises(TimeoutError):
        await host.at("AT", timeout=0.5)


async def test_the_control_endpoint_lists_its_routes_and_refuses_bad_input(emulator: GsmEmulator) -> None:
    status, routes = await asyncio.to_thread(_control, emulator, "GET", "/")
    assert status == 200 and {r["path"] for r in routes} >= {"/sms", "/faults/{name}", "/reboot", "/storage"}
    [faults] = [r for r in routes if r["path"] == "/faults/{name}"]
    assert all(f.value in faults["does"] for f in Fault)
    status, error = await asyncio.to_thread(_control, emulator, "POST", "/sms", {"sender": SENDER})
    assert status == 400 and error["error"]["code"] == "bad_request"
    status, error = await asyncio.to_thread(_control, emulator, "POST", "/sms",
                                            {"sender": SENDER, "text": "x", "smsc_time": "2026-11-30T14:05:00"})
    assert status == 400 and "UTC offset" in error["error"]["message"]


async def test_it_runs_standalone_as_installers_run_it(tmp_path: Path) -> None:
    link, port = tmp_path / "modem", free_port()
    proc = subprocess.Popen([sys.executable, "-m", "firmware_bridges.gsm.emulator", "--link", str(link),
                             "--control-port", str(port)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert str(link) in await asyncio.to_thread(proc.stdout.readline)
        reader, writer = await serial_asyncio.open_serial_connection(url=str(link), baudrate=115200)
        host = Host(reader, writer)
        assert await host.at("AT+CGMM") == ["EMU-GSM-1", "OK"]
        writer.close()
    finally:
        proc.terminate()
        assert await asyncio.to_thread(proc.wait, 10) == 0
    assert not link.exists(), "the link goes with the modem"
