"""The edge's GSM link with the modem emulator on a pseudo-terminal (issue 14): initialisation,
an SMS journaled and only then deleted from the modem, multipart UCS2 reassembled, a lost
notification picked up by the sweep, a modem reboot re-initialised with nothing lost, an
untrusted sender never an alarm, and a full storage drained."""
from __future__ import annotations

import asyncio
import datetime
import json
from pathlib import Path
from typing import Any, AsyncIterator

import msgspec
import pytest

from edge.config import GsmModemSettings, load_edge_config
from edge.journal import Journal
from edge.links.gsm.link import GsmLink
from edge.links.gsm.messages import SmsPolicy, read_message
from edge.links.gsm.templates import default_templates
from firmware_bridges.gsm.emulator import Fault, GsmEmulator
from firmware_bridges.gsm.concat import Reassembler
from firmware_bridges.gsm.pdu import decode_deliver, encode_deliver, tpdu_length
from shared.config import ConfigError
from shared.envelope import Envelope, decode_envelope, new_envelope
from shared.subjects import LANES
from support.site import Site
from support.waiting import wait_until

SENDER = "+48600123012"
ALARM = "Efento: sensor 282C02 'Cold room' temperature 9.4C above threshold 8.0C"
POLISH = "Alarm temperatury: czujnik Chłodnia 1 9,4°C powyżej progu 8,0°C"


class Rig:
    def __init__(self, emulator: GsmEmulator, journal: Journal, link: GsmLink) -> None:
        self.emulator, self.journal, self.link = emulator, journal, link

    async def events(self, kind: str | None = None) -> list[Envelope]:
        out = []
        for lane in LANES:
            for row in await self.journal.read_unforwarded(lane, 0, 10_000, 1 << 30):
                env = decode_envelope(row.envelope)
                if kind is None or env.kind == kind:
                    out.append(env)
        return sorted(out, key=lambda e: e.seq)

    async def wait_kind(self, kind: str, count: int = 1) -> list[Envelope]:
        async def enough() -> bool:
            return len(await self.events(kind)) >= count

        await wait_until(enough, timeout=20, what=f"{count} {kind} in the journal")
        return await self.events(kind)

    async def storage_empty(self) -> None:
        await wait_until(lambda: not self.emulator.modem.storage, timeout=20, what="the modem's storage emptied")


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    async with GsmEmulator(tmp_path / "ttyUSB0", capacity=5) as emulator:
        journal = await Journal.open(tmp_path / "journal.db", max_bytes=1 << 26, retention_s=3600)
        settings = GsmModemSettings(id="gsm-1", port=str(emulator.link), trusted_senders=[SENDER],
                                    command_timeout_s=2.0, sweep_interval_s=2.0, reconnect_min_s=0.1,
                                    reconnect_max_s=0.5)
        link = GsmLink(settings, journal, default_templates())
        stop = asyncio.Event()
        task = asyncio.create_task(link.run(stop))
        rig = Rig(emulator, journal, link)
        try:
            await rig.wait_kind("edge.link.up")
            yield rig
        finally:
            stop.set()
            await asyncio.wait_for(task, 20)
            await journal.close()


async def test_an_sms_is_journaled_then_deleted_and_the_modem_set_up(rig: Rig) -> None:
    assert rig.emulator.modem.cnmi[:2] == (2, 1) and rig.emulator.modem.echo is False
    rig.emulator.send_sms(SENDER, ALARM)
    [alarm] = await rig.wait_kind("sms.temp.alarm")
    body = msgspec.json.decode(alarm.body)
    assert (body["sensor"], body["value"], body["threshold"], body["sender"]) == ("Cold room", 9.4, 8.0,
                                                                                "+48 600 *** 012")
    [raw] = await rig.events("sms.raw")
    assert msgspec.json.decode(raw.body)["text"] == ALARM
    assert alarm.occurrence and raw.occurrence and alarm.occurrence != raw.occurrence
    await rig.storage_empty()
    assert rig.link.status()["state"] == "up" and rig.link.status()["rssi"] == 20


