"""Command codes, the enums that name them and their human-readable names."""

from __future__ import annotations

from enum import IntEnum


class ZoneState(IntEnum):
    """Queries answered with a zone bitmap (16 or 32 bytes)."""

    VIOLATION = 0x00
    TAMPER = 0x01
    ALARM = 0x02
    TAMPER_ALARM = 0x03
    ALARM_MEMORY = 0x04
    TAMPER_ALARM_MEMORY = 0x05
    BYPASS = 0x06
    NO_VIOLATION_TROUBLE = 0x07
    LONG_VIOLATION_TROUBLE = 0x08
    ISOLATE = 0x26
    MASKED = 0x28
    MASKED_MEMORY = 0x29


class PartitionState(IntEnum):
    """Queries answered with a 4-byte partition bitmap."""

    ARMED_SUPPRESSED = 0x09
    ARMED = 0x0A  # really armed; "armed in mode 0"
    ARMED_MODE_2 = 0x0B
    ARMED_MODE_3 = 0x0C
    FIRST_CODE_ENTERED = 0x0D
    ENTRY_TIME = 0x0E
    EXIT_TIME_LONG = 0x0F  # exit time > 10 s
    EXIT_TIME_SHORT = 0x10  # exit time < 10 s
    TEMPORARY_BLOCKED = 0x11
    BLOCKED_FOR_GUARD_ROUND = 0x12
    ALARM = 0x13
    FIRE_ALARM = 0x14
    ALARM_MEMORY = 0x15
    FIRE_ALARM_MEMORY = 0x16
    VIOLATED_ZONES = 0x25
    VERIFIED_ALARMS = 0x27
    ARMED_MODE_1 = 0x2A
    WARNING_ALARMS = 0x2B


class Cmd(IntEnum):
    """Command bytes that are not a plain bitmap query."""

    OUTPUTS_STATE = 0x17
    STATUS = 0x1A
    TROUBLES_1 = 0x1B
    TROUBLES_MEMORY_1 = 0x20
    MODULE_VERSION = 0x7C
    ZONE_TEMPERATURE = 0x7D
    INTEGRA_VERSION = 0x7E
    NEW_DATA = 0x7F
    ARM_MODE_0 = 0x80
    DISARM = 0x84
    CLEAR_ALARM = 0x85
    ZONES_BYPASS = 0x86
    ZONES_UNBYPASS = 0x87
    READ_EVENT = 0x8C
    EVENT_TEXT = 0x8F
    FORCE_ARM_MODE_0 = 0xA0
    DEVICE_NAME = 0xEE
    RESULT = 0xEF


class OutputAction(IntEnum):
    """What an outputs control command does; the value is its command byte."""

    ON = 0x88
    OFF = 0x89
    TOGGLE = 0x91


class DeviceType(IntEnum):
    """Device types for 0xEE (read device name)."""

    PARTITION = 0
    ZONE = 1
    USER = 2
    EXPANDER = 3
    OUTPUT = 4
    ZONE_WITH_PARTITION = 5


class ResultCode(IntEnum):
    """0xEF result codes; 0x80..0x8F are further 'other errors'."""

    OK = 0x00
    USER_CODE_NOT_FOUND = 0x01
    NO_ACCESS = 0x02
    USER_DOES_NOT_EXIST = 0x03
    USER_ALREADY_EXISTS = 0x04
    WRONG_CODE_OR_CODE_EXISTS = 0x05
    TELEPHONE_CODE_EXISTS = 0x06
    CODE_UNCHANGED = 0x07
    OTHER_ERROR = 0x08
    CANNOT_ARM_USE_FORCE = 0x11
    CANNOT_ARM = 0x12
    ACCEPTED = 0xFF


#: Command bytes of the zone and partition bitmap queries.
ZONE_STATE_CODES = frozenset(state.value for state in ZoneState)
PARTITION_STATE_CODES = frozenset(state.value for state in PartitionState)
#: Device types whose numbers go up to 256 (sent as 0) on INTEGRA 256 PLUS.
DEVICES_UP_TO_256 = frozenset({DeviceType.ZONE, DeviceType.OUTPUT, DeviceType.ZONE_WITH_PARTITION})

#: Answer sizes of 0x1B..0x1F (troubles parts 1..5) and 0x20..0x24 (troubles memory parts 1..5).
TROUBLE_BYTES = (47, 26, 60, 30, 31)
TROUBLE_MEMORY_BYTES = (47, 39, 60, 30, 48)

_NAMES: dict[int, str] = {
    **{state.value: f"zones_{state.name.lower()}" for state in ZoneState},
    **{state.value: f"partitions_{state.name.lower()}" for state in PartitionState},
    Cmd.OUTPUTS_STATE: "outputs_state",
    Cmd.STATUS: "status",
    **{Cmd.TROUBLES_1 + i: f"troubles_{i + 1}" for i in range(5)},
    **{Cmd.TROUBLES_MEMORY_1 + i: f"troubles_memory_{i + 1}" for i in range(5)},
    Cmd.MODULE_VERSION: "module_version",
    Cmd.ZONE_TEMPERATURE: "zone_temperature",
    Cmd.INTEGRA_VERSION: "integra_version",
    Cmd.NEW_DATA: "new_data",
    **{Cmd.ARM_MODE_0 + mode: f"arm_mode_{mode}" for mode in range(4)},
    Cmd.DISARM: "disarm",
    Cmd.CLEAR_ALARM: "clear_alarm",
    Cmd.ZONES_BYPASS: "zones_bypass",
    Cmd.ZONES_UNBYPASS: "zones_unbypass",
    **{action.value: f"outputs_{action.name.lower()}" for action in OutputAction},
    Cmd.READ_EVENT: "read_event",
    Cmd.EVENT_TEXT: "event_text",
    **{Cmd.FORCE_ARM_MODE_0 + mode: f"force_arm_mode_{mode}" for mode in range(4)},
    Cmd.DEVICE_NAME: "device_name",
    Cmd.RESULT: "result",
}


def command_name(cmd: int) -> str:
    """Human-readable name of a command byte (``unknown_0xNN`` for bytes this codec does not model)."""
    return _NAMES.get(cmd, f"unknown_0x{cmd:02x}")
