"""What the codes in the panel's event log mean: category, texts, and what the source byte names.

Satel's event list (protocol manual, with appendix 2 "kinds of long description" and appendix 3
"kinds of short description") gives every 10-bit code a text, a text for its restore (flag R of the
record), and a description kind that says how to read the record's source byte: a zone (or an
expander / keypad, by number range), a user, nothing, …. This table is the codec's single source
of truth for those facts; the emulator builds its records and 0x8F answers from it.

A code the table does not know decodes to category OTHER with a generic text, never an error:
panels gain codes with every firmware release.
"""

from __future__ import annotations

from enum import Enum

import msgspec

from .events import EventClass, EventRecord

#: The text of a code this table does not know.
UNKNOWN_EVENT_TEXT = "Unknown event"


class EventCategory(str, Enum):
    """What an event means for whoever watches the site."""

    ALARM = "ALARM"
    TAMPER = "TAMPER"
    FIRE = "FIRE"
    PANIC = "PANIC"
    ARM = "ARM"
    DISARM = "DISARM"
    ALARM_CLEARED = "ALARM_CLEARED"
    BYPASS = "BYPASS"
    TROUBLE = "TROUBLE"
    SYSTEM = "SYSTEM"
    OTHER = "OTHER"


class SourceKind(str, Enum):
    """What the record's source byte names.

    PARTITION: the event is about the record's own partition field; the source byte adds nothing.
    """

    ZONE = "zone"
    USER = "user"
    PARTITION = "partition"
    EXPANDER = "expander"
    NONE = "none"


# Appendix 2 kinds of long description this table uses, by what the source byte names:
# 1 partition + zone/expander/keypad, 4 zone/expander/keypad, 2 partition + user, 6 keypad + user,
# 7 user, 5 partition, 15 partition + timer, 0 nothing, 11 partition + data bus, 12 partition + output.
_ZONE_RANGE_KINDS = frozenset({1, 4})
_USER_KINDS = frozenset({2, 6, 7})
_PARTITION_KINDS = frozenset({5, 15})
# Appendix 3 short description bits: s partition, e zone/expander/keypad, u user, m keypad,
# w output/expander, t timer, D data bus.
_SHORT_KINDS = {
    0: 0x0000,
    1: 0x0003,  # s e
    2: 0x0005,  # s u
    4: 0x0002,  # e
    5: 0x0001,  # s
    6: 0x0014,  # m u
    7: 0x0004,  # u
    11: 0x0401,  # s D
    12: 0x0021,  # s w
    15: 0x0041,  # s t
}

# Source numbers of the zone/expander/keypad kinds: zones 1..128, expanders 129..192 and keypads
# 193..210, the numbering the 0xEE device name command uses for types 1 and 3.
_LAST_ZONE = 128
_LAST_EXPANDER_OR_KEYPAD = 210
# Source numbers of the user kinds: users 1..240 and masters 241..248; above are not people
# (249 INT-AV, 251 SMS, 252 timer, 253 function zone, 254 quick arm, 255 service).
_LAST_USER = 248


class EventCode(msgspec.Struct, frozen=True):
    """One code of the event list; ``restore_category`` differs where the restore flag flips the
    meaning (401: disarm by user / with R set, arm by user)."""

    code: int
    event_class: EventClass
    category: EventCategory
    text: str
    restore_text: str
    long_kind: int
    restore_category: EventCategory | None = None

    def category_for(self, restore: bool) -> EventCategory:
        """The category of a record with this code and restore flag."""
        return self.restore_category if restore and self.restore_category is not None else self.category

    def text_for(self, restore: bool) -> str:
        """The text of a record with this code and restore flag."""
        return self.restore_text if restore else self.text

    @property
    def short_kind(self) -> int:
        """The appendix 3 bits a 0x8F answer carries for this code."""
        return _SHORT_KINDS.get(self.long_kind, 0)

    @property
    def source_kind(self) -> SourceKind:
        """What the source byte of a record with this code names (before its number range)."""
        if self.long_kind in _ZONE_RANGE_KINDS:
            return SourceKind.ZONE
        if self.long_kind in _USER_KINDS:
            return SourceKind.USER
        if self.long_kind in _PARTITION_KINDS:
            return SourceKind.PARTITION
        return SourceKind.NONE


class EventDescription(msgspec.Struct, frozen=True):
    """A record read through the table: ``number`` is the zone, user, expander or partition the
    source names (per ``source``), or None."""

    code: int
    restore: bool
    category: EventCategory
    text: str
    source: SourceKind
    number: int | None


def _codes(event_class: EventClass, *rows: tuple[int, EventCategory, str, str, int]) -> list[EventCode]:
    return [EventCode(code, event_class, category, text, restore, kind) for code, category, text, restore, kind in rows]


def _arming(code: int, disarm: str, arm: str, kind: int) -> EventCode:
    """A code whose restore flag turns a disarming into an arming (manual: 400–409)."""
    return EventCode(
        code, EventClass.ARMING_DISARMING_CLEARING, EventCategory.DISARM, disarm, arm, kind, EventCategory.ARM
    )


