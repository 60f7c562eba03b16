"""What the emulated panel logs and reports: the event codes its actions log, and system troubles.

Texts, classes and description kinds of the codes come from the codec's event table
(``protocol.event_codes``), the one place that knows them.
"""

from __future__ import annotations

from typing import NamedTuple

# Codes of the manual's event list that the emulated panel logs.
ZONE_ALARM = 130  # burglary alarm (restore: zone restore)
TAMPER_ALARM = 144  # zone tamper alarm (restore: tamper restore)
ARMING = 401  # disarm by user (restore flag set: arm by user)
ALARM_CLEARED = 406
FORCED_ARMING = 1001
ZONE_BYPASS = 570  # bypass (restore flag set: unbypass)
AC_TROUBLE = 301
BATTERY_TROUBLE = 302
MONITORING_TROUBLE = 350
EVENT_LOG_CLEARED = 621


class SystemTrouble(NamedTuple):
    """A named trouble: its bit number in troubles part 1 (0x1B) and the event code it logs, if any."""

    bit: int
    event: int | None


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
