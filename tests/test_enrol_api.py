"""Enrolment through the API and over real HTTPS (issue 10): an ADMIN creates an edge and gets its
token once; the box's own client (edge.enrolment) pins the hub's certificate, presents the token
and gets its credentials; a second use, an expired token, a wrong hub, plain HTTP and a bad CSR are
refused with a message that says which; revoke takes effect and is audited."""
from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import bcrypt
import msgspec
import pytest
from aiohttp import web
from cryptography import x509

from edge.enrolment import EnrolFailed, HubTrust, request_enrolment
from hub.api.server import build_http
from hub.edges.service import EnrolmentService
from hub.secret_box import SecretBox
from shared import pki
from shared.enrolment import EnrolRequest
from shared.process import free_port
from shared.signing import Signer, b64url
from support.api import as_role, json_of, start_client
from support.api import HeaderAuthenticator
from support.enrolment import SETTINGS, enrolment_service

@dataclass
class Hub:
    service: EnrolmentService
    https_url: str
    http_url: str
    ca: pki.CaPaths
    server: pki.CertPaths
    access_calls: list[int]


@pytest.fixture
async def hub(tmp_path: Path, db: asyncpg.Pool) -> AsyncIterator[Hub]:
    https_port, http_port = free_port(), free_port()
    setup = enrolment_service(tmp_path, f"https://127.0.0.1:{https_port}")
    service, ca, server, calls = setup.service, setup.ca, setup.server, setup.access_calls
    runner = web.AppRunner(build_http(db, HeaderAuthenticator(), [], SecretBox.generate(), enrolment=service))
    await runner.setup()
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(server.cert, server.key)
    await web.TCPSite(runner, "127.0.0.1", https_port, ssl_context=tls).start()
    await web.TCPSite(runner, "127.0.0.1", http_port).start()
    try:
        yield Hub(service, service.hub_url, f"http://127.0.0.1:{http_port}", ca, server, calls)
    finally:
        await runner.cleanup()


def _request(tmp_path: Path, token: str, signer: Signer | None = None) -> EnrolRequest:
    signer = signer or Signer.generate()
    csr = pki.make_csr(tmp_path / f"leaf-{signer.key_id}.key", "whatever-the-box-says")
    return EnrolRequest(token=token, public_key=b64url(signer.public_raw), csr_pem=csr, hardware_id="hw-42",
                        hostname="gw-1")


async def _create(hub: Hub, db: asyncpg.Pool, edge_id: str = "bank-1", **extra: object) -> dict:
    client = await start_client(build_http(db, HeaderAuthenticator(), [], SecretBox.generate(), enrolment=hub.service))
    try:
        resp = await client.post("/api/v1/edges", json={"edge_id": edge_id, **extra}, headers=as_role("ADMIN"))
        body = await json_of(resp)
        assert resp.status == 201, body
        return body  # type: ignore[no-any-return]
    finally:
        await client.close()


async def test_admin_creates_box_enrols_once_over_pinned_https(hub: Hub, db: asyncpg.Pool, tmp_path: Path) -> None:
    object_id = await db.fetchval("INSERT INTO objects (name, type) VALUES ('Bank', 'BANK') RETURNING id")
    created = await _create(hub, db, object_id=object_id, ttl_s=3600)
    assert created["token"].startswith("vet_") and created["fingerprint"] == hub.service.fingerprint
    assert created["command"] == (f"python -m edge enroll --hub {hub.https_url} --token {created['token']} "
                                  f"--fingerprint {created['fingerprint']}")
    # The token is shown once: nothing in the database holds it.
    dump = await db.fetchval("SELECT string_agg(t::text, ' ') FROM edge_enrolment_tokens t")
    assert created["token"] not in dump

    signer = Signer.generate()
    answer = await asyncio.to_thread(request_enrolment, hub.https_url, HubTrust(fingerprint=created["fingerprint"]),
                                     _request(tmp_path, created["token"], signer))
    assert answer.edge_id == "bank-1" and answer.key_id == signer.key_id
    assert answer.leaf.user == "edge-bank-1" and answer.leaf.url == "tls://127.0.0.1:7422" and len(answer.leaf.password) >= 24
    assert answer.settings == SETTINGS and answer.ca_pem == hub.ca.cert_pem()
    cert = x509.load_pem_x509_certificate(answer.client_cert_pem.encode())
    assert cert.subject.rfc4514_string() == "CN=edge-bank-1"  # the hub names it, not the box
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate(answer.ca_pem.encode()))
    row = await db.fetchrow("SELECT * FROM edges WHERE edge_id = 'bank-1'")
    assert row["object_id"] == object_id and row["hardware_id"] == "hw-42"
    assert bcrypt.checkpw(answer.leaf.password.encode(), row["leaf_password_hash"].encode())
    assert answer.leaf.password not in str(dict(row))
    assert hub.access_calls == [1]  # the NATS users were rewritten before the box was answered

    with pytest.raises(EnrolFailed, match=r"already used .*\(token_used\)"):
        await asyncio.to_thread(request_enrolment, hub.https_url, HubTrust(ca_file=hub.ca.cert),
                                _request(tmp_path, created["token"]))
    actions = [r["action"] for r in await db.fetch("SELECT action FROM audit_log ORDER BY id")]
    assert actions == ["edge.token.issued", "edge.enrolled", "edge.enrol.refused"]


