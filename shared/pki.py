"""The hub's small certificate authority (docs/architecture.md §4.1).

The hub makes one CA (ECDSA P-256) the first time it needs it. The CA signs the hub's server
certificate (the leaf-node listener, and the hub's HTTPS), and a client certificate for every
edge from the CSR the edge sends at enrolment: the edge's private key never leaves the box. A
leaf node must present a certificate of this CA, so a stolen leaf password alone does not open
the hub's NATS.

Private keys are 0600 files (shared/private_file.py); certificates are public.
"""
from __future__ import annotations

import datetime
import hashlib
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from shared.private_file import create_private_file, read_private_file

CA_DAYS = 3650
SERVER_DAYS = 397  # what browsers accept for a server certificate
CLIENT_DAYS = 825
# A server certificate this close to its end is issued again at the next start.
RENEW_BEFORE = datetime.timedelta(days=30)
# Backdated so a peer whose clock is a little behind does not see a certificate from the future.
_BACKDATE = datetime.timedelta(minutes=5)


class PkiError(Exception):
    """A key, certificate or CSR cannot be used; the message says which and why."""


@dataclass(frozen=True)
class CaPaths:
    """Where the CA's key (0600) and certificate are."""

    key: Path
    cert: Path

    def cert_pem(self) -> str:
        """The CA certificate, as an edge needs it to trust the hub."""
        return self.cert.read_text()


@dataclass(frozen=True)
class CertPaths:
    """A private key (0600) and its certificate."""

    key: Path
    cert: Path


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _load_key(path: Path) -> ec.EllipticCurvePrivateKey:
    pem = read_private_file(path, "private key", PkiError)
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except ValueError as exc:
        raise PkiError(f"private key {path} cannot be read: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise PkiError(f"private key {path} is not an ECDSA key")
    return key


def _ensure_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """The key at `path`, made (0600) when there is none."""
    if not path.exists():
        create_private_file(path, _key_pem(_new_key()))
    return _load_key(path)


def _write_public(path: Path, text: str) -> None:
    """Replace a public file atomically: a reader sees the old certificate or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _load_cert(pem: bytes | str, what: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(pem.encode() if isinstance(pem, str) else pem)
    except ValueError as exc:
        raise PkiError(f"{what} is not a PEM certificate: {exc}") from None


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    """ECDSA signs (TLS handshakes); only the CA signs certificates."""
    return x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                         data_encipherment=False, key_agreement=False, key_cert_sign=ca, crl_sign=ca,
                         encipher_only=False, decipher_only=False)


def _ski(key: ec.EllipticCurvePublicKey) -> x509.SubjectKeyIdentifier:
    return x509.SubjectKeyIdentifier.from_public_key(key)


def ensure_ca(directory: Path, common_name: str = "Vigil hub CA") -> CaPaths:
    """The hub's CA in `directory` (`ca.key` 0600, `ca.pem`): made once, reused after.

    Refuses a `ca.pem` that does not belong to `ca.key`, rather than signing certificates no
    edge would trust."""
    paths = CaPaths(directory / "ca.key", directory / "ca.pem")
    key = _ensure_key(paths.key)
    if paths.cert.exists():
        cert = _load_cert(paths.cert.read_bytes(), str(paths.cert))
        if cert.public_key() != key.public_key():
            raise PkiError(f"{paths.cert} does not belong to {paths.key}: restore the pair, or move both away "
                           "to make a new CA (every edge must then be enrolled again)")
        return paths
    now = _now()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(_ski(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_public(paths.cert, cert.public_bytes(serialization.Encoding.PEM).decode())
    return paths


def _signed_by(cert: x509.Certificate, ca_cert: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _server_cert_current(cert_path: Path, key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate,
                         sans: set[x509.GeneralName]) -> bool:
    """The certificate at `cert_path` is this key's, signed by this CA, for exactly these names,
    and not about to expire."""
    if not cert_path.exists():
        return False
    try:
        cert = _load_cert(cert_path.read_bytes(), str(cert_path))
        names = set(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except (PkiError, x509.ExtensionNotFound):
        return False
    return (cert.public_key() == key.public_key() and _signed_by(cert, ca_cert) and names == sans
            and cert.not_valid_after_utc - RENEW_BEFORE > _now())


def ensure_server_cert(directory: Path, ca: CaPaths, hostnames: list[str], ips: list[str]) -> CertPaths:
    """The hub's server certificate in `directory` (`server.key` 0600, `server.pem`) for these
    host names and IP addresses, signed by `ca`.

    Issued again (same key) when the names change, when the CA changed, or within 30 days of its
    end; so a restart is all a renewal takes. Delete `server.key` to rotate the key too."""
    if not hostnames and not ips:
        raise PkiError("a server certificate needs at least one host name or IP address")
    try:
        addresses = [ipaddress.ip_address(ip) for ip in ips]
    except ValueError as exc:
        raise PkiError(f"not an IP address: {exc}") from None
    sans: set[x509.GeneralName] = {x509.DNSName(h) for h in hostnames} | {x509.IPAddress(a) for a in addresses}
    paths = CertPaths(directory / "server.key", directory / "server.pem")
    key = _ensure_key(paths.key)
    ca_key = _load_key(ca.key)
    ca_cert = _load_cert(ca.cert.read_bytes(), str(ca.cert))
    if _server_cert_current(paths.cert, key, ca_cert, sans):
        return paths
    now = _now()
    cn = hostnames[0] if hostnames else ips[0]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + datetime.timedelta(days=SERVER_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(sorted(sans, key=str)), critical=False)
        .add_extension(_ski(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    _write_public(paths.cert, cert.public_bytes(serialization.Encoding.PEM).decode())
    return paths


def make_csr(key_path: Path, common_name: str) -> str:
    """A certificate signing request (PEM) for the key at `key_path`, made (0600) if absent: the
    edge's side of enrolment. The hub decides the name it signs anyway."""
    key = _ensure_key(key_path)
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def sign_csr(ca: CaPaths, csr_pem: str, common_name: str, days: int = CLIENT_DAYS) -> str:
    """A client certificate (PEM) for the CSR's key, signed by `ca`: the hub's side of enrolment.

    The subject is `common_name` whatever the CSR asked for, the only use is TLS client
    authentication, and nothing else the CSR asks (extensions, a CA bit) is copied. Refuses a CSR
    that is not self-signed correctly (so whoever sent it holds the key) or whose key is not
    ECDSA P-256."""
    if not 1 <= days <= CLIENT_DAYS:
        raise PkiError(f"a client certificate is valid 1..{CLIENT_DAYS} days, not {days}")
    try:
        csr = x509.load_pem_x509_csr(csr_pem.encode())
    except ValueError as exc:
        raise PkiError(f"not a PEM certificate signing request: {exc}") from None
    if not csr.is_signature_valid:
        raise PkiError("the certificate signing request's signature is not valid")
    public = csr.public_key()
    if not (isinstance(public, ec.EllipticCurvePublicKey) and isinstance(public.curve, ec.SECP256R1)):
        raise PkiError("the certificate signing request's key must be ECDSA P-256")
    ca_key = _load_key(ca.key)
    ca_cert = _load_cert(ca.cert.read_bytes(), str(ca.cert))
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_cert.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(min(now + datetime.timedelta(days=days), ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(_ski(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def fingerprint(cert_pem: str) -> str:
    """`SHA256:<hex>` of the certificate's DER bytes: what an installer compares by eye."""
    cert = _load_cert(cert_pem, "certificate")
    return "SHA256:" + hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()
