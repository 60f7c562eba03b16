"""The live stream's tunables, with production defaults; tests shrink the intervals."""
from __future__ import annotations

import msgspec


class StreamSettings(msgspec.Struct, frozen=True, kw_only=True):
    """How the live stream behaves. Every duration is in seconds unless named `_ms`."""

    heartbeat_s: float = 15.0          # a `heartbeat` message when nothing else was sent for this long
    ping_s: float = 20.0               # WebSocket ping interval; no pong within half of it closes the socket
    queue_size: int = 1000             # per-client bound; past it the client gets replay_overflow
    ring_size: int = 5000              # recent rows each hub process keeps in memory for catch-up
    horizon_rows: int = 5000           # a cursor further behind the head than this must reload from REST
    horizon_s: float = 7200.0          # … and so must one whose next row is older than this
    retry_min_ms: int = 1000           # replay_overflow's retry_after_ms is uniform in [min, max]:
    retry_max_ms: int = 15000          # a thousand consoles told at once then do not reload at once
    poll_s: float = 1.0                # the feed reads the outbox at least this often (NOTIFY can be lost)
    fetch_rows: int = 500              # rows per outbox read (feed and catch-up pages)
    batch_s: float = 0.02              # the feed reads the outbox at most this often, so a burst of commits
                                       # goes to each client as one socket write (adds at most this latency)
    ticket_ttl_s: int = 30
    access_review_s: float = 15.0      # how often open streams are checked against their users' current access
    overflow_grace_s: float = 5.0      # how long a client that overflowed may take to accept the notice
    close_timeout_s: float = 1.0       # how long a clean close may take before the connection is dropped
    telemetry_interval_s: float = 1.0  # per client: at most one robot.telemetry row per robot this often,
                                       # the latest (robots.stream_telemetry_interval_s); 0: every one
