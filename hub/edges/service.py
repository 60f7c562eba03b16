"""Enrolment as the hub runs it: the registry (PostgreSQL), the hub's CA and the NATS access file
behind one object the API calls. What it needs from the outside comes in as plain callables, so it
does not care how the CA or the NATS server is run."""
from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg
import msgspec

from hub.edges import registry
from hub.edges.enrolment import EnrolmentError, NewToken
from hub.nats_access import leaf_user_name
from shared.enrolment import EdgeSettings, EnrolRequest, EnrolResponse, LeafCredential
from shared.pki import PkiError
from shared.signing import b64url_decode


@dataclass
class EnrolmentService:
    """Issues tokens, redeems them and revokes edges; keeps the NATS access file in step."""

    hub_url: str  # the HTTPS URL boxes enrol against (printed with each token)
    leaf_url: str  # what an edge's nats-server dials, tls://host:port
    ca_pem: str
    fingerprint: str  # SHA-256 of the hub's HTTPS certificate, pinned by `edge enroll`
    settings: EdgeSettings
    sign_csr: Callable[[str, str], str]  # (csr pem, common name) -> client certificate pem
    hash_password: Callable[[str], str]  # bcrypt, as nats-server reads it
    access_changed: Callable[[], Awaitable[None]]  # rewrite the NATS users now; drops revoked leaves
    ttl: timedelta = timedelta(hours=24)

    def command(self, token: str) -> str:
        """The line an installer pastes on the box."""
        return f"python -m edge enroll --hub {self.hub_url} --token {token} --fingerprint {self.fingerprint}"

    async def create(self, conn: asyncpg.Connection, edge_id: str, object_id: int | None, actor: str,
                     now: datetime, ip: str | None, ttl: timedelta | None = None, probe: bool = False) -> NewToken:
        return await registry.create_edge(conn, edge_id, object_id, actor, now, ip, ttl or self.ttl, probe)

    async def redeem(self, conn: asyncpg.Connection, request: EnrolRequest, now: datetime,
                     ip: str | None) -> EnrolResponse:
        """Spend the token, record the key, issue the leaf credential and client certificate."""
        try:
            public_key = b64url_decode(request.public_key)
        except ValueError:
            raise EnrolmentError("public_key is not base64url") from None
        password = secrets.token_urlsafe(24)

        def issue_cert(edge_id: str) -> str:
            try:
                return self.sign_csr(request.csr_pem, leaf_user_name(edge_id))
            except PkiError as exc:
                raise EnrolmentError(f"csr_pem: {exc}") from None

        enrolled = await registry.redeem_token(conn, request.token, public_key, self.hash_password(password),
                                               request.hardware_id, now, ip, issue_cert)
        await self.access_changed()
        return EnrolResponse(edge_id=enrolled.edge_id, key_id=enrolled.key_id, hub_url=self.hub_url,
                             leaf=LeafCredential(self.leaf_url, leaf_user_name(enrolled.edge_id), password),
                             ca_pem=self.ca_pem, client_cert_pem=enrolled.client_cert_pem,
                             settings=msgspec.structs.replace(self.settings, probe=enrolled.probe))

    async def revoke(self, conn: asyncpg.Connection, edge_id: str, actor: str, now: datetime,
                     ip: str | None) -> bool:
        revoked = await registry.revoke_edge(conn, edge_id, actor, now, ip)
        await self.access_changed()
        return revoked
