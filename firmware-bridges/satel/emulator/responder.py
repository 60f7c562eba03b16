"""How the module answers each request, given the panel's state."""

from __future__ import annotations

from ..protocol import (
    Answer,
    Arm,
    BypassZones,
    ClearAlarm,
    Cmd,
    DeviceNameAnswer,
    DeviceType,
    Disarm,
    EventTextAnswer,
    IntegraVersionAnswer,
    ModuleVersionAnswer,
    NewDataAnswer,
    OutputAction,
    OutputsAnswer,
    PartitionsAnswer,
    PartitionState,
    ReadDeviceName,
    ReadEvent,
    ReadEventText,
    ReadIntegraVersion,
    ReadModuleVersion,
    ReadNewData,
    ReadOutputs,
    ReadPartitions,
    ReadStatus,
    ReadTroubles,
    ReadZones,
    ReadZoneTemperature,
    Request,
    ResultAnswer,
    ResultCode,
    StartPush,
    StatusAnswer,
    SwitchOutputs,
    TroublesAnswer,
    UnbypassZones,
    ZonesAnswer,
    ZoneState,
    ZoneTemperatureAnswer,
    event_code,
)
from ..protocol.answers import LONG_TEXT_BYTES, NAME_BYTES, SHORT_TEXT_BYTES, TEMPERATURE_UNKNOWN, TEXT_ENCODING
from ..protocol.commands import PARTITION_STATE_CODES, ZONE_STATE_CODES
from .panel import Panel

_NARROW_LIMIT = 128


def _fit(items: frozenset[int], wide: bool) -> frozenset[int]:
    """A 16-byte bitmap cannot carry items above 128; the module leaves them out."""
    return items if wide else frozenset(item for item in items if item <= _NARROW_LIMIT)


def _truncate(text: str, size: int) -> str:
    return text.encode(TEXT_ENCODING)[:size].decode(TEXT_ENCODING, errors="ignore")


def _event_text(request: ReadEventText) -> EventTextAnswer:
    entry = event_code(request.code)
    size = LONG_TEXT_BYTES if request.long else SHORT_TEXT_BYTES
    text = _truncate(entry.text_for(request.restore), size)
    return EventTextAnswer(request.code, request.restore, request.long, entry.long_kind, entry.short_kind, text)


def _name(text: str) -> str:
    """The module sends a device name in 16 bytes; a longer one is cut, as the panel stores it."""
    return _truncate(text, NAME_BYTES)


def _device_name(panel: Panel, request: ReadDeviceName) -> Answer:
    number = request.number
    match request.device_type:
        case DeviceType.PARTITION if number in panel.partitions:
            return DeviceNameAnswer(DeviceType.PARTITION, number, 1, _name(panel.partitions[number].name))
        case DeviceType.ZONE if number in panel.zones:
            zone = panel.zones[number]
            return DeviceNameAnswer(DeviceType.ZONE, number, zone.reaction, _name(zone.name))
        case DeviceType.ZONE_WITH_PARTITION if number in panel.zones:
            zone = panel.zones[number]
            return DeviceNameAnswer(DeviceType.ZONE_WITH_PARTITION, number, zone.reaction, _name(zone.name), zone.partition)
        case DeviceType.OUTPUT if number in panel.outputs:
            output = panel.outputs[number]
            return DeviceNameAnswer(DeviceType.OUTPUT, number, output.function, _name(output.name))
        case DeviceType.USER:
            user = next((user for user in panel.users if user.number == number), None)
            if user is not None:
                serial = 0x80 | (user.number - 1) & 0x1F
                return DeviceNameAnswer(DeviceType.USER, number, 0, _name(user.name), serial)
    return ResultAnswer(ResultCode.OTHER_ERROR)


def _read(panel: Panel, cmd: int) -> None:
    """Reading a command's answer clears its new-data bit."""
    panel.new_data.discard(cmd)


