"""The raw dialect: plain WebSocket messages with no envelope.

- echo: every message comes back to its sender, same frame type, same bytes, in order.
- rooms: every message a member sends goes to every other member of the room.
"""

from __future__ import annotations

from typing import Protocol

from hubbub.node import Node
from hubbub.transport import Transport


class RawConnection(Transport, Protocol):
    """What the raw dialect needs from a connection beyond :class:`Transport`."""

    async def receive(self) -> str | bytes | None: ...

    async def send(self, message: str | bytes) -> None: ...


async def run_echo(conn: RawConnection) -> None:
    """Echo until the peer closes. Replies are awaited, so a peer that stops reading slows
    only itself (TCP backpressure) instead of being buffered for."""
    while (message := await conn.receive()) is not None:
        await conn.send(message)


async def run_room(node: Node, room: str, conn: RawConnection) -> None:
    """Membership of ``room`` for the life of ``conn``; messages are relayed by the node."""
    node.join_room(room, conn)
    try:
        while (message := await conn.receive()) is not None:
            node.room_message(room, message, sender=conn)
    finally:
        node.leave_room(room, conn)
