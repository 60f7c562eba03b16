"""`python -m edge enroll`: join this box to a hub with the one-time token an ADMIN created.

Step by step, each printed as it happens so an installer on a ladder sees where it stopped:
make the box's Ed25519 key (it never leaves the box) and a TLS key with its certificate request,
present them with the token to the hub over HTTPS (the hub's certificate pinned by the
fingerprint printed with the token, or verified against a CA file), then write what the hub sent:
the agent's config, the leaf nats-server's config with its credentials, the hub CA and the
client certificate, the first site admin account, and the service units.

Nothing is written in the config folder before the hub has said yes, so a refused token leaves the
box as it was (the keys made for the attempt are reused by the next one).
"""
from __future__ import annotations

import hashlib
import http.client
import json
import ssl
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import msgspec

from shared import enrolment as wire

TIMEOUT_S = 20.0


class EnrolFailed(Exception):
    """Enrolment stopped; the message says what went wrong and what to do."""


@dataclass(frozen=True)
class HubTrust:
    """How the box checks it talks to the right hub: a pinned certificate fingerprint
    (`SHA256:<hex>`, printed with the token) or the hub's CA certificate file."""

    fingerprint: str | None = None
    ca_file: Path | None = None

    def __post_init__(self) -> None:
        if (self.fingerprint is None) == (self.ca_file is None):
            raise EnrolFailed("give either --fingerprint (printed with the token) or --ca-file, to check the hub")
        if self.fingerprint is not None and not _valid_fingerprint(self.fingerprint):
            raise EnrolFailed(f"--fingerprint {self.fingerprint!r} is not SHA256:<64 hex digits>")


def _valid_fingerprint(text: str) -> bool:
    digest = text.removeprefix("SHA256:").replace(":", "").lower()
    return text.startswith("SHA256:") and len(digest) == 64 and all(c in "0123456789abcdef" for c in digest)


def _normal_fingerprint(text: str) -> str:
    return "SHA256:" + text.removeprefix("SHA256:").replace(":", "").lower()


def _connection(url: str, trust: HubTrust) -> http.client.HTTPSConnection:
    """An HTTPS connection to the hub, the hub's identity checked before a byte is sent."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise EnrolFailed(f"--hub {url!r} must be the hub's https:// URL (enrolment never runs over plain HTTP)")
    if trust.ca_file is not None:
        try:
            context = ssl.create_default_context(cafile=str(trust.ca_file))
        except (OSError, ssl.SSLError) as exc:
            raise EnrolFailed(f"cannot read the hub CA file {trust.ca_file}: {exc}") from None
    else:
        # Pinned: the certificate's own digest is the check, so the chain and name are not.
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    conn = http.client.HTTPSConnection(parts.hostname, parts.port or 443, timeout=TIMEOUT_S, context=context)
    try:
        conn.connect()
    except ssl.SSLCertVerificationError as exc:
        raise EnrolFailed(f"the hub at {url} is not certified by {trust.ca_file}: {exc.verify_message}") from None
    except (OSError, ssl.SSLError) as exc:
        raise EnrolFailed(f"cannot reach the hub at {url}: {exc}; check the address, the port and the WAN link") from None
    if trust.fingerprint is not None:
        der = conn.sock.getpeercert(binary_form=True) or b""
        seen = "SHA256:" + hashlib.sha256(der).hexdigest()
        if seen != _normal_fingerprint(trust.fingerprint):
            conn.close()
            raise EnrolFailed(f"the server at {url} is not the hub you were given: its certificate is {seen}, "
                              f"expected {trust.fingerprint}. Stop and check the address with the hub admin.")
    return conn


def request_enrolment(hub_url: str, trust: HubTrust, request: wire.EnrolRequest) -> wire.EnrolResponse:
    """Present the token and keys to the hub; the hub's answer, or EnrolFailed with its reason."""
    conn = _connection(hub_url, trust)
    try:
        path = urllib.parse.urlsplit(hub_url).path.rstrip("/") + wire.PATH
        conn.request("POST", path, body=msgspec.json.encode(request), headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        body = response.read()
    except (OSError, http.client.HTTPException) as exc:
        raise EnrolFailed(f"the hub at {hub_url} stopped answering: {exc}") from None
    finally:
        conn.close()
    if response.status != 200:
        try:
            error = json.loads(body)["error"]
            reason = f"{error['message']} ({error['code']})"
        except (ValueError, KeyError, TypeError):
            reason = f"HTTP {response.status} {response.reason}"
        raise EnrolFailed(f"the hub refused: {reason}")
    try:
        return msgspec.json.decode(body, type=wire.EnrolResponse)
    except msgspec.ValidationError as exc:
        raise EnrolFailed(f"the hub's answer is not an enrolment: {exc}") from None
