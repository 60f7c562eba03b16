"""Secrets at rest in PostgreSQL (signing keys, CCTV passwords), encrypted with AES-256-GCM under
one 32-byte key kept in the hub's secret file.

The file holds the key as one line of base64url, mode 0600, created at first start; a file that
group or others can read is refused. Every hub process sharing the database needs the same file.

A sealed value is `version (1 byte) | nonce (12 bytes) | ciphertext + tag`. The associated data
(`aad`) binds a ciphertext to what it belongs to (e.g. a key id or a row id), so a value copied
into another row fails to decrypt.
"""
from __future__ import annotations

import os
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shared.private_file import create_private_file, read_private_file
from shared.signing import b64url, b64url_decode

KEY_BYTES = 32
NONCE_BYTES = 12
FORMAT_V1 = b"\x01"


class SecretFileError(Exception):
    """The secret file is unreadable, malformed or readable by others."""


class SecretBoxError(Exception):
    """A sealed value is malformed, was sealed under another key, or belongs to other data."""


class SecretBox:
    """Encrypts and decrypts small secrets with the hub's key."""

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise ValueError(f"a SecretBox key is {KEY_BYTES} bytes, got {len(key)}")
        self._aead = AESGCM(key)

    @classmethod
    def generate(cls) -> "SecretBox":
        """A box with a fresh random key that is kept nowhere (tests)."""
        return cls(AESGCM.generate_key(bit_length=KEY_BYTES * 8))

    @classmethod
    def from_file(cls, path: Path) -> "SecretBox":
        """The box for the key in `path`, creating the file (0600) with a new key if missing."""
        if not path.exists():
            _create_secret_file(path)
        return cls(_read_secret_file(path))

    def encrypt(self, plaintext: bytes, aad: bytes) -> bytes:
        """Seal `plaintext`; the same `aad` must be given to decrypt it."""
        nonce = os.urandom(NONCE_BYTES)
        return FORMAT_V1 + nonce + self._aead.encrypt(nonce, plaintext, aad)

    def decrypt(self, sealed: bytes, aad: bytes) -> bytes:
        """Open a value sealed by `encrypt` with the same `aad`; raises SecretBoxError."""
        if len(sealed) < 1 + NONCE_BYTES + 16 or sealed[:1] != FORMAT_V1:
            raise SecretBoxError("not a sealed value of a known format")
        nonce, body = sealed[1:1 + NONCE_BYTES], sealed[1 + NONCE_BYTES:]
        try:
            return self._aead.decrypt(nonce, body, aad)
        except InvalidTag:
            raise SecretBoxError("the value was sealed under another secret file or for other data") from None


def _create_secret_file(path: Path) -> None:
    create_private_file(path, b64url(AESGCM.generate_key(bit_length=KEY_BYTES * 8)) + "\n")


def _read_secret_file(path: Path) -> bytes:
    text = read_private_file(path, "secret file", SecretFileError)
    try:
        key = b64url_decode(text)
    except ValueError:
        key = b""
    if len(key) != KEY_BYTES:
        raise SecretFileError(f"secret file {path} does not hold a {KEY_BYTES}-byte key (one base64url line)")
    return key
