"""What the emulated panel logs and reports: event codes with their texts, and system troubles.

Event codes, restore flags, description kinds and texts follow the event list in Satel's
integration protocol manual; only the events the emulator can produce are listed.
"""

from __future__ import annotations

from typing import NamedTuple

from ..protocol import EventClass


class EventKind(NamedTuple):
    """One loggable event: its class, code, texts, and the kinds of description (manual app. 2, 3)."""

    event_class: EventClass
    code: int
    text: str
    restore_text: str
    long_kind: int
    short_kind: int


# Short description kind bits (manual appendix 3): s = partition, e = zone, u = user.
_PARTITION_ZONE = 0x0003
_PARTITION_USER = 0x0005

ZONE_ALARM = EventKind(EventClass.ZONE_AND_TAMPER_ALARMS, 130, "Burglary alarm", "Zone restore", 1, _PARTITION_ZONE)
TAMPER_ALARM = EventKind(
    EventClass.ZONE_AND_TAMPER_ALARMS, 144, "Alarm (zone tamper)", "Zone tamper restore", 1, _PARTITION_ZONE
)
ARMING = EventKind(EventClass.ARMING_DISARMING_CLEARING, 401, "Disarm by user", "Arm by user", 2, _PARTITION_USER)
_ARMING = EventClass.ARMING_DISARMING_CLEARING
ALARM_CLEARED = EventKind(_ARMING, 406, "Alarm cleared", "Alarm cleared", 2, _PARTITION_USER)
FORCED_ARMING = EventKind(_ARMING, 1001, "Forced arming", "Forced arming", 2, _PARTITION_USER)
ZONE_BYPASS = EventKind(EventClass.ZONE_BYPASSES, 570, "Zone bypass", "Zone unbypass", 1, _PARTITION_ZONE)
AC_TROUBLE = EventKind(EventClass.TROUBLES, 301, "AC supply trouble", "AC supply ok", 4, 0)
BATTERY_TROUBLE = EventKind(EventClass.TROUBLES, 302, "Low battery voltage", "Battery ok", 4, 0)
MONITORING_TROUBLE = EventKind(
    EventClass.TROUBLES,
    350,
    "Transmission to monitoring station trouble",
    "Transmission to monitoring station ok",
    0,
    0,
)

EVENT_KINDS: dict[int, EventKind] = {
    kind.code: kind
    for kind in (
        ZONE_ALARM,
        TAMPER_ALARM,
        ARMING,
        ALARM_CLEARED,
        FORCED_ARMING,
        ZONE_BYPASS,
        AC_TROUBLE,
        BATTERY_TROUBLE,
        MONITORING_TROUBLE,
    )
}


class SystemTrouble(NamedTuple):
    """A named trouble: its bit number in troubles part 1 (0x1B) and the event it logs, if any."""

    bit: int
    event: EventKind | None


#: The first three bytes of troubles part 1 are the system troubles (manual, "System troubles").
SYSTEM_TROUBLES: dict[str, SystemTrouble] = {
    "out1": SystemTrouble(1, None),
    "out2": SystemTrouble(2, None),
    "out3": SystemTrouble(3, None),
    "out4": SystemTrouble(4, None),
    "kpd": SystemTrouble(5, None),
    "ex": SystemTrouble(6, None),
    "battery": SystemTrouble(7, BATTERY_TROUBLE),
    "ac": SystemTrouble(8, AC_TROUBLE),
    "dt1": SystemTrouble(9, None),
    "dt2": SystemTrouble(10, None),
    "dtm": SystemTrouble(11, None),
    "rtc": SystemTrouble(12, None),
    "no_dtr": SystemTrouble(13, None),
    "no_battery": SystemTrouble(14, None),
    "station1": SystemTrouble(20, MONITORING_TROUBLE),
    "station2": SystemTrouble(21, MONITORING_TROUBLE),
}
