"""Throughput of reading a temperature SMS: SMS-DELIVER PDU decode (firmware_bridges.gsm.pdu) and
the Efento/BluLog template parse (edge.links.gsm.templates), one message after the other as the
GSM link does them.

The messages are the alert texts loggers send (Polish in UCS2, English in GSM-7, alarms, returns to
normal, battery and connection reports, and some no template matches), each encoded as the SMSC
delivers it. A modem brings a few per second; the figure says the link never becomes the
bottleneck in a burst (a storage full of messages read at once after an outage)::

    BENCH sms_parse=<messages per second> messages/s target=20000 better=higher

``--quick`` uses fewer messages for the test suite.
"""
from __future__ import annotations

import argparse
import datetime
import random
import sys
import time

from _rig import emit
from edge.links.gsm.templates import TemplateSet, default_templates
from firmware_bridges.gsm.pdu import decode_deliver, encode_deliver

TARGET = 20_000
SENDERS = ("+48600123012", "+48511222333", "Efento", "BluLog")
TEXTS = (
    ("Efento: sensor 282C02 'Cold room' temperature 9.4C above threshold 8.0C", "gsm7"),
    ("Efento: sensor 282C02 temperature back to normal 6.1C", "gsm7"),
    ("BluLog ALARM: Logger 'Apteka-1' T=-18.5C < -15.0C 30.11.2026 14:05", "ucs2"),
    ("Alarm temperatury: czujnik Chłodnia 1 9,4°C powyżej progu 8,0°C", "ucs2"),
    ("Your parcel is waiting at the locker", "gsm7"),  # matches no template
)


def build(count: int) -> list[str]:
    """`count` PDUs (hex, as AT+CMGR shows them) drawn from the sample texts."""
    rng = random.Random(14)
    when = datetime.datetime(2026, 11, 30, 14, 5, tzinfo=datetime.timezone(datetime.timedelta(hours=1)))
    samples = [encode_deliver(sender, text, encoding=encoding, smsc_time=when).hex().upper()  # type: ignore[arg-type]
               for sender in SENDERS for text, encoding in TEXTS]
    return [rng.choice(samples) for _ in range(count)]


def read_all(pdus: list[str], templates: TemplateSet) -> tuple[int, float]:
    """Decode and parse every PDU; how many a template matched, and the seconds it took."""
    matched = 0
    started = time.perf_counter()
    for pdu in pdus:
        sms = decode_deliver(pdu)
        if templates.parse(sms.text).template is not None:
            matched += 1
    return matched, time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the BENCH line; exit 1 if the sample texts stop parsing."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer messages, fewer repetitions")
    args = parser.parse_args(argv)
    count, repeats = (5_000, 2) if args.quick else (100_000, 5)
    pdus = build(count)
    templates = default_templates()
    matched, _ = read_all(pdus, templates)
    # Four of the five sample texts are alerts a default template must read.
    if not 0.6 * count <= matched <= 0.9 * count:
        print(f"sms: {matched} of {count} messages matched a template; the default templates changed?",
              file=sys.stderr)
        return 1
    best = min(read_all(pdus, templates)[1] for _ in range(repeats))
    emit("sms_parse", count / best, "messages/s", TARGET, "higher", decimals=0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
