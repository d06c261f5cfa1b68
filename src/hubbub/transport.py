"""What the node needs from a client connection, whatever carries it.

A :class:`Transport` is one client connection as the node sees it. The aiohttp WebSocket edge
(:mod:`hubbub.server.websocket`) implements it; a test double or another edge (picows, SSE) can
too. Guarantees every implementation gives:

- :meth:`post` never awaits and never blocks: it queues the message and returns. Messages posted
  to one transport are written in the order they were posted. Posting to a closed or closing
  transport is silently ignored.
- Unsent data is bounded: when the queued bytes would exceed the connection's limit the transport
  is closed as a slow consumer (its messages are dropped) and the others are not delayed.
- :meth:`close` never awaits: it starts the close handshake; the connection's handler ends soon
  after, and the node is told through its own ``detach``.
- Nothing here calls back into the node synchronously, so a node may post while iterating over
  its members.
"""

from __future__ import annotations

from typing import Protocol


class Transport(Protocol):
    """One client connection."""

    @property
    def id(self) -> str:
        """Unique within the node for the life of the process."""
        ...

    def post(self, message: str | bytes) -> None:
        """Queue a text (``str``) or binary (``bytes``) message; see the module guarantees."""
        ...

    def close(self, code: int, reason: str) -> None:
        """Start closing with ``code`` and ``reason``; idempotent."""
        ...
