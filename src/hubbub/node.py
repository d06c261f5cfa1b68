"""The node: owns the live connections and the rooms they are in.

The node is the one place where the pure registry and the connections meet. Edges (the aiohttp
handlers) attach a connection when its handshake succeeds, join/leave rooms, hand it incoming
messages and detach it when it ends. Later issues grow this into the channel node (engine,
hooks, history); the shape stays: edges move bytes, the node decides, the core keeps the books.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from hubbub.core.names import validate_name
from hubbub.core.registry import Registry
from hubbub.transport import Transport


class Node:
    """Connections and raw rooms of one hubbub process."""

    def __init__(self) -> None:
        self._connections: dict[str, Transport] = {}
        self._rooms: Registry[Transport] = Registry()
        self.started_at = time.time()
        self.closing = False
        self.messages_in = 0
        self.messages_out = 0

    # -- connections ---------------------------------------------------------------------

    def attach(self, conn: Transport) -> None:
        """Register a connection whose handshake succeeded."""
        self._connections[conn.id] = conn

    def detach(self, conn: Transport) -> None:
        """Forget a connection that ended, and take it out of every room."""
        self._connections.pop(conn.id, None)
        self._rooms.remove(conn)

    def connections(self) -> Iterable[Transport]:
        return tuple(self._connections.values())

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    def close_all(self, code: int, reason: str) -> None:
        """Start closing every connection (shutdown); see :meth:`Transport.close`."""
        self.closing = True
        for conn in tuple(self._connections.values()):
            conn.close(code, reason)

    # -- raw rooms -----------------------------------------------------------------------

    def join_room(self, room: str, conn: Transport) -> None:
        """Put ``conn`` in ``room`` (the name must be valid: :func:`validate_name`)."""
        self._rooms.subscribe(validate_name(room), conn)

    def leave_room(self, room: str, conn: Transport) -> None:
        self._rooms.unsubscribe(room, conn)

    def room_message(self, room: str, message: str | bytes, sender: Transport) -> int:
        """Deliver ``message`` to every member of ``room`` except ``sender``; return how many.

        Members receive the same object (same frame type, same bytes) in the order messages
        reach the node, which is one order for every member.
        """
        self.messages_in += 1
        delivered = 0
        for member in self._rooms.subscribers(room):
            if member is not sender:
                member.post(message)
                delivered += 1
        self.messages_out += delivered
        return delivered

    def room_count(self) -> int:
        return self._rooms.channel_count()