async def test_multipart_ucs2_is_reassembled_and_an_untrusted_sender_is_no_alarm(rig: Rig) -> None:
    rig.emulator.send_sms(SENDER, POLISH + " " + POLISH, encoding="ucs2", parts=2)
    [alarm] = await rig.wait_kind("sms.temp.alarm")
    assert msgspec.json.decode(alarm.body)["value"] == 9.4
    assert msgspec.json.decode((await rig.events("sms.raw"))[0].body)["text"] == POLISH + " " + POLISH
    rig.emulator.send_sms("+48511999888", ALARM)
    await rig.wait_kind("sms.untrusted")
    assert len(await rig.events("sms.temp.alarm")) == 1
    await rig.storage_empty()


async def test_a_lost_notification_is_picked_up_by_the_sweep(rig: Rig) -> None:
    rig.emulator.modem.faults.add(Fault.LOSE_NOTIFICATION)
    rig.emulator.send_sms(SENDER, ALARM)
    await rig.wait_kind("sms.temp.alarm")
    await rig.storage_empty()


async def test_a_modem_reboot_is_initialised_again_and_loses_nothing(rig: Rig) -> None:
    rig.emulator.reboot()
    await wait_until(lambda: rig.emulator.modem.cnmi[:2] == (2, 1), timeout=20, what="notifications on again")
    rig.emulator.send_sms(SENDER, ALARM)
    await rig.wait_kind("sms.temp.alarm")
    await rig.storage_empty()


async def test_registration_lost_and_a_low_signal_are_journaled_when_they_start_and_end(tmp_path: Path) -> None:
    async with GsmEmulator(tmp_path / "ttyUSB2") as emulator:
        journal = await Journal.open(tmp_path / "journal.db", max_bytes=1 << 26, retention_s=3600)
        settings = GsmModemSettings(id="gsm-1", port=str(emulator.link), command_timeout_s=2.0, status_interval_s=1.0)
        rig = Rig(emulator, journal, GsmLink(settings, journal, default_templates()))
        stop = asyncio.Event()
        task = asyncio.create_task(rig.link.run(stop))
        try:
            await rig.wait_kind("edge.link.up")
            emulator.modem.registration, emulator.modem.rssi = 2, 5
            degraded = await rig.wait_kind("edge.link.degraded", 2)
            assert sorted(msgspec.json.decode(e.body)["reason"] for e in degraded) == ["registration lost", "signal low"]
            emulator.modem.registration, emulator.modem.rssi = 1, 20
            recovered = await rig.wait_kind("edge.link.recovered", 2)
            assert {msgspec.json.decode(e.body)["reason"] for e in recovered} == {"registration lost", "signal low"}
            assert len(await rig.events("edge.link.degraded")) == 2, "journaled when it starts, not every read"
        finally:
            stop.set()
            await asyncio.wait_for(task, 20)
            await journal.close()


async def test_a_full_storage_is_drained_and_the_held_messages_arrive(rig: Rig) -> None:
    rig.emulator.modem.cnmi = (0, 0, 0, 0, 0)  # nothing notified: the storage fills up
    for n in range(7):
        rig.emulator.modem.deliver(*_pdu(f"{ALARM} #{n}"))
    assert len(rig.emulator.modem.storage) == 5 and len(rig.emulator.modem.waiting) == 2
    await rig.wait_kind("sms.raw", 7)
    await rig.storage_empty()
    assert not rig.emulator.modem.waiting


def _pdu(text: str) -> tuple[bytes, int]:
    pdu = encode_deliver(SENDER, text, encoding="gsm7", smsc_time=datetime.datetime.now(datetime.timezone.utc))
    return pdu, tpdu_length(pdu)


