"""The GSM modem link: owns one USB modem's serial port and turns the SMS it receives into
journaled events (docs/architecture.md §7 "GSM modem").

Life of a connection: open the port → `AT` until the modem answers → echo off, PDU mode, new-message
notifications (`AT+CNMI` values chosen from what `AT+CNMI=?` offers), SIM storage → registration,
signal and storage read → `edge.link.up` → sweep the storage (`AT+CMGL=4`: notifications get lost,
and messages may have come while the link was down) → then read each message a `+CMTI` names, and
sweep again every `sweep_interval_s`. A message is journaled first and deleted from the modem only
then, so a crash between the two reads it again at the next start, with the same occurrence keys
(edge.links.gsm.messages), and the hub keeps one event. Parts of a concatenated message stay in the
modem until their set is complete (or expires, read truncated). `RDY`, `SMS Ready` or `^BOOT`
means the modem restarted and forgot its settings: initialise again. A command unanswered within
`command_timeout_s` drops the connection; reconnects back off with jitter.

The codecs (firmware_bridges.gsm: AT lines, PDUs, reassembly) and the message rules (messages.py)
are pure; everything with the port, timers and retries is here.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import msgspec
import serial
import serial_asyncio
from prometheus_client import Counter, Gauge

from edge.config import GsmModemSettings
from edge.journal import Journal, JournalError
from edge.links.gsm.messages import SmsPolicy, read_message
from edge.links.gsm.templates import TemplateSet
from firmware_bridges.gsm.at import (AtParseError, AtSession, Final, Unsolicited, parse_cmgl, parse_cmti, parse_cpms,
                                     parse_creg, parse_csq, parse_ranges)
from firmware_bridges.gsm.concat import Assembled, Reassembler
from firmware_bridges.gsm.pdu import PduError, decode_deliver
from shared.backoff import Backoff, sleep_or_stop, wait_any
from shared.bodies import LinkStatus
from shared.clock import SYSTEM_CLOCK, Clock
from shared.envelope import Priority, new_envelope

log = logging.getLogger("vigil.edge.gsm")

LAST_RECEIVED = Gauge("vigil_sms_last_received_timestamp", "When the last SMS was journaled (Unix time)", ["modem"])
RECEIVED = Counter("vigil_sms_received_total", "SMS journaled, by quality", ["modem", "quality"])
UNTRUSTED = Counter("vigil_sms_untrusted_total", "SMS from senders not on the trusted list", ["modem"])
SIGNAL = Gauge("vigil_gsm_signal_quality", "+CSQ rssi (0..31; 99 unknown)", ["modem"])
STORAGE = Gauge("vigil_gsm_storage_used_ratio", "Share of the modem's SMS storage in use", ["modem"])
CONNECTED = Gauge("vigil_gsm_connection_status", "1 while the modem answers, else 0", ["modem"])

REBOOT_CODES = frozenset({"RDY", "SMS READY", "^BOOT"})
# TS 27.005 §3.4.1 <mode>: 2 buffers notifications while the port is busy and flushes them after;
# 1 discards them when busy. <mt> 1: store the message and say where (+CMTI).
_CNMI_PREFERENCE = ((2, 1), (1, 1))


class ModemLost(Exception):
    """The modem stopped answering, or its port went away."""


class GsmLink:
    """The link to one modem. Run it with `await link.run(stop)`."""

    def __init__(self, settings: GsmModemSettings, journal: Journal, templates: TemplateSet, *,
                 clock: Clock = SYSTEM_CLOCK) -> None:
        self.settings = settings
        self.modem_id = settings.id
        self._journal = journal
        self._templates = templates
        self._policy = SmsPolicy.of(
            settings.trusted_senders,
            {(sensor, kind): priority for sensor, kinds in settings.priorities.items() for kind, priority in kinds.items()})
        self._clock = clock
        self._session = AtSession()
        self._writer: asyncio.StreamWriter | None = None
        self._final: asyncio.Future[Final] | None = None
        self._wanted: list[int] = []  # storage indexes a +CMTI named, to read
        self._reboot = asyncio.Event()
        self._wake = asyncio.Event()  # set by whatever the serve loop must act on now
        self._lost: ModemLost | None = None
        self._reassembler = Reassembler(timeout=settings.concat_timeout_s)
        self._indexes: dict[str, int] = {}  # a held part's PDU → its storage index
        self.state = "connecting"
        self.since = clock.now()
        self.registered: bool | None = None
        self.rssi: int | None = None
        self.storage: tuple[int, int] | None = None
        self.last_error: str | None = None
        self.received = 0
        # The newest whole message journaled, for the local console (sender, time, text, what it read as).
        self.last_sms: dict[str, Any] | None = None
        self._problems: set[str] = set()
        self._reported_down = False
        CONNECTED.labels(self.modem_id).set(0)

    # --- running ---------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Keep the modem read until `stop`; then record the link down (planned)."""
        backoff = Backoff(self.settings.reconnect_min_s, self.settings.reconnect_max_s)
        try:
            while not stop.is_set():
                try:
                    await self._connect_and_serve(stop, backoff)
                except (ModemLost, OSError, serial.SerialException) as exc:
                    await self._went_down(str(exc) or type(exc).__name__, planned=False)
                if stop.is_set():
                    break
                delay = backoff.next_delay()
                log.warning("gsm link %s down (%s); reconnecting in %.2f s", self.modem_id, self.last_error, delay,
                            extra={"modem": self.modem_id})
                if await sleep_or_stop(delay, stop):
                    break
        finally:
            await self._went_down("edge stopping", planned=True)
            self._set_state("stopped")

    async def _connect_and_serve(self, stop: asyncio.Event, backoff: Backoff) -> None:
        reader, writer = await serial_asyncio.open_serial_connection(url=self.settings.port,
                                                                     baudrate=self.settings.baudrate)
        self._writer, self._session, self._lost = writer, AtSession(), None
        pump = asyncio.create_task(self._pump(reader), name=f"gsm-{self.modem_id}-read")
        try:
            await self._initialise()
            backoff.reset()
            await self._up()
            await self._serve(stop)
        finally:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump
            writer.close()
            self._writer = None

    async def _pump(self, reader: asyncio.StreamReader) -> None:
        """Read the port, feed the AT codec, and route what it returns."""
        try:
            while True:
                data = await reader.read(4096)
                if not data:
                    raise ModemLost("the modem's port closed")
                for event in self._session.feed(data):
                    if isinstance(event, Final):
                        if self._final is not None and not self._final.done():
                            self._final.set_result(event)
                    elif isinstance(event, Unsolicited):
                        self._unsolicited(event)
        except (ModemLost, OSError, serial.SerialException) as exc:
            self._lost = exc if isinstance(exc, ModemLost) else ModemLost(f"the modem's port failed: {exc}")
            if self._final is not None and not self._final.done():
                self._final.set_exception(self._lost)

    def _unsolicited(self, event: Unsolicited) -> None:
        code = event.code.upper()
        if code == "+CMTI":
            try:
                _, index = parse_cmti(event.args)
            except AtParseError as exc:
                log.warning("gsm link %s: %s", self.modem_id, exc, extra={"modem": self.modem_id})
                return
            self._wanted.append(index)
            self._wake.set()
        elif code in REBOOT_CODES:
            self._reboot.set()
            self._wake.set()
        elif code == "+CREG":
            with contextlib.suppress(AtParseError):
                self.registered = parse_creg(event.args, solicited=False).status.registered

    async def _command(self, command: str) -> Final:
        """Send one command and wait for its final result; ModemLost when none comes in time."""
        if self._lost is not None:
            raise self._lost
        assert self._writer is not None
        self._final = asyncio.get_running_loop().create_future()
        self._writer.write(self._session.send(command))
        try:
            async with asyncio.timeout(self.settings.command_timeout_s):
                return await self._final
        except TimeoutError:
            self._session.cancel()
            raise ModemLost(f"no answer to {command} within {self.settings.command_timeout_s:g} s") from None
        finally:
            self._final = None

    async def _expect_ok(self, command: str) -> Final:
        final = await self._command(command)
        if not final.ok:
            raise ModemLost(f"{command} refused: {final.meaning}")
        return final

    async def _initialise(self) -> None:
        """Bring the modem to the settings the link needs (after a connect or a reboot)."""
        self._reboot.clear()
        # A modem still starting answers nothing or an error: ask until it answers.
        deadline = time.monotonic() + self.settings.command_timeout_s * 3
        while not (await self._command("AT")).ok:
            if time.monotonic() > deadline:
                raise ModemLost("the modem does not answer AT with OK")
            await asyncio.sleep(0.5)
        await self._expect_ok("ATE0")
        await self._expect_ok("AT+CMGF=0")  # PDU mode (TS 27.005 §3.2.3)
        offered = parse_ranges(_args((await self._expect_ok("AT+CNMI=?")).lines, "+CNMI"))
        mode, mt = next(((m, t) for m, t in _CNMI_PREFERENCE if len(offered) > 1 and m in offered[0] and t in offered[1]),
                        (None, None))
        if mode is None:
            raise ModemLost(f"the modem offers no AT+CNMI setting that reports stored messages ({offered})")
        await self._expect_ok(f"AT+CNMI={mode},{mt},0,0,0")
        await self._expect_ok('AT+CPMS="SM","SM","SM"')
        await self._status()

    async def _status(self) -> None:
        """Registration, signal and storage, as metrics and state; a problem that starts or ends
        is journaled (`edge.link.degraded` / `edge.link.recovered`)."""
        reg = await self._command("AT+CREG?")
        if reg.ok:
            with contextlib.suppress(AtParseError):
                self.registered = parse_creg(_args(reg.lines, "+CREG"), solicited=True).status.registered
        csq = await self._command("AT+CSQ")
        if csq.ok:
            with contextlib.suppress(AtParseError):
                self.rssi = parse_csq(_args(csq.lines, "+CSQ")).rssi
                SIGNAL.labels(self.modem_id).set(self.rssi)
        cpms = await self._command("AT+CPMS?")
        if cpms.ok:
            with contextlib.suppress(AtParseError, IndexError):
                first = parse_cpms(_args(cpms.lines, "+CPMS"))[0]
                self.storage = (first.used, first.total)
                STORAGE.labels(self.modem_id).set(first.used / first.total if first.total else 0)
        now = health_problems(self.registered, self.rssi, self.storage, self.settings)
        for problem in sorted(now - self._problems):
            log.warning("gsm link %s: %s", self.modem_id, problem, extra={"modem": self.modem_id})
            await self._append("edge.link.degraded", Priority.NORMAL, LinkStatus(self.modem_id, problem))
        for problem in sorted(self._problems - now):
            log.info("gsm link %s: no longer %s", self.modem_id, problem, extra={"modem": self.modem_id})
            await self._append("edge.link.recovered", Priority.LOW, LinkStatus(self.modem_id, problem))
        self._problems = now

    def _set_state(self, state: str) -> None:
        if state != self.state:
            self.state, self.since = state, self._clock.now()
        CONNECTED.labels(self.modem_id).set(1 if state == "up" else 0)

    async def _up(self) -> None:
        self._set_state("up")
        self.last_error, self._reported_down = None, False
        log.info("gsm link %s up on %s", self.modem_id, self.settings.port, extra={"modem": self.modem_id})
        await self._append("edge.link.up", Priority.LOW, LinkStatus(self.modem_id, f"modem on {self.settings.port}"))

    async def _went_down(self, reason: str, *, planned: bool) -> None:
        self.last_error = reason
        was_up = self.state == "up"
        self._set_state("down")
        if was_up or not self._reported_down:
            await self._append("edge.link.down", Priority.LOW if planned else Priority.NORMAL,
                               LinkStatus(self.modem_id, reason, planned))
        self._reported_down = True

    async def _serve(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        next_sweep = loop.time()  # at once: what came while the link was down
        next_status = loop.time() + self.settings.status_interval_s
        while not stop.is_set():
            self._wake.clear()
            if self._lost is not None:
                raise self._lost
            if self._reboot.is_set():
                log.warning("gsm link %s: the modem restarted; initialising it again", self.modem_id,
                            extra={"modem": self.modem_id})
                await self._initialise()
                next_sweep = loop.time()
            if loop.time() >= next_sweep:
                await self._sweep()
                next_sweep = loop.time() + self.settings.sweep_interval_s
            while self._wanted:
                await self._read_one(self._wanted.pop(0))
            await self._store(self._reassembler.expire(loop.time()))
            if loop.time() >= next_status:
                await self._status()
                next_status = loop.time() + self.settings.status_interval_s
            await wait_any((self._wake, stop), max(0.0, min(next_sweep, next_status) - loop.time()))

    async def _sweep(self) -> None:
        """Read everything in the storage (TS 27.005 §3.4.2, <stat> 4: all)."""
        final = await self._command("AT+CMGL=4")
        if not final.ok:
            log.warning("gsm link %s: AT+CMGL refused: %s", self.modem_id, final.meaning, extra={"modem": self.modem_id})
            return
        try:
            listed = parse_cmgl(final.lines)
        except AtParseError as exc:
            log.warning("gsm link %s: %s", self.modem_id, exc, extra={"modem": self.modem_id})
            return
        for message in listed:
            await self._take(message.index, message.pdu)

    async def _read_one(self, index: int) -> None:
        final = await self._command(f"AT+CMGR={index}")
        if not final.ok or len(final.lines) < 2:
            return  # read and deleted by a sweep meanwhile, or an empty slot
        await self._take(index, final.lines[1])

    async def _take(self, index: int, pdu: str) -> None:
        """One stored PDU: decode it, hold it until its concatenated set is whole, then journal."""
        if pdu.upper() in self._indexes:
            return  # a part already held (a sweep lists it again)
        try:
            sms = decode_deliver(pdu)
        except PduError as exc:
            # Kept in the modem, logged: a human can read it with the CLI; it is no alarm to make up.
            log.error("gsm link %s: the PDU at index %d does not decode (%s)", self.modem_id, index, exc,
                      extra={"modem": self.modem_id})
            return
        self._indexes[sms.raw.upper()] = index
        await self._store(self._reassembler.add(sms, asyncio.get_running_loop().time()))

    async def _store(self, messages: list[Assembled]) -> None:
        """Journal each whole message, then delete its parts from the modem."""
        for message in messages:
            observations = read_message(message, self._templates, self._policy)
            for o in observations:
                envelope = msgspec.structs.replace(new_envelope(o.kind, self.modem_id, o.priority, o.body,
                                                                clock=self._clock), occurrence=o.occurrence)
                try:
                    await self._journal.append(envelope)
                except JournalError as exc:
                    # Not deleted: the modem keeps it and the next sweep tries again.
                    log.error("gsm link %s: SMS not journaled (%s); it stays in the modem", self.modem_id, exc,
                              extra={"modem": self.modem_id})
                    for part in message.parts:
                        self._indexes.pop(part.raw.upper(), None)
                    return
            quality = observations[0].body.quality  # type: ignore[attr-defined]
            RECEIVED.labels(self.modem_id, quality).inc()
            if observations[-1].kind == "sms.untrusted":
                UNTRUSTED.labels(self.modem_id).inc()
                log.warning("gsm link %s: SMS from a sender not on the list: archived, not an alarm", self.modem_id,
                            extra={"modem": self.modem_id})
            LAST_RECEIVED.labels(self.modem_id).set(time.time())
            self.received += 1
            self.last_sms = {"at": self._clock.now().isoformat(), "sender": message.sender, "text": message.text[:320],
                             "kind": observations[-1].kind}
            for part in message.parts:
                index = self._indexes.pop(part.raw.upper(), None)
                if index is not None:
                    await self._command(f"AT+CMGD={index}")

    async def _append(self, kind: str, priority: Priority, body: msgspec.Struct) -> None:
        try:
            await self._journal.append(new_envelope(kind, self.modem_id, priority, body, clock=self._clock))
        except JournalError as exc:
            log.error("gsm link %s: %s not stored: %s", self.modem_id, kind, exc, extra={"modem": self.modem_id})

    def status(self) -> dict[str, Any]:
        """What the local page shows: state, port, registration, signal, storage, counts."""
        return {"modem": self.modem_id, "state": self.state, "since": self.since.isoformat(), "port": self.settings.port,
                "registered": self.registered, "rssi": self.rssi,
                "storage": {"used": self.storage[0], "total": self.storage[1]} if self.storage else None,
                "received": self.received, "last_sms": self.last_sms, "last_error": self.last_error}


def health_problems(registered: bool | None, rssi: int | None, storage: tuple[int, int] | None,
                    settings: GsmModemSettings) -> set[str]:
    """What keeps SMS from arriving, or soon will: not registered on the network, a signal at or
    below `signal_low_rssi` (TS 27.007 §8.5: 99 is "not known", not low), the storage at
    `storage_warn_ratio` or fuller. Unknown values are no problem yet."""
    problems = set()
    if registered is False:
        problems.add("registration lost")
    if rssi is not None and rssi != 99 and rssi <= settings.signal_low_rssi:
        problems.add("signal low")
    if storage is not None and storage[1] and storage[0] / storage[1] >= settings.storage_warn_ratio:
        problems.add("storage nearly full")
    return problems


def _args(lines: tuple[str, ...], prefix: str) -> str:
    """The arguments of the information line starting with `prefix:`."""
    for line in lines:
        if line.upper().startswith(prefix + ":"):
            return line.split(":", 1)[1].strip()
    raise AtParseError(f"no {prefix} line in the reply {list(lines)!r}")