async def test_expired_token_says_expired(hub: Hub, db: asyncpg.Pool, tmp_path: Path) -> None:
    created = await _create(hub, db, ttl_s=300)
    await db.execute("UPDATE edge_enrolment_tokens SET created_at = created_at - interval '1 day', "
                     "expires_at = expires_at - interval '1 day'")
    with pytest.raises(EnrolFailed, match=r"expired at .*\(token_expired\)"):
        await asyncio.to_thread(request_enrolment, hub.https_url, HubTrust(fingerprint=created["fingerprint"]),
                                _request(tmp_path, created["token"]))


async def test_wrong_hub_and_plain_http_get_nothing(hub: Hub, db: asyncpg.Pool, tmp_path: Path) -> None:
    created = await _create(hub, db)
    wrong = "SHA256:" + "0" * 64
    with pytest.raises(EnrolFailed, match="is not the hub you were given"):
        await asyncio.to_thread(request_enrolment, hub.https_url, HubTrust(fingerprint=wrong),
                                _request(tmp_path, created["token"]))
    other_ca = pki.ensure_ca(tmp_path / "other")
    with pytest.raises(EnrolFailed, match="not certified by"):
        await asyncio.to_thread(request_enrolment, hub.https_url, HubTrust(ca_file=other_ca.cert),
                                _request(tmp_path, created["token"]))
    with pytest.raises(EnrolFailed, match="https://"):
        await asyncio.to_thread(request_enrolment, hub.http_url, HubTrust(fingerprint=created["fingerprint"]),
                                _request(tmp_path, created["token"]))
    # Straight at the plain-HTTP listener: refused before the token is looked at.
    client = await start_client(build_http(db, HeaderAuthenticator(), [], SecretBox.generate(), enrolment=hub.service))
    try:
        resp = await client.post("/api/v1/enrol", json={"token": created["token"], "public_key": "A" * 43,
                                                        "csr_pem": "x" * 200})
        assert resp.status == 403 and (await json_of(resp))["error"]["code"] == "https_required"
    finally:
        await client.close()
    # None of it spent the token.
    assert await db.fetchval("SELECT used_at FROM edge_enrolment_tokens") is None


async def test_bad_csr_and_bad_key_keep_the_token(hub: Hub, db: asyncpg.Pool, tmp_path: Path) -> None:
    created = await _create(hub, db)
    trust = HubTrust(fingerprint=created["fingerprint"])
    good = _request(tmp_path, created["token"])
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rsa_csr = (x509.CertificateSigningRequestBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")]))
               .sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode())
    for bad, words in [(EnrolRequest(good.token, good.public_key, rsa_csr), "ECDSA P-256"),
                       (EnrolRequest(good.token, "!" * 43, good.csr_pem), "32 bytes, got 0"),
                       (EnrolRequest(good.token, b64url(b"x" * 31), good.csr_pem), "32 bytes")]:
        with pytest.raises(EnrolFailed, match=words):
            await asyncio.to_thread(request_enrolment, hub.https_url, trust, bad)
    assert await db.fetchval("SELECT used_at FROM edge_enrolment_tokens") is None
    answer = await asyncio.to_thread(request_enrolment, hub.https_url, trust, good)
    assert answer.edge_id == "bank-1"