_A, _T, _F, _P = EventCategory.ALARM, EventCategory.TAMPER, EventCategory.FIRE, EventCategory.PANIC
_TR, _SYS, _OTHER = EventCategory.TROUBLE, EventCategory.SYSTEM, EventCategory.OTHER
_BYPASS = EventCategory.BYPASS

_TABLE: list[EventCode] = [
    *_codes(
        EventClass.ZONE_AND_TAMPER_ALARMS,
        (100, _P, "Medical alarm (button)", "Medical button released", 1),
        (101, _P, "Medical alarm (remote)", "Remote medical alarm restore", 1),
        (110, _F, "Fire alarm", "Fire zone restore", 1),
        (111, _F, "Fire alarm (smoke detector)", "Smoke detector restore", 1),
        (112, _F, "Fire alarm (combustion)", "Combustion zone restore", 1),
        (113, _F, "Fire alarm (water flow)", "Water flow restore", 1),
        (114, _F, "Fire alarm (heat detector)", "Heat detector restore", 1),
        (115, _F, "Fire alarm (button)", "Fire button released", 1),
        (116, _F, "Fire alarm (duct)", "Duct zone restore", 1),
        (117, _F, "Fire alarm (flame detector)", "Flame detector restore", 1),
        (122, _P, "Silent panic alarm", "Silent panic zone restore", 1),
        (123, _P, "Audible panic alarm", "Audible panic zone restore", 1),
        (130, _A, "Burglary alarm", "Zone restore", 1),
        (131, _A, "Alarm (perimeter zone)", "Perimeter zone restore", 1),
        (132, _A, "Alarm (interior zone)", "Interior zone restore", 1),
        (133, _A, "Alarm (24h burglary zone)", "24h burglary zone restore", 1),
        (134, _A, "Alarm (entry/exit zone)", "Entry/exit zone restore", 1),
        (135, _A, "Alarm (day/night zone)", "Day/night zone restore", 1),
        (136, _A, "Alarm (exterior zone)", "Exterior zone restore", 1),
        (137, _T, "Alarm (perimeter tamper)", "Perimeter tamper restore", 1),
        (139, _A, "Verified alarm", "Verified alarm", 1),
        (144, _T, "Alarm (zone tamper)", "Zone tamper restore", 1),
        (150, _A, "Alarm (24h non-burglary zone)", "24h non-burglary zone restore", 1),
        (151, _A, "Alarm (gas detector)", "Gas zone restore", 1),
        (154, _A, "Alarm (water leak)", "Water leak zone restore", 1),
        (158, _A, "Alarm (high temperature)", "High temperature restore", 1),
        (159, _A, "Alarm (low temperature)", "Low temperature restore", 1),
        (162, _A, "Alarm (carbon monoxide)", "Carbon monoxide restore", 1),
        (373, _T, "Alarm (fire detector tamper)", "Fire detector tamper restore", 1),
        (383, _T, "Alarm (radio zone tamper)", "Radio zone tamper restore", 1),
    ),
    *_codes(
        EventClass.PARTITION_AND_EXPANDER_ALARMS,
        (84, _T, "Alarm (card reader tamper)", "Card reader tamper restore", 1),
        (92, _T, "Alarm (module verification)", "Module verification ok", 1),
        (93, _T, "Alarm (module missing)", "Module present again", 1),
        (94, _T, "Alarm (module tamper input)", "Module tamper input restore", 1),
        (120, _P, "Panic alarm (keypad)", "Panic alarm (keypad)", 1),
        (121, _P, "Duress alarm", "Duress alarm", 2),
        (126, _A, "Alarm (no guard round)", "Alarm (no guard round)", 5),
        (145, _T, "Alarm (module tamper)", "Module tamper restore", 1),
        (423, _A, "Alarm (door opened, partition armed)", "Alarm (door opened, partition armed)", 1),
        (461, _A, "Alarm (3 wrong access codes)", "Alarm (3 wrong access codes)", 1),
        (986, _A, "Warning alarm", "Warning alarm", 1),
    ),
    _arming(400, "Disarm", "Arm", 2),
    _arming(401, "Disarm by user", "Arm by user", 2),
    _arming(402, "Group disarm", "Group arm", 2),
    _arming(403, "Auto-disarm", "Auto-arm", 15),
    _arming(404, "Late disarm by user", "Late arm by user", 2),
    _arming(405, "Deferred disarm by user", "Deferred arm by user", 2),
    _arming(407, "Remote disarm", "Remote arm", 2),
    _arming(409, "Disarm by zone", "Arm by zone", 1),
    *_codes(
        EventClass.ARMING_DISARMING_CLEARING,
        (406, EventCategory.ALARM_CLEARED, "Alarm cleared", "Alarm cleared", 2),
        (408, EventCategory.ARM, "Quick arm", "Quick arm", 1),
        (441, EventCategory.ARM, "Arm (stay mode)", "Arm (stay mode)", 2),
        (454, _OTHER, "Arming failed", "Arming failed", 2),
        (987, EventCategory.ALARM_CLEARED, "Warning alarm cleared", "Warning alarm cleared", 2),
        (988, _OTHER, "Arming aborted", "Arming aborted", 1),
        (1001, EventCategory.ARM, "Forced arming", "Forced arming", 2),
    ),
    *_codes(
        EventClass.ZONE_BYPASSES,
        (570, _BYPASS, "Zone bypass", "Zone unbypass", 1),
        (571, _BYPASS, "Fire zone bypass", "Fire zone unbypass", 1),
        (572, _BYPASS, "24h zone bypass", "24h zone unbypass", 1),
        (573, _BYPASS, "Burglary zone bypass", "Burglary zone unbypass", 1),
        (575, _BYPASS, "Zone auto-bypassed (violations)", "Zone auto-unbypassed (violations)", 1),
        (991, _BYPASS, "Zone auto-bypassed (tamper)", "Zone auto-unbypassed (tamper)", 1),
    ),
    *_codes(
        EventClass.TROUBLES,
        (78, _TR, "Network cable unplugged", "Network cable ok", 1),
        (88, _TR, "GSM module trouble", "GSM module ok", 0),
        (301, _TR, "AC supply trouble", "AC supply ok", 4),
        (302, _TR, "Low battery voltage", "Battery ok", 4),
        (312, _TR, "Supply output overload", "Supply output overload restore", 12),
        (333, _TR, "Communication bus trouble", "Communication bus ok", 11),
        (344, _TR, "Radio jamming detected", "Radio jamming ended", 1),
        (350, _TR, "Transmission to monitoring station trouble", "Transmission to monitoring station ok", 0),
        (351, _TR, "Telephone line trouble", "Telephone line ok", 0),
        (380, _TR, "Zone trouble (masking)", "Zone masking ended", 1),
        (381, _TR, "Radio link trouble", "Radio link ok", 1),
        (384, _TR, "Low battery in radio zone", "Radio zone battery ok", 1),
        (1000, _TR, "Zone trouble", "Zone trouble restore", 1),
        (1002, _TR, "No network (PING test)", "Network ok (PING test)", 4),
    ),
    *_codes(
        EventClass.USER_FUNCTIONS,
        (69, _OTHER, "Troubles memory cleared", "Troubles memory cleared", 6),
        (70, _OTHER, "User logged in", "User logged in", 6),
        (71, _OTHER, "User logged out", "User logged out", 6),
        (601, _OTHER, "Manual transmission test", "Manual transmission test", 6),
    ),
    *_codes(
        EventClass.SYSTEM_EVENTS,
        (31, _SYS, "Panel firmware updated", "Panel firmware updated", 0),
        (68, _SYS, "Panel clock set", "Panel clock set", 0),
        (305, _SYS, "Main panel restart", "Main panel restart", 4),
        (306, _SYS, "Main panel settings reset", "Settings restored from flash", 0),
        (339, _SYS, "Module restart", "Module restart", 4),
        (412, _SYS, "Download finished", "Download finished", 0),
        (621, _SYS, "Event log cleared", "Event log cleared", 0),
        (622, _SYS, "Event log 50% full", "Event log 50% full", 0),
        (623, _SYS, "Event log 90% full", "Event log 90% full", 0),
        (627, _SYS, "Service mode started", "Service mode started", 4),
        (628, _SYS, "Service mode finished", "Service mode finished", 4),
    ),
]

