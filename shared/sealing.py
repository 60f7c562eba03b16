"""Sealing a secret to one edge: only the box holding the edge's signing key can open it.

A user code travels inside a hub→edge command through the hub's JetStream. It is sealed to the
owning edge's enrolled Ed25519 key, so the stream's files, the hub's database row that queues the
command, and every other edge see ciphertext only. No new key has to be distributed: the edge's
Ed25519 key converts to an X25519 key (RFC 7748 §4.1, the birational map u = (1 + y) / (1 − y)
for the public key; the SHA-512 of the seed, clamped, for the private key, as in RFC 8032 §5.1.5),
and the seal is ECIES: an ephemeral X25519 exchange, HKDF-SHA256, AES-256-GCM with the caller's
associated data (the command id), so a sealed code cannot be moved to another command.
"""
from __future__ import annotations

import hashlib
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

_P = 2**255 - 19
_VERSION = 1
_INFO = b"vigil sealed secret v1"
_NONCE = 12


class SealError(Exception):
    """A sealed value cannot be made or opened (wrong key, damaged, moved to another command)."""


def x25519_public_from_ed25519(public_raw: bytes) -> bytes:
    """The X25519 public key (32 bytes, little-endian u) of an Ed25519 public key."""
    if len(public_raw) != 32:
        raise SealError("an Ed25519 public key is 32 bytes")
    y = int.from_bytes(public_raw, "little") & ((1 << 255) - 1)
    if y >= _P or y == 1:  # not canonical, or the identity point (u would be infinite)
        raise SealError("the Ed25519 public key has no X25519 counterpart")
    u = (1 + y) * pow(1 - y, _P - 2, _P) % _P
    return u.to_bytes(32, "little")


def x25519_private_from_ed25519(seed: bytes) -> X25519PrivateKey:
    """The X25519 private key of an Ed25519 private key given as its 32-byte seed."""
    if len(seed) != 32:
        raise SealError("an Ed25519 seed is 32 bytes")
    return X25519PrivateKey.from_private_bytes(hashlib.sha512(seed).digest()[:32])  # clamped by X25519


def _key(shared: bytes, ephemeral: bytes, recipient: bytes) -> bytes:
    return HKDF(hashes.SHA256(), 32, salt=ephemeral + recipient, info=_INFO).derive(shared)


def seal(edge_public_key: bytes, secret: bytes, aad: bytes) -> bytes:
    """`secret` sealed to the edge whose Ed25519 public key this is, bound to `aad`."""
    recipient = x25519_public_from_ed25519(edge_public_key)
    ephemeral = X25519PrivateKey.generate()
    ephemeral_raw = ephemeral.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(recipient))
    nonce = os.urandom(_NONCE)
    sealed = AESGCM(_key(shared, ephemeral_raw, recipient)).encrypt(nonce, secret, aad)
    return bytes([_VERSION]) + ephemeral_raw + nonce + sealed


def open_sealed(seed: bytes, sealed: bytes, aad: bytes) -> bytes:
    """The secret in `sealed`, opened with the edge's Ed25519 seed; SealError if it was sealed to
    another key, damaged, or bound to other associated data."""
    if len(sealed) < 1 + 32 + _NONCE + 16 or sealed[0] != _VERSION:
        raise SealError("not a sealed value of a known version")
    ephemeral_raw, nonce, body = sealed[1:33], sealed[33:33 + _NONCE], sealed[33 + _NONCE:]
    private = x25519_private_from_ed25519(seed)
    recipient = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    try:
        shared = private.exchange(X25519PublicKey.from_public_bytes(ephemeral_raw))
        return AESGCM(_key(shared, ephemeral_raw, recipient)).decrypt(nonce, body, aad)
    except (InvalidTag, ValueError) as exc:
        raise SealError("the sealed value does not open with this key for this command") from exc
