"""Bodies of the GSM modem link's events: temperature SMS from Efento and BluLog loggers
(docs/architecture.md §7 "GSM modem").

PII: a message's raw text and its sender's full number travel in one kind only, `sms.raw`, which
the hub moves out of `events` into `sms_raw_archive` (read by MASTER only, every read audited).
Every other event carries the text's SHA-256 and the sender masked (`+48 600 *** 012`).
"""
from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Literal

import msgspec

#: What the edge could make of a message: all of it read and a template matched; parts of a
#: concatenated message missing; characters that did not decode; no template matched.
Quality = Literal["complete", "truncated", "garbled", "unparseable"]
RAW_KIND = "sms.raw"


def sms_digest(sender: str, text: str) -> str:
    """The SHA-256 that names one message in events and in the archive (sender and text, so two
    sensors sending the same words are two messages)."""
    return hashlib.sha256(f"{sender}\n{text}".encode()).hexdigest()


def mask_number(sender: str) -> str:
    """A sender as ordinary events show it: an international number with its middle hidden
    (`+48600123012` → `+48 600 *** 012`), a shorter one with all but its last 3 digits hidden, an
    alphanumeric id (`Efento`) as it is (it names a service, not a person)."""
    digits = sender[1:] if sender.startswith("+") else sender
    if not digits.isdigit():
        return sender
    if sender.startswith("+") and len(digits) >= 9:
        country, rest = digits[:-9], digits[-9:]
        return f"+{country} {rest[:3]} *** {rest[-3:]}"
    return ("+" if sender.startswith("+") else "") + "*" * max(0, len(digits) - 3) + digits[-3:]


class TemperatureSms(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """`sms.temp.alarm` / `sms.temp.normal` (and the logger's battery and connection reports):
    what a template read from a sensor's SMS."""

    kind: Literal["alarm", "normal", "battery_low", "lost_connection"]
    sensor: str
    vendor: str
    template: str
    quality: Quality
    sender: str          # masked (mask_number)
    sha256: str          # of the raw message, as the archive names it
    value: float | None = None
    unit: str = "C"
    threshold: float | None = None
    direction: Literal["above", "below"] | None = None
    measured_at: datetime | None = None  # the sensor's own time, when the text gives one


class UnreadSms(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """`sms.unparseable`: a trusted sender's message no template matched, or one that did not
    decode; `sms.untrusted`: a message from a sender not on the list (never an alarm)."""

    quality: Quality
    sender: str          # masked
    sha256: str
    length: int


class RawSms(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """`sms.raw`: the message as received, for the hub's archive only (see the module docstring)."""

    sender: str
    text: str
    sha256: str
    pdus: list[str]      # the PDUs as received, hex
    quality: Quality
    trusted: bool
    smsc_time: datetime | None = None


GSM_BODY_TYPES: dict[str, type[msgspec.Struct]] = {
    "sms.temp.alarm": TemperatureSms,
    "sms.temp.normal": TemperatureSms,
    "sms.temp.battery_low": TemperatureSms,
    "sms.temp.lost_connection": TemperatureSms,
    "sms.unparseable": UnreadSms,
    "sms.untrusted": UnreadSms,
    RAW_KIND: RawSms,
}
