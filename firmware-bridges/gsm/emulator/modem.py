"""The emulated USB GSM modem's command interpreter: what a real modem answers to each AT command
line (3GPP TS 27.007 / 27.005), its SMS storage, and the faults a real one shows. No I/O: the
pseudo-terminal runner (`pty.py`) feeds it lines and writes what it returns.

Output is a list of lines; the runner frames each as `\\r\\n<line>\\r\\n` as a modem in its default
verbose mode does (V1, TS 27.007 §4.1 / V.250), and writes an echoed command line as it came.
"""
from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field

#: TS 27.005 §3.1 <stat> in PDU mode, and its text-mode names.
STAT_NAMES = {0: "REC UNREAD", 1: "REC READ", 2: "STO UNSENT", 3: "STO SENT"}
ALL = 4

# TS 27.005 §3.2.5 <err> values the emulator can answer.
CMS_MEMORY_FULL = 322
CMS_INVALID_INDEX = 321
CMS_INVALID_MODE = 302  # operation not allowed
CMS_NOT_READY = 515     # "please wait, init or command processing in progress" (vendor code, common)
# TS 27.007 §9.2.1
CME_SIM_BUSY = 14

#: TS 27.005 §3.4.1 AT+CNMI ranges this modem takes: <mode>,<mt>,<bm>,<ds>,<bfr>.
CNMI_RANGES = ((0, 2), (0, 3), (0, 2), (0, 2), (0, 1))
_CNMI_TEST = "+CNMI: (0-2),(0-3),(0-2),(0-2),(0,1)"
_COMMAND = re.compile(r"^AT(?P<rest>.*)$", re.IGNORECASE)


class Fault(str, enum.Enum):
    """Failures switched on through the control endpoint, as real modems show them."""

    SIM_BUSY = "sim_busy"              # +CME ERROR: 14 to SIM-bound commands
    INITIALISING = "initialising"      # +CMS ERROR: 515 to SMS commands (just after power-up)
    INTERLEAVE = "interleave"          # the next notification lands inside the next reply
    LOSE_NOTIFICATION = "lose_notification"  # the next +CMTI is never sent (the message is stored)


@dataclass
class Stored:
    """One message in the modem's storage (`SM`): its index, status and full PDU (SMSC + TPDU)."""

    index: int
    stat: int
    pdu: bytes
    tpdu_length: int


