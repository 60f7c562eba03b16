"""A real EnrolmentService for API tests: a CA in a temp folder, a server certificate, bcrypt at
its lowest cost; `access_calls` counts how often the NATS users would have been rewritten."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import bcrypt

from hub.edges.service import EnrolmentService
from shared import pki
from shared.enrolment import EdgeSettings

SETTINGS = EdgeSettings(journal_max_bytes=256 * 1024 * 1024, journal_retention_hours=48.0, forwarder_window=8,
                        segment_max_events=256)


@dataclass
class EnrolmentSetup:
    ca: pki.CaPaths
    server: pki.CertPaths
    service: EnrolmentService
    access_calls: list[int] = field(default_factory=list)


def enrolment_service(root: Path, hub_url: str, leaf_url: str = "tls://127.0.0.1:7422") -> EnrolmentSetup:
    ca = pki.ensure_ca(root / "pki")
    server = pki.ensure_server_cert(root / "pki", ca, ["localhost"], ["127.0.0.1"])
    calls: list[int] = []

    async def access_changed() -> None:
        calls.append(1)

    service = EnrolmentService(
        hub_url=hub_url, leaf_url=leaf_url, ca_pem=ca.cert_pem(), fingerprint=pki.fingerprint(server.cert.read_text()),
        settings=SETTINGS, sign_csr=lambda csr, cn: pki.sign_csr(ca, csr, cn),
        hash_password=lambda p: bcrypt.hashpw(p.encode(), bcrypt.gensalt(4)).decode(), access_changed=access_changed)
    return EnrolmentSetup(ca, server, service, calls)