#: Every code this codec knows, by code.
EVENT_CODES: dict[int, EventCode] = {entry.code: entry for entry in _TABLE}


def event_code(code: int) -> EventCode:
    """The table entry for ``code``; a code the table does not know gets category OTHER, the
    generic text and no source."""
    known = EVENT_CODES.get(code)
    if known is not None:
        return known
    return EventCode(code, EventClass.SYSTEM_EVENTS, _OTHER, UNKNOWN_EVENT_TEXT, UNKNOWN_EVENT_TEXT, 0)


def _source(kind: SourceKind, source: int, partition: int) -> tuple[SourceKind, int | None]:
    if kind is SourceKind.ZONE:
        if 1 <= source <= _LAST_ZONE:
            return SourceKind.ZONE, source
        if source <= _LAST_EXPANDER_OR_KEYPAD and source != 0:
            return SourceKind.EXPANDER, source
    elif kind is SourceKind.USER and 1 <= source <= _LAST_USER:
        return SourceKind.USER, source
    elif kind is SourceKind.PARTITION:
        return SourceKind.PARTITION, partition
    return SourceKind.NONE, None


def describe_record(record: EventRecord) -> EventDescription:
    """What a 0x8C record means: its code's category and text (per the restore flag), and the
    zone, user, expander or partition its source byte names."""
    entry = event_code(record.code)
    source, number = _source(entry.source_kind, record.source, record.partition)
    return EventDescription(
        record.code, record.restore, entry.category_for(record.restore), entry.text_for(record.restore), source, number
    )
