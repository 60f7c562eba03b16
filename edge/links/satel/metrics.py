"""Prometheus metrics of the Satel links, labelled by panel id (served on the edge's /metrics)."""
from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

CONNECTION_STATUS = Gauge(
    "vigil_satel_connection_status", "1 while the link holds a working connection to the module, else 0", ["panel"]
)
POLL_DURATION = Histogram(
    "vigil_satel_poll_duration_seconds",
    "One poll: the 0x7F new-data query and the reads it asks for",
    ["panel"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 3),
)
CRC_ERRORS = Counter("vigil_satel_crc_errors_total", "Frames from the module dropped for a bad checksum", ["panel"])
PROTOCOL_ERRORS = Counter(
    "vigil_satel_protocol_errors_total", "Input from the module the decoder skipped, by reason (bad checksums included)", ["panel", "reason"]
)
RECONNECTS = Counter("vigil_satel_reconnects_total", "Connection attempts after the first one", ["panel"])
COMMANDS = Counter("vigil_satel_commands_total", "Control commands by outcome", ["panel", "result"])
EVENTS = Counter("vigil_satel_events_total", "Events the link appended to the journal", ["panel"])
EVENTS_LOST = Counter("vigil_satel_events_lost_total", "Events the journal refused (full or failing)", ["panel"])
UNSOLICITED_DROPPED = Counter(
    "vigil_satel_unsolicited_dropped_total", "Pushed answers dropped because the link fell behind (a full re-read follows)", ["panel"]
)
