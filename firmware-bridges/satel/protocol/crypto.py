"""Encrypted integration mode of the ETHM-1 Plus ("integration key").

- AES-192 key: the ASCII integration key padded with spaces to 12 bytes, twice.
- Chaining: start value AES(16 zero bytes); full blocks chained as CBC; a short final block is
  XORed with AES(previous chaining value), truncated. A PDU shorter than 16 bytes is zero-padded.
- PDU: ``rand(2) | counter(2, BE) | id_s | id_r | frame``; on the wire, one length byte first.
- ``id_r`` echoes the ``id_s`` last received; a PDU whose ``id_r`` is not our ``id_s`` is rejected.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from .frame import BUSY_BANNER, Busy, ErrorReason, ProtocolError, protocol_error

BLOCK = 16
HEADER_BYTES = 6
MAX_KEY_CHARS = 12
#: The length prefix is one byte, so a PDU (header + frame) is at most 255 bytes.
MAX_PDU = 0xFF

UnwrapEvent = bytes | Busy | ProtocolError


def derive_aes_key(integration_key: str) -> bytes:
    """Turn an integration key (1–12 ASCII characters) into the 24-byte AES-192 key."""
    if not 1 <= len(integration_key) <= MAX_KEY_CHARS or not integration_key.isascii():
        raise ValueError(f"an integration key is 1–{MAX_KEY_CHARS} ASCII characters")
    padded = integration_key.encode("ascii").ljust(MAX_KEY_CHARS, b" ")
    return padded + padded


def _xor(left: bytes, right: bytes) -> bytes:
    size = len(left)
    return (int.from_bytes(left, "big") ^ int.from_bytes(right[:size], "big")).to_bytes(size, "big")


class PduCipher:
    """The module's AES chaining over whole PDUs (no padding beyond the 16-byte minimum)."""

    def __init__(self, aes_key: bytes) -> None:
        self._algorithm = algorithms.AES(aes_key)
        self._ecb = Cipher(self._algorithm, modes.ECB()).encryptor()
        self._start = self._block(bytes(BLOCK))

    def _block(self, block: bytes) -> bytes:
        return self._ecb.update(block)

    def encrypt(self, pdu: bytes) -> bytes:
        """Encrypt one PDU; the result is as long as the PDU (at least 16 bytes)."""
        pdu = pdu.ljust(BLOCK, b"\x00")
        whole = len(pdu) - len(pdu) % BLOCK
        out = Cipher(self._algorithm, modes.CBC(self._start)).encryptor().update(pdu[:whole])
        if whole < len(pdu):
            out += _xor(pdu[whole:], self._block(out[-BLOCK:]))
        return out

    def decrypt(self, data: bytes) -> bytes:
        """Decrypt one PDU (the inverse of :meth:`encrypt`, padding included)."""
        whole = len(data) - len(data) % BLOCK
        out = Cipher(self._algorithm, modes.CBC(self._start)).decryptor().update(data[:whole])
        if whole < len(data):
            chain = data[whole - BLOCK : whole] if whole else self._start
            out += _xor(data[whole:], self._block(chain))
        return out


class EncryptedSession:
    """One side of an encrypted connection: wraps outgoing frames, unwraps incoming PDUs.

    ``id_s`` is this side's PDU id, fixed for the session (random unless given) so pushed frames
    that cross one of our requests still carry an ``id_r`` we accept. ``random_bytes`` supplies
    the two random header bytes; tests pass a fixed function for reproducible vectors.
    """

    def __init__(
        self,
        integration_key: str,
        *,
        id_s: int | None = None,
        random_bytes: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self._cipher = PduCipher(derive_aes_key(integration_key))
        self._random = random_bytes
        self.id_s = random_bytes(1)[0] if id_s is None else id_s
        if not 0 <= self.id_s <= 0xFF:
            raise ValueError(f"id_s {self.id_s!r} is outside 0..255")
        self._peer_id = 0
        self._counter = 0
        self._sent_any = False
        self._buf = bytearray()

    def wrap(self, frame: bytes) -> bytes:
        """Encrypt one complete frame into its wire form: length byte + encrypted PDU."""
        header = self._random(2) + self._counter.to_bytes(2, "big") + bytes((self.id_s, self._peer_id))
        pdu = header + frame
        if len(pdu) > MAX_PDU:
            raise ValueError(f"a PDU of {len(pdu)} bytes does not fit the one-byte length prefix")
        self._counter = (self._counter + 1) & 0xFFFF
        self._sent_any = True
        encrypted = self._cipher.encrypt(pdu)
        return bytes((len(encrypted),)) + encrypted

    def unwrap(self, data: bytes | bytearray | memoryview) -> list[UnwrapEvent]:
        """Consume wire bytes; return the plain frame bytes of each complete PDU, in order.

        A busy banner at a PDU boundary gives Busy; a PDU too short for its header or carrying the
        wrong ``id_r`` gives a ProtocolError and is dropped. Never raises on input.
        """
        buf = self._buf
        buf += data
        out: list[UnwrapEvent] = []
        pos = 0
        while pos < len(buf):
            available = min(len(buf) - pos, len(BUSY_BANNER))
            if buf[pos : pos + available] == BUSY_BANNER[:available]:
                if available < len(BUSY_BANNER):
                    break
                out.append(Busy())
                pos += len(BUSY_BANNER)
                continue
            size = buf[pos]
            if len(buf) - pos - 1 < size:
                break
            encrypted = bytes(buf[pos + 1 : pos + 1 + size])
            pos += 1 + size
            out.append(self._open(encrypted))
        del buf[:pos]
        return out

    def _open(self, encrypted: bytes) -> bytes | ProtocolError:
        if len(encrypted) < BLOCK:
            return protocol_error(ErrorReason.BAD_PDU, encrypted)
        pdu = self._cipher.decrypt(encrypted)
        peer_id, echoed_id = pdu[4], pdu[5]
        if self._sent_any and echoed_id != self.id_s:
            return protocol_error(ErrorReason.ID_MISMATCH, pdu[:HEADER_BYTES])
        self._peer_id = peer_id
        # A frame always ends in FE 0D, so stripping zero bytes removes only the PDU padding.
        return pdu[HEADER_BYTES:].rstrip(b"\x00")
