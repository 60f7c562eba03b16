"""SMS-DELIVER PDU codec (3GPP TS 23.040) and its debugging CLI (``python -m … decode HEX…``)."""

from .deliver import (
    AddressType,
    Concat,
    Encoding,
    PduError,
    SmsDeliver,
    decode_deliver,
    decode_user_data,
    encode_deliver,
    encode_deliver_raw,
    split_for_concat,
    tpdu_length,
)

__all__ = [
    "AddressType",
    "Concat",
    "Encoding",
    "PduError",
    "SmsDeliver",
    "decode_deliver",
    "decode_user_data",
    "encode_deliver",
    "encode_deliver_raw",
    "split_for_concat",
    "tpdu_length",
]
