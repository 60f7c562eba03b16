"""The robot streams on the box's own JetStream (docs/architecture.md §7 "Robots"), never the
hub's: `nc.jetstream()` without a domain asks the server the agent is connected to, and the box's
server answers for its own domain (the agent's user may call `$JS.API.>` there, while
`$JS.hub.API.>` is the hub's and stays closed to it).

- `ROBOT_EVENTS` (file): everything a robot says but telemetry, kept while the agent is away
  (bounded by age and bytes); the durable pull consumer `agent-robots`, explicit ack: the agent
  acknowledges a message only once what it needs from it is journaled.
- `ROBOT_TELEMETRY` (memory, one message per robot): the latest sample wins at the server, so a
  robot sending thousands per second costs the agent one message per fetch at most; its consumer
  `agent-telemetry` acknowledges a whole fetched batch with its last message (ack policy ALL).

`ensure_streams` creates or updates both, idempotently: at start, and whenever a loop finds its
consumer gone (the box's server restarted: the memory stream is lost with it).
"""
from __future__ import annotations

import nats.js.errors
from nats.aio.client import Client as NatsClient
from nats.js.api import (AckPolicy, ConsumerConfig, DeliverPolicy, DiscardPolicy, RetentionPolicy, StorageType,
                         StreamConfig)

from shared import robots as wire

#: A telemetry sample older than this is not worth keeping for a robot that went silent.
TELEMETRY_MAX_AGE_S = 60.0
#: How long a fetched robot message may stay unacknowledged before the server delivers it again.
EVENTS_ACK_WAIT_S = 30.0
TELEMETRY_ACK_WAIT_S = 10.0


def events_stream_config(max_age_s: float, max_bytes: int) -> StreamConfig:
    """ROBOT_EVENTS: file storage, the oldest messages go first past the age or size bound."""
    return StreamConfig(name=wire.EVENTS_STREAM, subjects=list(wire.EVENTS_STREAM_SUBJECTS),
                        retention=RetentionPolicy.LIMITS, storage=StorageType.FILE, discard=DiscardPolicy.OLD,
                        max_age=max_age_s, max_bytes=max_bytes, num_replicas=1)


def telemetry_stream_config() -> StreamConfig:
    """ROBOT_TELEMETRY: memory storage, one message per subject (per robot): latest wins."""
    return StreamConfig(name=wire.TELEMETRY_STREAM, subjects=list(wire.TELEMETRY_STREAM_SUBJECTS),
                        retention=RetentionPolicy.LIMITS, storage=StorageType.MEMORY, discard=DiscardPolicy.OLD,
                        max_msgs_per_subject=1, max_age=TELEMETRY_MAX_AGE_S, num_replicas=1)


def events_consumer_config() -> ConsumerConfig:
    return ConsumerConfig(durable_name=wire.EVENTS_CONSUMER, ack_policy=AckPolicy.EXPLICIT,
                          deliver_policy=DeliverPolicy.ALL, ack_wait=EVENTS_ACK_WAIT_S, max_deliver=-1)


def telemetry_consumer_config() -> ConsumerConfig:
    return ConsumerConfig(durable_name=wire.TELEMETRY_CONSUMER, ack_policy=AckPolicy.ALL,
                          deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
                          filter_subject=wire.TELEMETRY_STREAM_SUBJECTS[0], ack_wait=TELEMETRY_ACK_WAIT_S,
                          max_deliver=1)


async def _ensure_stream(nc: NatsClient, config: StreamConfig) -> None:
    js = nc.jetstream()
    try:
        await js.add_stream(config)
    except nats.js.errors.BadRequestError:  # it exists with other settings: take ours
        await js.update_stream(config)


async def ensure_streams(nc: NatsClient, max_age_s: float, max_bytes: int) -> None:
    """Create or update both robot streams and their consumers on the box's own JetStream
    (idempotent). Raises nats errors when the server does not answer."""
    js = nc.jetstream()
    await _ensure_stream(nc, events_stream_config(max_age_s, max_bytes))
    await _ensure_stream(nc, telemetry_stream_config())
    await js.add_consumer(wire.EVENTS_STREAM, events_consumer_config())
    await js.add_consumer(wire.TELEMETRY_STREAM, telemetry_consumer_config())
