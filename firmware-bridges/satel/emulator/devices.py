"""The things a panel is made of: zones, partitions, outputs, users, and what the module reports."""

from __future__ import annotations

from dataclasses import dataclass


class UnknownDevice(LookupError):
    """A zone, partition, output or trouble the panel does not have."""


@dataclass
class Zone:
    """One zone (detector input) and its state bits."""

    number: int
    name: str
    partition: int
    reaction: int = 1
    temperature_raw: int | None = None  # None: not a temperature zone
    violated: bool = False
    tamper: bool = False
    alarm: bool = False
    tamper_alarm: bool = False
    alarm_memory: bool = False
    tamper_alarm_memory: bool = False
    bypassed: bool = False


@dataclass
class Partition:
    """One partition and its arming state (mode 0–3, or None when disarmed)."""

    number: int
    name: str
    armed_mode: int | None = None
    entry_time: bool = False
    exit_time: bool = False
    alarm: bool = False
    fire_alarm: bool = False
    alarm_memory: bool = False
    fire_alarm_memory: bool = False


@dataclass
class Output:
    """One output (relay, siren, …)."""

    number: int
    name: str
    function: int = 1
    on: bool = False


@dataclass(frozen=True)
class User:
    """A user: number, name, code digits and the partitions the code may control."""

    number: int
    name: str
    code: str
    partitions: frozenset[int]


@dataclass(frozen=True)
class ModuleInfo:
    """What 0x7C and 0x7E report."""

    module_version: str = "20620190301"  # ETHM-1 Plus v2.06 2019-03-01
    module_capabilities: int = 0x01  # serves 32-byte zone/output bitmaps
    panel_type: int = 72  # INTEGRA 256 PLUS
    panel_version: str = "12120180502"
    language: int = 0
