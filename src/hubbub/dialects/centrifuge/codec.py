"""What a wire format of the Centrifugo client protocol provides: frames to typed commands,
typed replies and pushes to messages (:mod:`hubbub.core.messages`).

Two codecs implement :class:`Codec`: :mod:`.jsonwire` (subprotocol none or
``centrifuge-json``: text frames of newline-separated JSON objects) and :mod:`.protowire`
(``centrifuge-protobuf``: binary frames of varint length-delimited Protobuf messages). A codec
is also the node's :class:`hubbub.wire.Wire` for the members speaking it.

Guarantees every codec gives:

- :meth:`Codec.decode` raises :class:`ProtocolViolation` for a frame that cannot be understood
  at all (the connection is closed with 3501) and returns the frame's commands in order; a
  command whose fields are of the wrong type has a ``problem`` (107, the connection stays).
- Encoding is pure and returns ``str`` (text frames) or ``bytes`` (binary frames); messages
  of one codec posted in one loop turn may be joined into one frame (text with ``"\\n"``,
  binary by concatenation), which the SDKs split again.
- :meth:`Codec.reply` and :meth:`Codec.push` raise
  :class:`hubbub.core.messages.NotEncodable` for data the format cannot carry.
"""

from __future__ import annotations

from typing import Protocol

from hubbub.core.messages import Frame, Push, Reply
from hubbub.core.types import ClientInfo, Publication


class ProtocolViolation(Exception):
    """The frame cannot be understood at all; the client is disconnected (3501)."""


class Codec(Protocol):
    """One wire format of the protocol; see the module guarantees."""

    @property
    def name(self) -> str:
        """``"json"`` or ``"protobuf"``."""
        ...

    @property
    def ping(self) -> str | bytes:
        """The server's ping message (the SDK answers with a pong command)."""
        ...

    @property
    def own_messages(self) -> bool: ...

    @property
    def binary(self) -> bool:
        """Whether bytes that are not JSON text can be written (else :class:`NotEncodable`)."""
        ...

    def decode(self, frame: str | bytes) -> list[Frame]: ...

    def reply(self, reply: Reply) -> str | bytes: ...

    def push(self, push: Push) -> str | bytes: ...

    # -- hubbub.wire.Wire ------------------------------------------------------------------

    def publication(self, channel: str, pub: Publication) -> str | bytes: ...

    def delta_publication(
        self, channel: str, pub: Publication, patch: bytes | None
    ) -> str | bytes: ...

    def join(self, channel: str, info: ClientInfo) -> str | bytes | None: ...

    def leave(self, channel: str, info: ClientInfo) -> str | bytes | None: ...
