"""Secrets at rest in PostgreSQL (signing keys, CCTV passwords), encrypted with AES-256-GCM under
the hub's key, kept in the hub's secret file.

The file holds keys as lines of base64url, mode 0600, created at first start with one key; a file
that group or others can read is refused. The first line is the current key (it seals); the
others are earlier keys, kept so values sealed under them still open until they are re-sealed
(`python -m hub secrets rotate`, then `prune`). Every hub process sharing the database needs the
same file; a process notices a changed file by itself (its mtime), so a rotation needs no restart.

A sealed value is `0x02 | key id (8 bytes) | nonce (12 bytes) | ciphertext + tag`; values from
before key ids (`0x01 | nonce | …`) open with whichever key fits. The key id is the first 8 bytes
of the key's SHA-256. The associated data (`aad`) binds a ciphertext to what it belongs to (e.g. a
key id or a row id), so a value copied into another row fails to decrypt.
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shared.private_file import create_private_file, read_private_file, write_private_file
from shared.signing import b64url, b64url_decode

KEY_BYTES = 32
NONCE_BYTES = 12
KID_BYTES = 8
FORMAT_V1 = b"\x01"
FORMAT_V2 = b"\x02"
_TAG_BYTES = 16


class SecretFileError(Exception):
    """The secret file is unreadable, malformed or readable by others."""


class SecretBoxError(Exception):
    """A sealed value is malformed, was sealed under another key, or belongs to other data."""


def key_id(key: bytes) -> str:
    """A key's id, as sealed values and `secrets` commands show it (hex)."""
    return hashlib.sha256(key).digest()[:KID_BYTES].hex()


def sealed_key_id(sealed: bytes) -> str | None:
    """The id of the key a value was sealed under; None for a value from before key ids."""
    return sealed[1:1 + KID_BYTES].hex() if sealed[:1] == FORMAT_V2 else None


class SecretBox:
    """Encrypts with the current key, decrypts with any key the secret file holds."""

    def __init__(self, key: bytes, previous: Sequence[bytes] = (), *, path: Path | None = None) -> None:
        for k in (key, *previous):
            if len(k) != KEY_BYTES:
                raise ValueError(f"a SecretBox key is {KEY_BYTES} bytes, got {len(k)}")
        self._path = path
        self._mtime = path.stat().st_mtime_ns if path is not None else 0
        self._set_keys([key, *previous])

    def _set_keys(self, keys: list[bytes]) -> None:
        self._current = key_id(keys[0])
        self._keys = {key_id(k): AESGCM(k) for k in keys}

    @property
    def current_key_id(self) -> str:
        return self._current

    @property
    def key_ids(self) -> list[str]:
        """Every key this box can open values with, the current one first."""
        return list(self._keys)

    @classmethod
    def generate(cls) -> "SecretBox":
        """A box with a fresh random key that is kept nowhere (tests)."""
        return cls(AESGCM.generate_key(bit_length=KEY_BYTES * 8))

    @classmethod
    def from_file(cls, path: Path) -> "SecretBox":
        """The box for the keys in `path`, creating the file (0600) with a new key if missing."""
        if not path.exists():
            create_private_file(path, b64url(AESGCM.generate_key(bit_length=KEY_BYTES * 8)) + "\n")
        keys = read_secret_file(path)
        return cls(keys[0], keys[1:], path=path)

    def _reload_if_changed(self) -> bool:
        """Take the file's keys again if it changed since read (a rotation by another process)."""
        if self._path is None:
            return False
        mtime = self._path.stat().st_mtime_ns
        if mtime == self._mtime:
            return False
        self._set_keys(read_secret_file(self._path))
        self._mtime = mtime
        return True

    def encrypt(self, plaintext: bytes, aad: bytes) -> bytes:
        """Seal `plaintext` under the current key; the same `aad` must be given to decrypt it."""
        self._reload_if_changed()
        nonce = os.urandom(NONCE_BYTES)
        return FORMAT_V2 + bytes.fromhex(self._current) + nonce + self._keys[self._current].encrypt(nonce, plaintext, aad)

    def decrypt(self, sealed: bytes, aad: bytes) -> bytes:
        """Open a value sealed by `encrypt` with the same `aad`; raises SecretBoxError."""
        if sealed[:1] == FORMAT_V2 and len(sealed) >= 1 + KID_BYTES + NONCE_BYTES + _TAG_BYTES:
            kid = sealed[1:1 + KID_BYTES].hex()
            if kid not in self._keys and not (self._reload_if_changed() and kid in self._keys):
                raise SecretBoxError(f"the value was sealed under key {kid}, which the secret file does not hold")
            return self._open([self._keys[kid]], sealed[1 + KID_BYTES:], aad)
        if sealed[:1] == FORMAT_V1 and len(sealed) >= 1 + NONCE_BYTES + _TAG_BYTES:
            return self._open(list(self._keys.values()), sealed[1:], aad)
        raise SecretBoxError("not a sealed value of a known format")

    @staticmethod
    def _open(candidates: list[AESGCM], rest: bytes, aad: bytes) -> bytes:
        nonce, body = rest[:NONCE_BYTES], rest[NONCE_BYTES:]
        for aead in candidates:
            try:
                return aead.decrypt(nonce, body, aad)
            except InvalidTag:
                continue
        raise SecretBoxError("the value was sealed under another secret file or for other data")


def read_secret_file(path: Path) -> list[bytes]:
    """The keys in a secret file, the current one first."""
    text = read_private_file(path, "secret file", SecretFileError)
    keys = []
    for line in (line.strip() for line in text.splitlines()):
        if not line:
            continue
        try:
            key = b64url_decode(line)
        except ValueError:
            key = b""
        if len(key) != KEY_BYTES:
            raise SecretFileError(f"secret file {path} must hold {KEY_BYTES}-byte keys, one base64url line each")
        keys.append(key)
    if not keys:
        raise SecretFileError(f"secret file {path} holds no key")
    return keys


def add_current_key(path: Path) -> str:
    """Put a new key first in the secret file (earlier keys stay, to open what they sealed);
    returns its id."""
    keys = read_secret_file(path)
    new = AESGCM.generate_key(bit_length=KEY_BYTES * 8)
    write_private_file(path, "".join(b64url(k) + "\n" for k in [new, *keys]))
    return key_id(new)


def drop_keys(path: Path, keep: set[str]) -> list[str]:
    """Remove from the secret file every earlier key whose id is not in `keep` (the current key
    always stays); returns the ids removed."""
    keys = read_secret_file(path)
    kept = [keys[0]] + [k for k in keys[1:] if key_id(k) in keep]
    removed = [key_id(k) for k in keys[1:] if key_id(k) not in keep]
    if removed:
        write_private_file(path, "".join(b64url(k) + "\n" for k in kept))
    return removed
