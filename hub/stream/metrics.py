"""Prometheus metrics of the live stream (one set per process, shared by every feed in it)."""
from __future__ import annotations

from prometheus_client import Counter, Gauge

CLIENTS = Gauge("vigil_stream_clients", "Live stream clients connected", ["transport"])
MESSAGES = Counter("vigil_stream_messages_sent_total", "Live stream messages sent", ["transport", "type"])
OVERFLOWS = Counter("vigil_stream_overflows_total", "Clients told to reload from REST", ["reason"])
FEED_ROWS = Counter("vigil_stream_feed_rows_total", "Outbox rows read by the feed")
FEED_RECONNECTS = Counter("vigil_stream_listen_reconnects_total", "LISTEN connections (re)established")
