"""Prometheus metrics of the live stream (one set per process, shared by every feed in it)."""
from __future__ import annotations

from prometheus_client import Counter, Gauge

CLIENTS = Gauge("vigil_stream_clients", "Live stream clients connected", ["transport"])
MESSAGES = Counter("vigil_stream_messages_sent_total", "Live stream messages sent", ["transport", "type"])
OVERFLOWS = Counter("vigil_stream_overflows_total", "Clients told to reload from REST", ["reason"])
# The seed's replay figures. Tier 1 is the feed's ring in memory; tier 2 is PostgreSQL, read when
# a resuming client's cursor is older than the ring reaches.
REPLAY_DB_QUERIES = Counter("vigil_ws_replay_tier2_queries_total",
                            "Catch-up pages read from PostgreSQL: the ring no longer reached the client's cursor",
                            ["transport"])
# The overflows of a replay (reasons in REPLAY_OVERFLOW_REASONS): a subset of
# vigil_stream_overflows_total, counted again on purpose so the seed's figure needs no reason
# filter; never add the two.
REPLAY_OVERFLOWS = Counter("vigil_ws_replay_overflow_count",
                           "Resuming clients that could not be replayed and were told to reload from REST",
                           ["transport"])
REPLAY_OVERFLOW_REASONS = ("horizon", "unknown_cursor")
FEED_ROWS = Counter("vigil_stream_feed_rows_total", "Outbox rows read by the feed")
FEED_RECONNECTS = Counter("vigil_stream_listen_reconnects_total", "LISTEN connections (re)established")
