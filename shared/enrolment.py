"""The enrolment exchange between a box and the hub (`POST /api/v1/enrol`, over HTTPS only).

The box sends the one-time token, its Ed25519 public key (the private key never leaves it) and a
certificate request for its TLS key; the hub answers with everything the box needs to join:
its edge id, the NATS leaf credential, the hub CA, its client certificate and the settings the
hub wants its edges to run with.
"""
from __future__ import annotations

from typing import Annotated

import msgspec

PATH = "/api/v1/enrol"


class EnrolRequest(msgspec.Struct, forbid_unknown_fields=True):
    token: Annotated[str, msgspec.Meta(min_length=10, max_length=200)]
    public_key: Annotated[str, msgspec.Meta(min_length=40, max_length=60)]  # base64url, 32 bytes
    csr_pem: Annotated[str, msgspec.Meta(min_length=100, max_length=8192)]
    hardware_id: Annotated[str, msgspec.Meta(max_length=128)] = ""
    hostname: Annotated[str, msgspec.Meta(max_length=255)] = ""


class LeafCredential(msgspec.Struct):
    """How the box's nats-server joins the hub: TLS with its client certificate, then this user."""

    url: str  # tls://host:port
    user: str
    password: str


class EdgeSettings(msgspec.Struct):
    """The journal and forwarding settings the hub gives its edges (the box may tune them later)."""

    journal_max_bytes: int
    journal_retention_hours: float
    forwarder_window: int
    segment_max_events: int
    probe: bool = False  # enrolled as the synthetic probe: the agent sends probe.tick (edge/probe.py)


class EnrolResponse(msgspec.Struct):
    edge_id: str
    key_id: str
    hub_url: str
    leaf: LeafCredential
    ca_pem: str
    client_cert_pem: str
    settings: EdgeSettings