def respond(panel: Panel, request: Request) -> Answer:
    """The module's answer to one decoded request (state-changing requests change the panel)."""
    match request:
        case ReadZones(state=state, wide=wide):
            _read(panel, state)
            return ZonesAnswer(state, _fit(panel.zone_set(state), wide), wide)
        case ReadPartitions(state=state):
            _read(panel, state)
            return PartitionsAnswer(state, panel.partition_set(state))
        case ReadOutputs(wide=wide):
            _read(panel, Cmd.OUTPUTS_STATE)
            return OutputsAnswer(_fit(panel.outputs_on(), wide), wide)
        case ReadStatus():
            _read(panel, Cmd.STATUS)
            return StatusAnswer(panel.clock().replace(microsecond=0), *panel.status_bytes())
        case ReadTroubles(part=part, memory=memory):
            cmd = (Cmd.TROUBLES_MEMORY_1 if memory else Cmd.TROUBLES_1) + part - 1
            _read(panel, cmd)
            return TroublesAnswer(part, memory, bytes(panel.troubles[cmd]))
        case ReadModuleVersion():
            return ModuleVersionAnswer(panel.info.module_version, panel.info.module_capabilities)
        case ReadIntegraVersion():
            info = panel.info
            return IntegraVersionAnswer(info.panel_type, info.panel_version, info.language, True)
        case ReadZoneTemperature(zone=number):
            zone = panel.zones.get(number)
            raw = zone.temperature_raw if zone is not None and zone.temperature_raw is not None else None
            return ZoneTemperatureAnswer(number, TEMPERATURE_UNKNOWN if raw is None else raw)
        case ReadNewData(wide=wide):
            size = 6 if wide else 5
            return NewDataAnswer(frozenset(cmd for cmd in panel.new_data if cmd < size * 8), size)
        case StartPush():
            return ResultAnswer(ResultCode.ACCEPTED)
        case Arm(code=code, partitions=partitions, mode=mode, force=force):
            return ResultAnswer(panel.arm(code, partitions, mode, force=force))
        case Disarm(code=code, partitions=partitions):
            return ResultAnswer(panel.disarm(code, partitions))
        case ClearAlarm(code=code, partitions=partitions):
            return ResultAnswer(panel.clear_alarm(code, partitions))
        case BypassZones(code=code, zones=zones):
            return ResultAnswer(panel.set_bypass(code, zones, True))
        case UnbypassZones(code=code, zones=zones):
            return ResultAnswer(panel.set_bypass(code, zones, False))
        case SwitchOutputs(code=code, outputs=outputs, action=action):
            on = {OutputAction.ON: True, OutputAction.OFF: False}.get(action)
            return ResultAnswer(panel.switch_outputs(code, outputs, on))
        case ReadEvent(index=index):
            return panel.events.read(index)
        case ReadEventText():
            return _event_text(request)
        case ReadDeviceName():
            return _device_name(panel, request)
    raise TypeError(f"not a Satel request: {request!r}")


def push_request_for(cmd: int) -> Request | None:
    """The query whose answer push mode sends when command ``cmd`` has new data.

    An ETHM-1 Plus pushes zone and output bitmaps as 32 bytes whatever the panel model (reference:
    "Behaviour of the real module"), so those are the wide queries.
    """
    if cmd in ZONE_STATE_CODES:
        return ReadZones(ZoneState(cmd), wide=True)
    if cmd in PARTITION_STATE_CODES:
        return ReadPartitions(PartitionState(cmd))
    if Cmd.TROUBLES_1 <= cmd < Cmd.TROUBLES_1 + 5:
        return ReadTroubles(cmd - Cmd.TROUBLES_1 + 1)
    if Cmd.TROUBLES_MEMORY_1 <= cmd < Cmd.TROUBLES_MEMORY_1 + 5:
        return ReadTroubles(cmd - Cmd.TROUBLES_MEMORY_1 + 1, memory=True)
    if cmd == Cmd.OUTPUTS_STATE:
        return ReadOutputs(wide=True)
    if cmd == Cmd.STATUS:
        return ReadStatus()
    return None
