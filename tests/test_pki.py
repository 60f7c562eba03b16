"""The hub's small CA (shared/pki.py): made once, server certificates issued again when they must
be, client certificates only for what the hub decides."""
from __future__ import annotations

import datetime
import hashlib
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from shared import pki


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _sans(cert: x509.Certificate) -> set[str]:
    return {str(n.value) for n in cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value}


def test_the_ca_is_made_once_with_a_private_key_and_reused(tmp_path: Path) -> None:
    ca = pki.ensure_ca(tmp_path / "ca")
    assert ca.key.stat().st_mode & 0o777 == 0o600
    first = ca.cert.read_bytes()
    assert pki.ensure_ca(tmp_path / "ca").cert.read_bytes() == first
    cert = _cert(ca.cert)
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)


def test_a_ca_certificate_of_another_key_is_refused(tmp_path: Path) -> None:
    pki.ensure_ca(tmp_path / "a")
    other = pki.ensure_ca(tmp_path / "b")
    (tmp_path / "a" / "ca.pem").write_bytes(other.cert.read_bytes())
    with pytest.raises(pki.PkiError, match="does not belong to"):
        pki.ensure_ca(tmp_path / "a")


def test_a_loosened_ca_key_is_refused(tmp_path: Path) -> None:
    ca = pki.ensure_ca(tmp_path / "ca")
    ca.key.chmod(0o644)
    with pytest.raises(pki.PkiError, match="must be 600"):
        pki.ensure_ca(tmp_path / "ca")


def test_the_server_certificate_is_reissued_only_when_it_must_be(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ca = pki.ensure_ca(tmp_path / "ca")
    server = pki.ensure_server_cert(tmp_path / "tls", ca, ["hub.example", "localhost"], ["127.0.0.1"])
    cert = _cert(server.cert)
    assert _sans(cert) == {"hub.example", "localhost", "127.0.0.1"}
    assert cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value == x509.ExtendedKeyUsage(
        [ExtendedKeyUsageOID.SERVER_AUTH])
    cert.verify_directly_issued_by(_cert(ca.cert))
    first = server.cert.read_bytes()

    assert pki.ensure_server_cert(tmp_path / "tls", ca, ["localhost", "hub.example"], ["127.0.0.1"]).cert.read_bytes() == first

    renamed = pki.ensure_server_cert(tmp_path / "tls", ca, ["hub.example"], ["127.0.0.1", "10.0.0.7"])
    assert _sans(_cert(renamed.cert)) == {"hub.example", "127.0.0.1", "10.0.0.7"}
    assert _cert(renamed.cert).public_key() == cert.public_key()  # same key: a renewal, not a rotation

    new_ca = pki.ensure_ca(tmp_path / "ca2")
    moved = pki.ensure_server_cert(tmp_path / "tls", new_ca, ["hub.example"], ["127.0.0.1", "10.0.0.7"])
    _cert(moved.cert).verify_directly_issued_by(_cert(new_ca.cert))

    # A certificate inside the renewal window is issued again at the next call.
    monkeypatch.setattr(pki, "SERVER_DAYS", 10)
    short = _cert(pki.ensure_server_cert(tmp_path / "tls3", ca, ["h"], []).cert)
    monkeypatch.undo()
    renewed = _cert(pki.ensure_server_cert(tmp_path / "tls3", ca, ["h"], []).cert)
    assert renewed.not_valid_after_utc - short.not_valid_after_utc > datetime.timedelta(days=300)


def test_a_server_certificate_needs_a_name_and_real_addresses(tmp_path: Path) -> None:
    ca = pki.ensure_ca(tmp_path / "ca")
    with pytest.raises(pki.PkiError, match="at least one"):
        pki.ensure_server_cert(tmp_path / "tls", ca, [], [])
    with pytest.raises(pki.PkiError, match="not an IP address"):
        pki.ensure_server_cert(tmp_path / "tls", ca, ["h"], ["300.1.1.1"])


def test_a_csr_is_signed_for_the_name_the_hub_chooses_and_for_client_auth_only(tmp_path: Path) -> None:
    ca = pki.ensure_ca(tmp_path / "ca")
    key_path = tmp_path / "edge" / "leaf.key"
    csr = pki.make_csr(key_path, "edge-somebody-else")
    assert key_path.stat().st_mode & 0o777 == 0o600
    key_before = key_path.read_bytes()
    pki.make_csr(key_path, "again")
    assert key_path.read_bytes() == key_before  # the key is made once

    pem = pki.sign_csr(ca, csr, "edge-site-1", days=30)
    cert = x509.load_pem_x509_certificate(pem.encode())
    cert.verify_directly_issued_by(_cert(ca.cert))
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "edge-site-1"
    assert cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value == x509.ExtendedKeyUsage(
        [ExtendedKeyUsageOID.CLIENT_AUTH])
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert datetime.timedelta(days=29) < cert.not_valid_after_utc - cert.not_valid_before_utc <= datetime.timedelta(days=31)
    assert pki.fingerprint(pem) == "SHA256:" + hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def _csr(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> str:
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")]))
           .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
           .sign(key, hashes.SHA256()))
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def test_csrs_the_hub_will_not_sign(tmp_path: Path) -> None:
    ca = pki.ensure_ca(tmp_path / "ca")
    with pytest.raises(pki.PkiError, match="not a PEM certificate signing request"):
        pki.sign_csr(ca, "hello", "edge-a")
    with pytest.raises(pki.PkiError, match="must be ECDSA P-256"):
        pki.sign_csr(ca, _csr(rsa.generate_private_key(65537, 2048)), "edge-a")
    with pytest.raises(pki.PkiError, match="must be ECDSA P-256"):
        pki.sign_csr(ca, _csr(ec.generate_private_key(ec.SECP384R1())), "edge-a")
    with pytest.raises(pki.PkiError, match="days"):
        pki.sign_csr(ca, pki.make_csr(tmp_path / "k", "x"), "edge-a", days=0)

    # A CSR whose request was changed after it was signed: whoever sent it does not hold the key.
    good = x509.load_pem_x509_csr(pki.make_csr(tmp_path / "k", "edge-a").encode())
    der = bytearray(good.public_bytes(serialization.Encoding.DER))
    der[der.index(b"edge-a")] ^= 0x01
    forged = x509.load_der_x509_csr(bytes(der)).public_bytes(serialization.Encoding.PEM).decode()
    with pytest.raises(pki.PkiError, match="signature is not valid"):
        pki.sign_csr(ca, forged, "edge-a")

    # The CSR asked to be a CA: the certificate is not one anyway.
    cert = x509.load_pem_x509_certificate(pki.sign_csr(ca, _csr(ec.generate_private_key(ec.SECP256R1())), "edge-a").encode())
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
