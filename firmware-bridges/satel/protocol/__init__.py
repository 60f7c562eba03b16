"""Sans-IO codec for the Satel INTEGRA integration protocol (ETHM-1 / ETHM-1 Plus / INT-RS).

Typical client use::

    channel = FrameChannel.for_key(integration_key_or_None)
    sock.send(channel.encode(encode_request(ReadZones(ZoneState.VIOLATION))))
    for event in channel.feed(sock.recv(4096)):
        match event:
            case Frame():
                answer = decode_answer(event)
            case Busy():
                ...  # another client holds the module
            case ProtocolError():
                ...  # count and log; decoding carries on
"""

from .answers import (
    TEMPERATURE_UNKNOWN,
    Answer,
    DeviceNameAnswer,
    EventAnswer,
    EventTextAnswer,
    IntegraVersionAnswer,
    ModuleVersionAnswer,
    NewDataAnswer,
    OutputsAnswer,
    PartitionsAnswer,
    ResultAnswer,
    StatusAnswer,
    TroublesAnswer,
    UnknownAnswer,
    ZonesAnswer,
    ZoneTemperatureAnswer,
)
from .bitmaps import decode_bitmap, encode_bitmap
from .channel import FrameChannel
from .codec import (
    SatelDecodeError,
    answer_payload,
    decode_answer,
    decode_request,
    encode_answer,
    encode_request,
)
from .commands import (
    Cmd,
    DeviceType,
    OutputAction,
    PartitionState,
    ResultCode,
    ZoneState,
    command_name,
)
from .crypto import EncryptedSession, PduCipher, derive_aes_key
from .events import (
    END_OF_EVENTS,
    EventClass,
    EventRecord,
    MonitoringStatus,
    decode_event_record,
    encode_event_record,
)
from .frame import (
    BUSY_BANNER,
    MAX_BODY,
    Busy,
    ErrorReason,
    Frame,
    FrameDecoder,
    FrameEvent,
    ProtocolError,
    checksum,
    encode_frame,
    stuff,
)
from .requests import (
    NEWEST_EVENT,
    Arm,
    BypassZones,
    ClearAlarm,
    Disarm,
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
    StartPush,
    SwitchOutputs,
    UnbypassZones,
)
from .user_code import UserCode

__all__ = [
    "BUSY_BANNER",
    "END_OF_EVENTS",
    "MAX_BODY",
    "NEWEST_EVENT",
    "TEMPERATURE_UNKNOWN",
    "Answer",
    "Arm",
    "Busy",
    "BypassZones",
    "ClearAlarm",
    "Cmd",
    "DeviceNameAnswer",
    "DeviceType",
    "Disarm",
    "EncryptedSession",
    "ErrorReason",
    "EventAnswer",
    "EventClass",
    "EventRecord",
    "EventTextAnswer",
    "Frame",
    "FrameChannel",
    "FrameDecoder",
    "FrameEvent",
    "IntegraVersionAnswer",
    "ModuleVersionAnswer",
    "MonitoringStatus",
    "NewDataAnswer",
    "OutputAction",
    "OutputsAnswer",
    "PartitionState",
    "PartitionsAnswer",
    "PduCipher",
    "ProtocolError",
    "ReadDeviceName",
    "ReadEvent",
    "ReadEventText",
    "ReadIntegraVersion",
    "ReadModuleVersion",
    "ReadNewData",
    "ReadOutputs",
    "ReadPartitions",
    "ReadStatus",
    "ReadTroubles",
    "ReadZoneTemperature",
    "ReadZones",
    "Request",
    "ResultAnswer",
    "ResultCode",
    "SatelDecodeError",
    "StartPush",
    "StatusAnswer",
    "SwitchOutputs",
    "TroublesAnswer",
    "UnbypassZones",
    "UnknownAnswer",
    "UserCode",
    "ZoneState",
    "ZoneTemperatureAnswer",
    "ZonesAnswer",
    "answer_payload",
    "checksum",
    "command_name",
    "decode_answer",
    "decode_bitmap",
    "decode_event_record",
    "decode_request",
    "derive_aes_key",
    "encode_answer",
    "encode_bitmap",
    "encode_event_record",
    "encode_frame",
    "encode_request",
    "stuff",
]
