"""Ed25519 keys, key ids and segment signatures.

The private key never leaves the edge box: it lives in a key file readable by its owner only.
"""
from __future__ import annotations

import base64
import hashlib
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from shared.private_file import create_private_file, read_private_file

class KeyFileError(Exception):
    """A key file is missing, unreadable, malformed or too widely readable."""


def b64url(data: bytes) -> str:
    """Unpadded base64url, as the headers carry it."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Inverse of b64url; raises ValueError on malformed input."""
    pad = "=" * (-len(text) % 4)
    try:
        return base64.urlsafe_b64decode(text + pad)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"not base64url: {text[:40]!r}") from exc


def public_key_bytes(key: Ed25519PublicKey) -> bytes:
    """The raw 32-byte public key."""
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(public_raw: bytes) -> str:
    """A short, stable id for a public key: base64url of the first 12 bytes of its SHA-256."""
    return b64url(hashlib.sha256(public_raw).digest()[:12])


class Signer:
    """Signs segment bytes with one edge's private key."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        self.public_raw = public_key_bytes(private_key.public_key())
        self.key_id = key_id(self.public_raw)

    @classmethod
    def generate(cls) -> "Signer":
        """A signer with a fresh key pair (tests and benchmarks)."""
        return cls(Ed25519PrivateKey.generate())

    def sign(self, data: bytes) -> bytes:
        """The 64-byte Ed25519 signature over exactly `data`."""
        return self._key.sign(data)

    def private_raw(self) -> bytes:
        """The raw 32-byte private key, only for writing the key file."""
        return self._key.private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
        )


def verify(public_raw: bytes, signature: bytes, data: bytes) -> bool:
    """True when `signature` is a valid Ed25519 signature of `data` under `public_raw`."""
    try:
        Ed25519PublicKey.from_public_bytes(public_raw).verify(signature, data)
    except (InvalidSignature, ValueError):
        return False
    return True


class KeyFileExists(KeyFileError):
    """A key file is already there: creating one would replace the key the hub knows."""


def create_key_file(path: Path) -> Signer:
    """Create a new key pair and write its private key (base64url, one line) to a new 0600 file.

    This is the box's enrolment step, never a side effect of starting: a box that made itself a
    new key would sign with a key the hub does not know, and every segment would be refused.
    Raises KeyFileExists, leaving the file untouched, when one is already there."""
    signer = Signer.generate()
    if not create_private_file(path, b64url(signer.private_raw()) + "\n"):
        raise KeyFileExists(f"edge key already exists at {path}; refusing to replace it (the hub knows this box by it)")
    return signer


def load_key_file(path: Path) -> Signer:
    """Load the edge's private key file, refusing one that is missing, malformed or that others
    can read; the error says what to do."""
    try:
        path.stat()
    except FileNotFoundError:
        raise KeyFileError(f"edge key missing at {path}: re-enrol or restore it") from None
    except OSError:
        pass  # read_private_file below names what is wrong
    text = read_private_file(path, "edge key", KeyFileError)
    try:
        raw = b64url_decode(text)
        return Signer(Ed25519PrivateKey.from_private_bytes(raw))
    except ValueError as exc:
        raise KeyFileError(f"edge key at {path} does not hold an Ed25519 private key: re-enrol or restore it") from exc
