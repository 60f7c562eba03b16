"""What one received SMS becomes in the journal, pure (docs/architecture.md §7 "GSM modem"): the
trusted-sender check, the template parse, the quality flag, the event bodies and their
occurrence keys. The link (I/O) reads and deletes; this decides.

Every message yields an `sms.raw` event (the text and full number, for the hub's archive only)
and one event with the digest and a masked number: `sms.temp.<kind>` when a template read it,
`sms.unparseable` when none did or the text is damaged, `sms.untrusted` when the sender is not on
the list (never an alarm). Each carries an occurrence key made from the message's identity at the
SMSC (sender, service-centre time, concatenation reference and size), so a message read again
after a crash between journaling and deleting it is one event at the hub, not two.
"""
from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field

import msgspec

from edge.links.gsm.templates import TemplateSet
from firmware_bridges.gsm.concat import Assembled
from shared.bodies.gsm import RAW_KIND, RawSms, TemperatureSms, UnreadSms, mask_number, sms_digest
from shared.envelope import Priority

#: Each kind's priority unless the configuration says otherwise for a sensor.
DEFAULT_PRIORITIES: Mapping[str, Priority] = {
    "sms.temp.alarm": Priority.HIGH,
    "sms.temp.normal": Priority.LOW,
    "sms.temp.battery_low": Priority.NORMAL,
    "sms.temp.lost_connection": Priority.NORMAL,
    "sms.unparseable": Priority.NORMAL,
    "sms.untrusted": Priority.LOW,
    RAW_KIND: Priority.LOW,
}


def normalise_sender(sender: str) -> str:
    """A sender as the trusted list compares it: spaces and dashes gone, a `00` international
    prefix written `+`; an alphanumeric id compared without case."""
    compact = sender.replace(" ", "").replace("-", "")
    if compact.startswith("00") and compact[2:].isdigit():
        return "+" + compact[2:]
    return compact if compact.lstrip("+").isdigit() else compact.casefold()


@dataclass(frozen=True)
class SmsPolicy:
    """Who may raise alarms by SMS (numbers or alphanumeric ids, any spelling), and a priority
    per (sensor, kind) where one differs from DEFAULT_PRIORITIES."""

    trusted: frozenset[str]
    priorities: Mapping[tuple[str, str], Priority] = field(default_factory=dict)

    @classmethod
    def of(cls, senders: list[str], priorities: Mapping[tuple[str, str], Priority] | None = None) -> "SmsPolicy":
        """A policy from configured senders, normalised once."""
        return cls(frozenset(normalise_sender(s) for s in senders), dict(priorities or {}))

    def trusts(self, sender: str) -> bool:
        return normalise_sender(sender) in self.trusted

    def priority(self, kind: str, sensor: str | None) -> Priority:
        override = self.priorities.get((sensor, kind)) if sensor is not None else None
        return override or DEFAULT_PRIORITIES[kind]


@dataclass(frozen=True)
class Observation:
    """One event to journal: its kind, priority, body and occurrence key."""

    kind: str
    priority: Priority
    body: msgspec.Struct
    occurrence: str


def identity(message: Assembled) -> str:
    """The message's identity at the SMSC: sender, service-centre time, concatenation reference
    and size (a single message: its PDU, which holds all of these)."""
    if message.ref is None:
        basis = message.parts[0].raw
    else:
        basis = f"{message.sender}|{message.timestamp.isoformat()}|{message.ref}|{message.total}"
    return hashlib.sha256(basis.encode()).hexdigest()[:32]


def read_message(message: Assembled, templates: TemplateSet, policy: SmsPolicy) -> list[Observation]:
    """The events one received message becomes (see the module docstring), raw first."""
    sha = sms_digest(message.sender, message.text)
    masked = mask_number(message.sender)
    key = identity(message)
    trusted = policy.trusts(message.sender)
    parsed = templates.parse(message.text, truncated=message.truncated, decode_failed=message.garbled)
    quality = parsed.quality
    raw = RawSms(sender=message.sender, text=message.text, sha256=sha, pdus=[p.raw for p in message.parts],
                 quality=quality, trusted=trusted, smsc_time=message.timestamp)
    out = [Observation(RAW_KIND, policy.priority(RAW_KIND, None), raw, f"sms:{key}:raw")]
    if not trusted:
        kind = "sms.untrusted"
        body: msgspec.Struct = UnreadSms(quality=quality, sender=masked, sha256=sha, length=len(message.text))
        return [*out, Observation(kind, policy.priority(kind, None), body, f"sms:{key}:read")]
    # A damaged or cut text a template still reads stays an alarm, flagged: missing a real cold
    # room alarm costs more than an operator reading a garbled one.
    if parsed.template is None or parsed.kind is None:
        kind = "sms.unparseable"
        body = UnreadSms(quality=quality, sender=masked, sha256=sha, length=len(message.text))
        return [*out, Observation(kind, policy.priority(kind, None), body, f"sms:{key}:read")]
    kind = f"sms.temp.{parsed.kind}"
    # Some texts name no sensor ("BluLog: Alarm ustąpił"): the sender (one logger per SIM) stands in.
    sensor = parsed.sensor_name or parsed.sensor or masked
    body = TemperatureSms(kind=parsed.kind, sensor=sensor, vendor=parsed.vendor or "", template=parsed.template,
                          quality=quality, sender=masked, sha256=sha, value=parsed.value, unit=parsed.unit or "C",
                          threshold=parsed.threshold, direction=parsed.direction, measured_at=parsed.at)
    return [*out, Observation(kind, policy.priority(kind, parsed.sensor), body, f"sms:{key}:read")]
