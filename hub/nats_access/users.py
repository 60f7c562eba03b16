"""Who may connect to the hub's NATS server, as the include file the server reads
(docs/architecture.md §4.1).

Three kinds of user: the hub's own service user (any subject, client connections only), the system
user (the hub reloads this file and drops revoked leaf nodes with it), and one user per enrolled
edge (`edge-<edge id>`, leaf-node connections only) that may publish into the hub only its own
subjects and inbox and receives only those: its PubAcks, notices and commands. No `$JS.>` API, no
shared `_INBOX.>`: an edge cannot read, purge or acknowledge anything of the hub's streams, nor see
another edge's traffic.

Beside them, each edge has an account of its own for its journal's replica (`REPLICA-<edge id>`,
JetStream with a quota and one stream: the bucket Litestream writes), with one leaf-only user
(`replica-<edge id>`, the edge's leaf password). An account is a wall: that user sees nothing of
the hub's account nor of another edge's replica, and its inbox replies are its own.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from shared.nats_server import (HUB_ACCOUNT, SYSTEM_ACCOUNT, JetStreamLimits, NatsConfigError, NatsUser,
                                is_password_hash, render_account, replica_account, replica_leaf_user)
from shared.private_file import write_private_file
from shared.subjects import edge_command_access, edge_commands, edge_inbox_prefix, edge_subjects, valid_edge_id


def leaf_user_name(edge_id: str) -> str:
    """The NATS user an edge's leaf connection authenticates as."""
    return f"edge-{edge_id}"


@dataclass(frozen=True)
class EdgeLeafUser:
    """An edge allowed a leaf connection, with the bcrypt hash of its leaf password (what the hub
    keeps; the password itself went to the box once)."""

    edge_id: str
    password_bcrypt: str

    def __post_init__(self) -> None:
        if not valid_edge_id(self.edge_id):
            raise NatsConfigError(f"edge id {self.edge_id!r} is not a valid edge id")
        if not is_password_hash(self.password_bcrypt):
            raise NatsConfigError(f"edge {self.edge_id}: the leaf password must be given as its bcrypt hash")

    def nats_user(self) -> NatsUser:
        own = (edge_subjects(self.edge_id), f"{edge_inbox_prefix(self.edge_id)}.>")
        # Beyond its own subjects: pulling and acknowledging its own commands. Publishing a
        # command is the hub's alone, so the edge's own command subject is carved out.
        return NatsUser(leaf_user_name(self.edge_id), self.password_bcrypt,
                        publish=(*own, *edge_command_access(self.edge_id)), subscribe=own,
                        connection_types=("LEAFNODE",), publish_deny=(edge_commands(self.edge_id),))

    def replica_user(self) -> NatsUser:
        """The edge's replica leaf user, alone in its account (so no permissions beyond it)."""
        return NatsUser(replica_leaf_user(self.edge_id), self.password_bcrypt, connection_types=("LEAFNODE",))

    def leaf_users(self) -> dict[str, str]:
        """Every leaf user name of this edge with its password hash."""
        return {leaf_user_name(self.edge_id): self.password_bcrypt, replica_leaf_user(self.edge_id): self.password_bcrypt}


def edge_leaf_users(rows: Iterable[tuple[str, str]]) -> list[EdgeLeafUser]:
    """(edge id, bcrypt hash) pairs, as the edges registry lists them, as leaf users."""
    return [EdgeLeafUser(edge_id, password_bcrypt) for edge_id, password_bcrypt in rows]


#: What one edge's replica account may keep on the hub's disk by default.
DEFAULT_REPLICA_MAX_BYTES = 1024 ** 3


def render_users(hub_user: str, hub_password_hash: str, system_user: str, system_password_hash: str,
                 edges: Iterable[EdgeLeafUser], replica_max_bytes: int = DEFAULT_REPLICA_MAX_BYTES) -> str:
    """The include file of the hub's server: its two accounts, every user, and each edge's replica
    account (at most `replica_max_bytes` of file storage). Refuses an edge listed twice."""
    ordered = sorted(edges, key=lambda e: e.edge_id)
    edge_users = [e.nats_user() for e in ordered]
    hub = NatsUser(hub_user, hub_password_hash, connection_types=("STANDARD",))
    system = NatsUser(system_user, system_password_hash, connection_types=("STANDARD",))
    quota = JetStreamLimits(max_file_bytes=replica_max_bytes, max_streams=1)
    replicas = [line for e in ordered
                for line in render_account(replica_account(e.edge_id), [e.replica_user()], jetstream=quota)]
    return "\n".join([
        "# Written by the hub (hub.nats_access): edits are lost at the next enrolment or revocation.",
        "accounts {",
        *render_account(HUB_ACCOUNT, [hub, *edge_users], jetstream=True),
        *render_account(SYSTEM_ACCOUNT, [system], jetstream=False),
        *replicas,
        "}",
        "",
    ])


def write_users_file(path: Path, text: str) -> None:
    """Replace the include file atomically (0600): the server never reads half of it."""
    write_private_file(path, text)
