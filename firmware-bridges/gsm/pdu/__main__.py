"""``python -m firmware_bridges.gsm.pdu decode HEX…``: one JSON object per SMS-DELIVER PDU.

For engineers with a capture: each argument is a PDU in hex as ``AT+CMGR``/``AT+CMGL`` print it
(SMSC address first). An undecodable PDU prints ``{"error": …}`` and the rest are still decoded.
"""

from __future__ import annotations

import argparse
import io
import json
import sys

from .deliver import PduError, SmsDeliver, decode_deliver


def describe(message: SmsDeliver) -> dict[str, object]:
    """The JSON-ready fields of a decoded PDU."""
    concat = message.concat
    return {
        "sender": message.sender,
        "sender_type": str(message.sender_type),
        "smsc": message.smsc,
        "text": message.text,
        "timestamp": message.timestamp.isoformat(),
        "encoding": message.encoding,
        "concat": None
        if concat is None
        else {"ref": concat.ref, "total": concat.total, "part": concat.part, "ref_bits": concat.ref_bits},
        "message_class": message.message_class,
        "garbled": message.garbled,
        "data": message.data.hex() if message.encoding == "8bit" else None,
    }


def main(argv: list[str] | None = None) -> int:
    """Decode each PDU argument and print one JSON line per PDU."""
    parser = argparse.ArgumentParser(prog="python -m firmware_bridges.gsm.pdu")
    commands = parser.add_subparsers(dest="command", required=True)
    decode = commands.add_parser("decode", help="decode SMS-DELIVER PDUs given in hex")
    decode.add_argument("pdus", nargs="+", metavar="HEX")
    args = parser.parse_args(argv)
    # Non-ASCII text is printed as is for engineers; a non-UTF-8 terminal must not crash the tool.
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(errors="backslashreplace")
    for pdu in args.pdus:
        try:
            result = describe(decode_deliver(pdu))
        except PduError as exc:
            result = {"error": str(exc), "pdu": pdu}
        print(json.dumps(result, ensure_ascii=False), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