async def test_create_and_revoke_rules_over_the_api(hub: Hub, db: asyncpg.Pool, tmp_path: Path) -> None:
    client = await start_client(build_http(db, HeaderAuthenticator(), [], SecretBox.generate(), enrolment=hub.service))
    try:
        for role in ("OPERATOR", "TECHNICIAN", "FIELD_WORKER"):
            resp = await client.post("/api/v1/edges", json={"edge_id": "x-1"}, headers=as_role(role))
            assert resp.status == 403
        resp = await client.post("/api/v1/edges", json={"edge_id": "Bad Id"}, headers=as_role("ADMIN"))
        assert resp.status == 400 and "lower-case" in (await json_of(resp))["error"]["message"]
        resp = await client.post("/api/v1/edges", json={"edge_id": "x-1", "object_id": 999}, headers=as_role("ADMIN"))
        assert resp.status == 422 and (await json_of(resp))["error"]["details"] == {"field": "object_id"}
        resp = await client.post("/api/v1/edges", json={"edge_id": "x-1", "ttl_s": 10}, headers=as_role("ADMIN"))
        assert resp.status == 422
        # A response carrying a token is never stored for replay.
        resp = await client.post("/api/v1/edges", json={"edge_id": "x-1"},
                                 headers={**as_role("ADMIN"), "Idempotency-Key": "k1"})
        assert resp.status == 400 and (await json_of(resp))["error"]["code"] == "idempotency_not_allowed"
        assert await db.fetchval("SELECT count(*) FROM edges") == 0

        created = await _create(hub, db, "x-1")
        await asyncio.to_thread(request_enrolment, hub.https_url, HubTrust(fingerprint=created["fingerprint"]),
                                _request(tmp_path, created["token"]))
        resp = await client.post("/api/v1/edges", json={"edge_id": "x-1"}, headers=as_role("MASTER"))
        assert resp.status == 409 and (await json_of(resp))["error"]["code"] == "edge_active"

        assert (await client.post("/api/v1/edges/x-1/revoke", headers=as_role("OPERATOR"))).status == 403
        resp = await client.post("/api/v1/edges/x-1/revoke", headers=as_role("ADMIN"))
        body = await json_of(resp)
        assert resp.status == 200 and body["revoked"] is True and body["revoked_at"]
        resp = await client.post("/api/v1/edges/x-1/revoke", headers=as_role("ADMIN"))
        assert resp.status == 200 and (await json_of(resp))["revoked"] is False
        resp = await client.post("/api/v1/edges/nope/revoke", headers=as_role("ADMIN"))
        assert resp.status == 404
        assert await db.fetchval("SELECT leaf_password_hash FROM edges WHERE edge_id = 'x-1'") is None
        assert len(hub.access_calls) >= 3  # enrol, revoke, revoke again: each rewrites the NATS users
        # Re-key: a new token for the revoked edge.
        again = await _create(hub, db, "x-1")
        answer = await asyncio.to_thread(request_enrolment, hub.https_url, HubTrust(fingerprint=again["fingerprint"]),
                                         _request(tmp_path, again["token"]))
        assert answer.edge_id == "x-1"
    finally:
        await client.close()


async def test_without_a_ca_the_routes_say_so(db: asyncpg.Pool) -> None:
    client = await start_client(build_http(db, HeaderAuthenticator(), [], SecretBox.generate()))
    try:
        resp = await client.post("/api/v1/edges", json={"edge_id": "x-1"}, headers=as_role("ADMIN"))
        assert resp.status == 503 and (await json_of(resp))["error"]["code"] == "enrolment_unavailable"
    finally:
        await client.close()


async def test_an_edge_created_as_the_probe_is_told_so_at_enrolment(hub: Hub, db: asyncpg.Pool, tmp_path: Path) -> None:
    created = await _create(hub, db, edge_id="probe-1", probe=True)
    answer = await asyncio.to_thread(request_enrolment, hub.https_url, HubTrust(fingerprint=created["fingerprint"]),
                                     _request(tmp_path, created["token"]))
    assert answer.settings.probe is True and answer.settings == msgspec.structs.replace(SETTINGS, probe=True)
    assert await db.fetchval("SELECT probe FROM edges WHERE edge_id = 'probe-1'") is True
    ordinary = await _create(hub, db, edge_id="bank-2")
    answer = await asyncio.to_thread(request_enrolment, hub.https_url, HubTrust(fingerprint=ordinary["fingerprint"]),
                                     _request(tmp_path, ordinary["token"]))
    assert answer.settings.probe is False
