"""Every NATS subject, stream and consumer name Vigil uses, in one place (docs/architecture.md §4)."""
from __future__ import annotations

import hashlib
import re

HUB_DOMAIN = "hub"

EVENTS_STREAM = "VIGIL_EVENTS"
COMMANDS_STREAM = "VIGIL_COMMANDS"

LANE_EVT = "evt"
LANE_ALARM = "alarm"
LANES = (LANE_EVT, LANE_ALARM)

# The hub consumes VIGIL_EVENTS through a fixed number of partitions per lane. The stream maps
# each edge deterministically to one partition (NATS subject transform with partition()), so all
# of one edge's events in one lane pass through one durable consumer, which one hub process holds
# at a time: that is what keeps each edge's events in seq order while several hubs share the load.
INGEST_PARTITIONS = 8

EDGE_ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")

# Stored subject after the stream's transform: vigil.edge.<edge>.<lane>.<partition> (a mapping
# function must fill a whole token, hence the bare number).
EVENTS_TRANSFORM_SRC = "vigil.edge.*.*"
EVENTS_TRANSFORM_DEST = f"vigil.edge.{{{{wildcard(1)}}}}.{{{{wildcard(2)}}}}.{{{{partition({INGEST_PARTITIONS},1)}}}}"


def valid_edge_id(edge: str) -> bool:
    """Edge ids are one NATS token: lower-case letters, digits and dashes."""
    return bool(EDGE_ID_RE.match(edge))


def edge_events(edge: str) -> str:
    """Where an edge publishes its normal-lane segments."""
    return f"vigil.edge.{edge}.{LANE_EVT}"


def edge_alarms(edge: str) -> str:
    """Where an edge publishes CRITICAL/HIGH segments, so they overtake a backlog."""
    return f"vigil.edge.{edge}.{LANE_ALARM}"


def edge_lane_subject(edge: str, lane: str) -> str:
    """The publish subject of one edge's lane."""
    return f"vigil.edge.{edge}.{lane}"


def edge_commands(edge: str) -> str:
    """Hub→edge commands for one edge: only the hub publishes here (the edge's leaf user is denied
    it), into VIGIL_COMMANDS."""
    return f"vigil.edge.{edge}.cmd"


def command_consumer(edge: str) -> str:
    """The durable pull consumer on VIGIL_COMMANDS the hub makes for one edge (its own subject only)."""
    return f"cmd-{edge}"


def command_fetch_subject(edge: str) -> str:
    """The JetStream API subject an edge pulls its commands with, across the leaf into the hub's
    domain: the one `$JS` API subject its permissions allow."""
    return f"$JS.{HUB_DOMAIN}.API.CONSUMER.MSG.NEXT.{COMMANDS_STREAM}.{command_consumer(edge)}"


def command_ack_subjects(edge: str) -> str:
    """Where an edge acknowledges its delivered commands: its own consumer's ack subjects only."""
    return f"$JS.ACK.{COMMANDS_STREAM}.{command_consumer(edge)}.>"


def edge_command_access(edge: str) -> tuple[str, ...]:
    """The subjects beyond its own an edge publishes to fetch and acknowledge its commands."""
    return (command_fetch_subject(edge), command_ack_subjects(edge))


def edge_notices(edge: str) -> str:
    """Hub→edge notices (core NATS, not stored): e.g. that the hub refuses this edge's segments."""
    return f"vigil.edge.{edge}.notice"


def edge_status(edge: str) -> str:
    """Edge→hub status reports (core NATS request, not stored): the edge's latest value, every
    30 s (shared.edge_status)."""
    return f"vigil.edge.{edge}.status"


#: What the hub subscribes to for every edge's status report.
EDGE_STATUS_SUBJECTS = "vigil.edge.*.status"


def parse_status_subject(subject: str) -> str | None:
    """The edge of a status-report subject, or None if it is not one."""
    parts = subject.split(".")
    if len(parts) != 4 or parts[:2] != ["vigil", "edge"] or parts[3] != "status" or not valid_edge_id(parts[2]):
        return None
    return parts[2]


def edge_subjects(edge: str) -> str:
    """Every subject of one edge: what its leaf connection may publish into the hub and receive."""
    return f"vigil.edge.{edge}.>"


def edge_inbox_prefix(edge: str) -> str:
    """The reply-inbox prefix of an edge's clients: PubAcks come back on it, through the edge's
    NATS permissions (the shared `_INBOX.` would let one edge read another's replies)."""
    return f"_INBOX_{edge}"


EVENTS_STREAM_SUBJECTS = [f"vigil.edge.*.{LANE_EVT}", f"vigil.edge.*.{LANE_ALARM}"]
COMMANDS_STREAM_SUBJECTS = ["vigil.edge.*.cmd"]


def ingest_filter(lane: str, partition: int) -> str:
    """The stored-subject filter of one ingest consumer."""
    return f"vigil.edge.*.{lane}.{partition}"


def ingest_consumer(lane: str, partition: int) -> str:
    """The durable name of one ingest consumer."""
    return f"ingest-{lane}-p{partition}"


def parse_stored_subject(subject: str) -> tuple[str, str] | None:
    """(edge, lane) from a stored events subject, or None if it is not one."""
    parts = subject.split(".")
    if len(parts) != 5 or parts[0] != "vigil" or parts[1] != "edge" or parts[3] not in LANES:
        return None
    return parts[2], parts[3]


# Header names of a signed segment.
H_EDGE = "Vigil-Edge"
H_KEY = "Vigil-Key"
H_SIG = "Vigil-Sig"
H_SEQ = "Vigil-Seq"
H_EPOCH = "Vigil-Epoch"  # the journal epoch id; the signed segment carries it too
H_MSG_ID = "Nats-Msg-Id"


def segment_msg_id(edge: str, first: int, last: int, payload: bytes) -> str:
    """JetStream de-duplication id of a segment: identical retries inside the window collapse.

    The payload digest is part of it because JetStream de-duplicates across the whole stream: with
    `<edge>:<first>-<last>` alone, anyone able to publish into the stream first with that id
    (another edge, a forged segment) would make the genuine segment a "duplicate" and it would
    be acknowledged and lost. A retry of the same rows has the same bytes (Ed25519 is
    deterministic), so it still collapses."""
    return f"{edge}:{first}-{last}:{hashlib.blake2b(payload, digest_size=8).hexdigest()}"
