"""The 8-byte event log record carried by the 0x8C answer.

Bit layout, high bit first::

    byte 0  Y Y Z E S2 S2 S1 S1    year % 4, not-empty, present, monitoring status station 2 / 1
    byte 1  K K K D D D D D        event class, day of month
    byte 2  M M M M T T T T        month, minutes since midnight (high 4 bits)
    byte 3  t t t t t t t t        minutes since midnight (low 8 bits)
    byte 4  P P P P P R C C        partition - 1, restore flag, event code (high 2 bits)
    byte 5  c c c c c c c c        event code (low 8 bits)
    byte 6  n n n n n n n n        source: zone, user, expander… depending on the event
    byte 7  S S S u u u u u        object number, user control number
"""

from __future__ import annotations

import datetime
from enum import IntEnum

import msgspec

RECORD_BYTES = 8


class EventClass(IntEnum):
    """KKK: the broad kind of an event."""

    ZONE_AND_TAMPER_ALARMS = 0
    PARTITION_AND_EXPANDER_ALARMS = 1
    ARMING_DISARMING_CLEARING = 2
    ZONE_BYPASSES = 3
    ACCESS_CONTROL = 4
    TROUBLES = 5
    USER_FUNCTIONS = 6
    SYSTEM_EVENTS = 7


class MonitoringStatus(IntEnum):
    """S1 / S2: how the event fared with monitoring station 1 / 2."""

    NEW = 0
    SENT = 1
    INVALID = 2
    NOT_MONITORED = 3


_FIELD_RANGES = {
    "year_marker": 3,
    "day": 31,
    "month": 15,
    "minutes": 0xFFF,
    "code": 0x3FF,
    "source": 0xFF,
    "object_number": 7,
    "user_control": 31,
}


class EventRecord(msgspec.Struct, frozen=True):
    """One decoded event log record. Every one of the 64 bits maps to a field."""

    not_empty: bool
    present: bool
    year_marker: int
    monitoring_1: MonitoringStatus
    monitoring_2: MonitoringStatus
    event_class: EventClass
    day: int
    month: int
    minutes: int
    partition: int
    restore: bool
    code: int
    source: int
    object_number: int = 0
    user_control: int = 0

    def __post_init__(self) -> None:
        for name, highest in _FIELD_RANGES.items():
            value = getattr(self, name)
            if not 0 <= value <= highest:
                raise ValueError(f"event record {name} {value!r} is outside 0..{highest}")
        if not 1 <= self.partition <= 32:
            raise ValueError(f"event record partition {self.partition!r} is outside 1..32")

    @property
    def is_end(self) -> bool:
        """True for the 'end of events' record (Z bit clear): nothing older to read."""
        return not self.not_empty

    def timestamp(self, reference: datetime.datetime) -> datetime.datetime | None:
        """When the event happened, taking the latest year ≤ ``reference.year`` with the marker.

        The record stores only ``year % 4``; returns None when day, month or minutes are invalid.
        """
        year = reference.year - (reference.year - self.year_marker) % 4
        try:
            stamp = datetime.datetime(year, self.month, self.day, self.minutes // 60, self.minutes % 60)
        except ValueError:
            return None
        if reference.tzinfo is not None:
            stamp = stamp.replace(tzinfo=reference.tzinfo)
        return stamp


def decode_event_record(data: bytes) -> EventRecord:
    """Decode the 8 record bytes of a 0x8C answer."""
    if len(data) != RECORD_BYTES:
        raise ValueError(f"an event record is {RECORD_BYTES} bytes, got {len(data)}")
    b0, b1, b2, b3, b4, b5, b6, b7 = data
    return EventRecord(
        not_empty=bool(b0 & 0x20),
        present=bool(b0 & 0x10),
        year_marker=b0 >> 6,
        monitoring_1=MonitoringStatus(b0 & 0x03),
        monitoring_2=MonitoringStatus((b0 >> 2) & 0x03),
        event_class=EventClass(b1 >> 5),
        day=b1 & 0x1F,
        month=b2 >> 4,
        minutes=(b2 & 0x0F) << 8 | b3,
        partition=(b4 >> 3) + 1,
        restore=bool(b4 & 0x04),
        code=(b4 & 0x03) << 8 | b5,
        source=b6,
        object_number=b7 >> 5,
        user_control=b7 & 0x1F,
    )


def encode_event_record(record: EventRecord) -> bytes:
    """Encode a record into its 8 bytes (the exact inverse of :func:`decode_event_record`)."""
    return bytes(
        (
            record.year_marker << 6
            | record.not_empty << 5
            | record.present << 4
            | record.monitoring_2 << 2
            | record.monitoring_1,
            record.event_class << 5 | record.day,
            record.month << 4 | record.minutes >> 8,
            record.minutes & 0xFF,
            (record.partition - 1) << 3 | record.restore << 2 | record.code >> 8,
            record.code & 0xFF,
            record.source,
            record.object_number << 5 | record.user_control,
        )
    )


#: The record a module returns when there is nothing (more) to read.
END_OF_EVENTS = decode_event_record(bytes(RECORD_BYTES))
