"""One connection's framing, plain or encrypted, behind a single interface."""

from __future__ import annotations

from .crypto import EncryptedSession
from .frame import FrameDecoder, FrameEvent


class FrameChannel:
    """Bytes in, frame events out; frames in, wire bytes out.

    Without a session the wire carries plain frames; with an :class:`EncryptedSession` every
    frame travels in its own encrypted PDU. Sans-IO: the caller owns the socket.
    """

    def __init__(self, session: EncryptedSession | None = None) -> None:
        self.session = session
        self._decoder = FrameDecoder()

    @classmethod
    def for_key(cls, integration_key: str | None) -> FrameChannel:
        """A plain channel for None, an encrypted one for an integration key."""
        return cls(EncryptedSession(integration_key) if integration_key is not None else None)

    def encode(self, frame: bytes) -> bytes:
        """Wire bytes for one complete frame (from encode_request / encode_answer)."""
        return self.session.wrap(frame) if self.session is not None else frame

    def feed(self, data: bytes | bytearray | memoryview) -> list[FrameEvent]:
        """Consume received bytes; return frames, protocol errors and busy banners in order."""
        if self.session is None:
            return self._decoder.feed(data)
        events: list[FrameEvent] = []
        for item in self.session.unwrap(data):
            if isinstance(item, bytes):
                events.extend(self._decoder.feed(item))
            else:
                events.append(item)
        return events