async def test_a_crash_between_journal_and_delete_is_one_event_at_the_hub(tmp_path: Path, db: Any) -> None:
    """The agent journaled a message and died before deleting it from the modem: the restarted
    link reads it again and journals it again; at the hub both copies are one event per kind."""
    async with GsmEmulator(tmp_path / "ttyUSB1") as emulator:
        emulator.modem.cnmi = (0, 0, 0, 0, 0)
        emulator.modem.deliver(*_pdu(ALARM))
        journal = await Journal.open(tmp_path / "journal.db", max_bytes=1 << 26, retention_s=3600)
        try:
            # What the first run journaled before it died: the same message, read the same way.
            [listed] = emulator.modem.storage.values()
            [message] = Reassembler().add(decode_deliver(listed.pdu.hex()), 0.0)
            for o in read_message(message, default_templates(), SmsPolicy.of([SENDER])):
                await journal.append(msgspec.structs.replace(new_envelope(o.kind, "gsm-1", o.priority, o.body),
                                                             occurrence=o.occurrence))
            settings = GsmModemSettings(id="gsm-1", port=str(emulator.link), trusted_senders=[SENDER],
                                        command_timeout_s=2.0)
            rig = Rig(emulator, journal, GsmLink(settings, journal, default_templates()))
            stop = asyncio.Event()
            task = asyncio.create_task(rig.link.run(stop))
            await rig.wait_kind("sms.temp.alarm", 2)
            await rig.storage_empty()
            stop.set()
            await asyncio.wait_for(task, 20)
            site = await Site(db, "site-gsm").setup({})
            envelopes = [msgspec.structs.replace(e, seq=0) for e in await rig.events()]
            stored = await site.ingest(*(site.env(e.kind, msgspec.json.decode(e.body), e.ts, e.priority, e.source)
                                         if e.occurrence is None else
                                         msgspec.structs.replace(site.env(e.kind, msgspec.json.decode(e.body), e.ts,
                                                                          e.priority, e.source),
                                                                 occurrence=e.occurrence)
                                         for e in envelopes))
            kinds = [r["kind"] for r in await db.fetch("SELECT kind FROM events WHERE kind LIKE 'sms.%' ORDER BY kind")]
            assert kinds == ["sms.raw", "sms.temp.alarm"], kinds
            assert stored == len(envelopes) - 2, "the second copies merged into the first"
        finally:
            await journal.close()


def test_modems_come_from_the_environment_and_a_bad_template_file_stops_the_start(tmp_path: Path) -> None:
    modems = json.dumps([{"id": "gsm-1", "port": "/dev/ttyUSB0", "trusted_senders": ["Efento"]}])
    config = load_edge_config(env={"VIGIL_EDGE_EDGE_ID": "site-1", "VIGIL_EDGE_GSM_MODEMS": modems})
    assert [(m.id, m.trusted_senders) for m in config.gsm.modems] == [("gsm-1", ["Efento"])]
    with pytest.raises(ConfigError, match="VIGIL_EDGE_GSM_MODEMS"):
        load_edge_config(env={"VIGIL_EDGE_EDGE_ID": "site-1", "VIGIL_EDGE_GSM_MODEMS": '[{"id": "gsm-1"}]'})
    bad = tmp_path / "templates.toml"
    bad.write_text('[[template]]\nname = "x"\nvendor = "efento"\nkind = "alarm"\npattern = "(unclosed"\n')
    with pytest.raises(ConfigError, match="x"):
        load_edge_config(env={"VIGIL_EDGE_EDGE_ID": "site-1", "VIGIL_EDGE_GSM_MODEMS": json.dumps(
            [{"id": "gsm-1", "port": "/dev/ttyUSB0", "templates_file": str(bad)}])})
    with pytest.raises(ConfigError, match="unique"):
        load_edge_config(env={"VIGIL_EDGE_EDGE_ID": "site-1", "VIGIL_EDGE_GSM_MODEMS": json.dumps(
            [{"id": "gsm-1", "port": "/dev/a"}, {"id": "gsm-1", "port": "/dev/b"}])})