@dataclass
class Modem:
    """A modem with `capacity` storage slots. Call `line()` for each command line the host sends
    and `deliver()` when the network brings a message; both return the lines to write."""

    capacity: int = 20
    manufacturer: str = "Vigil"
    model: str = "EMU-GSM-1"
    imei: str = "356938035643809"
    rssi: int = 20  # +CSQ <rssi>: 0..31, 99 unknown
    registration: int = 1  # +CREG <stat>: 1 home, 5 roaming, 2 searching, 0 not registered
    echo: bool = True
    cmgf: int = 0
    cnmi: tuple[int, int, int, int, int] = (0, 0, 0, 0, 0)
    faults: set[Fault] = field(default_factory=set)
    storage: dict[int, Stored] = field(default_factory=dict)
    # Messages the network holds while the storage is full; stored (and notified) once there is room.
    waiting: list[tuple[bytes, int]] = field(default_factory=list)
    # A notification to put inside the next reply (Fault.INTERLEAVE).
    _interleave: list[str] = field(default_factory=list)

    # --- the network side ---------------------------------------------------------------------

    def deliver(self, pdu: bytes, tpdu_length: int) -> list[str]:
        """A message arrives: store it in the first free slot and return the `+CMTI` to send
        (TS 27.005 §3.4.1: with <mt>=1 the modem notifies the index it stored), none when <mt> is
        0, the notification is to be lost, or it must wait inside the next reply. A full storage
        leaves the message with the network until a slot frees."""
        free = next((i for i in range(1, self.capacity + 1) if i not in self.storage), None)
        if free is None:
            self.waiting.append((pdu, tpdu_length))
            return []
        self.storage[free] = Stored(free, 0, pdu, tpdu_length)
        if self.cnmi[1] == 0:
            return []
        notice = f'+CMTI: "SM",{free}'
        if Fault.LOSE_NOTIFICATION in self.faults:
            self.faults.discard(Fault.LOSE_NOTIFICATION)
            return []
        if Fault.INTERLEAVE in self.faults:
            self.faults.discard(Fault.INTERLEAVE)
            self._interleave.append(notice)
            return []
        return [notice]

    def reboot(self) -> list[str]:
        """A spontaneous restart: settings back to their power-up values (echo on, text mode off,
        no notifications), storage kept (the SIM holds it), then the start-up banner."""
        self.echo, self.cmgf, self.cnmi = True, 0, (0, 0, 0, 0, 0)
        self._interleave.clear()
        return ["RDY", "+CPIN: READY", "SMS Ready"]

    # --- the host side ---------------------------------------------------------------------------

    def line(self, text: str) -> tuple[str | None, list[str]]:
        """One command line from the host: the echo to write back (None with echo off) and the
        reply lines, ending with the final result code."""
        echo = text if self.echo else None
        match = _COMMAND.match(text.strip())
        if match is None:
            return echo, ["ERROR"] if text.strip() else []
        reply = self._command(match.group("rest").strip())
        if reply[-1:] == ["OK"] and match.group("rest").strip().upper().startswith("+CMGD="):
            reply += self._take_waiting()  # room again: what the network held arrives now
        if self._interleave and len(reply) > 1:
            # The notification cuts into the reply after its first line, as a busy modem's does.
            reply = [reply[0], *self._interleave, *reply[1:]]
            self._interleave.clear()
        return echo, reply

    def _command(self, rest: str) -> list[str]:
        upper = rest.upper()
        if upper == "":
            return ["OK"]
        if upper in ("E0", "E1"):
            self.echo = upper == "E1"
            return ["OK"]
        if upper in ("+CGMI", "+GMI"):
            return [self.manufacturer, "OK"]
        if upper in ("+CGMM", "+GMM"):
            return [self.model, "OK"]
        if upper in ("+CGSN", "+GSN"):
            return [self.imei, "OK"]
        if upper == "+CSQ":
            return [f"+CSQ: {self.rssi},99", "OK"]
        if upper == "+CREG?":
            return [f"+CREG: 0,{self.registration}", "OK"]
        if upper == "+CPIN?":
            if Fault.SIM_BUSY in self.faults:
                return [f"+CME ERROR: {CME_SIM_BUSY}"]
            return ["+CPIN: READY", "OK"]
        if upper.startswith(("+CMGF", "+CNMI", "+CPMS", "+CMGR", "+CMGL", "+CMGD")):
            if Fault.SIM_BUSY in self.faults:
                return [f"+CME ERROR: {CME_SIM_BUSY}"]
            if Fault.INITIALISING in self.faults:
                return [f"+CMS ERROR: {CMS_NOT_READY}"]
            return self._sms(upper)
        return ["ERROR"]

    def _sms(self, upper: str) -> list[str]:
        if upper == "+CMGF?":
            return [f"+CMGF: {self.cmgf}", "OK"]
        if upper == "+CMGF=?":
            return ["+CMGF: (0)", "OK"]
        if upper.startswith("+CMGF="):
            # PDU mode only: the emulator stores PDUs and answers in PDU mode (TS 27.005 §3.2.3).
            return ["OK"] if upper == "+CMGF=0" else [f"+CMS ERROR: {CMS_INVALID_MODE}"]
        if upper == "+CNMI=?":
            return [_CNMI_TEST, "OK"]
        if upper == "+CNMI?":
            return ["+CNMI: " + ",".join(str(v) for v in self.cnmi), "OK"]
        if upper.startswith("+CNMI="):
            return self._set_cnmi(upper[len("+CNMI="):])
        if upper.startswith("+CPMS"):
            used = len(self.storage)
            if upper == "+CPMS?":
                return [f'+CPMS: "SM",{used},{self.capacity},"SM",{used},{self.capacity},"SM",{used},{self.capacity}',
                        "OK"]
            if upper == "+CPMS=?":
                return ['+CPMS: ("SM"),("SM"),("SM")', "OK"]
            wanted = [m.strip().strip('"') for m in upper[len("+CPMS="):].split(",")]
            if any(m != "SM" for m in wanted):
                return [f"+CMS ERROR: {CMS_INVALID_MODE}"]
            return [f"+CPMS: {used},{self.capacity},{used},{self.capacity},{used},{self.capacity}", "OK"]
        if upper.startswith("+CMGR="):
            index = _int(upper[len("+CMGR="):])
            message = self.storage.get(index) if index is not None else None
            if message is None:
                return [f"+CMS ERROR: {CMS_INVALID_INDEX}"]
            lines = [f"+CMGR: {message.stat},,{message.tpdu_length}", message.pdu.hex().upper(), "OK"]
            if message.stat == 0:
                message.stat = 1  # TS 27.005 §3.4.3: reading an unread message marks it read
            return lines
        if upper.startswith("+CMGL"):
            stat = _int(upper[len("+CMGL="):]) if upper.startswith("+CMGL=") else 0
            if stat is None or not 0 <= stat <= ALL:
                return [f"+CMS ERROR: {CMS_INVALID_MODE}"]
            lines = []
            for message in sorted(self.storage.values(), key=lambda m: m.index):
                if stat == ALL or message.stat == stat:
                    lines += [f"+CMGL: {message.index},{message.stat},,{message.tpdu_length}",
                              message.pdu.hex().upper()]
                    if message.stat == 0:
                        message.stat = 1
            return [*lines, "OK"]
        if upper.startswith("+CMGD="):
            return self._delete(upper[len("+CMGD="):])
        return ["ERROR"]

    def _set_cnmi(self, args: str) -> list[str]:
        values = [_int(v) for v in args.split(",")] if args else []
        if not 1 <= len(values) <= 5 or any(v is None for v in values):
            return [f"+CMS ERROR: {CMS_INVALID_MODE}"]
        full = [*values, *self.cnmi[len(values):]]
        if any(not low <= v <= high for v, (low, high) in zip(full, CNMI_RANGES)):  # type: ignore[operator]
            return [f"+CMS ERROR: {CMS_INVALID_MODE}"]
        self.cnmi = tuple(full)  # type: ignore[assignment]
        return ["OK"]

    def _delete(self, args: str) -> list[str]:
        parts = [_int(v) for v in args.split(",")]
        if not parts or parts[0] is None or len(parts) > 2 or (len(parts) == 2 and parts[1] is None):
            return [f"+CMS ERROR: {CMS_INVALID_MODE}"]
        index, flag = parts[0], parts[1] if len(parts) == 2 else 0
        # TS 27.005 §3.5.4 <delflag>: 0 the index; 1 every read; 2 read and sent; 3 all but unread
        # (read, sent, unsent); 4 all.
        doomed = {0: set(), 1: {1}, 2: {1, 3}, 3: {1, 2, 3}, 4: {0, 1, 2, 3}}.get(flag)  # type: ignore[arg-type]
        if doomed is None:
            return [f"+CMS ERROR: {CMS_INVALID_MODE}"]
        if flag == 0:
            if index not in self.storage:
                return [f"+CMS ERROR: {CMS_INVALID_INDEX}"]
            del self.storage[index]
        else:
            for i in [i for i, m in self.storage.items() if m.stat in doomed]:
                del self.storage[i]
        return ["OK"]

    def _take_waiting(self) -> list[str]:
        """After a delete: messages the network held while the storage was full are stored now;
        returns their notifications."""
        out: list[str] = []
        while self.waiting and len(self.storage) < self.capacity:
            pdu, length = self.waiting.pop(0)
            out += self.deliver(pdu, length)
        return out


def _int(text: str) -> int | None:
    text = text.strip()
    return int(text) if text.isdigit() else None
