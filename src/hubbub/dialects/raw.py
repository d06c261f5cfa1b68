"""The raw dialect: plain WebSocket messages with no envelope.

- echo: every message comes back to its sender, same frame type, same bytes, in order.
- rooms: a room is the channel ``rooms:<room>`` of the hub. Every message a member sends is
  published there: raw members get the same frame (never their own), channel-protocol
  subscribers get it as publication data: text that is JSON as that JSON text (verbatim),
  other text as a JSON string, binary as ``{"base64": "..."}``; the publication's frame kind
  says which, so raw members on every node rebuild the same frame type and bytes from the data
  (:func:`room_publication`, :meth:`RawWire.publication`). Publications from the channel
  protocol reach raw members as text frames holding the data's JSON text.

Room members are rate limited like channel-protocol connections (every message is one command
and its size in bytes, :mod:`hubbub.core.ratelimit`): a message over the limit is dropped (raw
WebSockets have no error reply), and a member that keeps sending over it is closed with 1008
"rate limit exceeded". The echo endpoint is not limited: it answers at the pace the peer reads.
"""

from __future__ import annotations

import base64
import time
import uuid
from dataclasses import dataclass
from typing import Final, Protocol

from hubbub.core.channels import room_channel
from hubbub.core.closecode import CloseCode
from hubbub.core.jsontext import NotJSON, dumps, loads
from hubbub.core.publishlatency import Source
from hubbub.core.ratelimit import RateLimiter, Verdict, message_size
from hubbub.core.types import FRAME_BINARY, FRAME_STRING, FRAME_TEXT, ClientInfo, Publication
from hubbub.errors import StoreError
from hubbub.node import Node
from hubbub.transport import Transport

#: Close reason of a room member closed for sustained abuse of the rate limits (code 1008).
RATE_LIMITED: Final = "rate limit exceeded"


class RawConnection(Transport, Protocol):
    """What the raw dialect needs from a connection beyond :class:`Transport`."""

    async def receive(self) -> str | bytes | None: ...

    async def send(self, message: str | bytes) -> None: ...


class RawWire:
    """Raw frames as a wire (:class:`hubbub.wire.Wire`): a raw-room message's own frame (same
    bytes, same frame type, on every node: rebuilt from the data by its frame kind, which the
    engines carry beside the payload), else the publication's data as a text frame. Members
    never get their own messages; no joins or leaves."""

    __slots__ = ()

    own_messages: Final = False

    def publication(self, channel: str, pub: Publication) -> str | bytes:
        frame = pub.frame
        if frame == FRAME_TEXT:
            return pub.data
        try:
            value = loads(pub.data)
            if frame == FRAME_STRING and isinstance(value, str):
                return value
            if frame == FRAME_BINARY and isinstance(value, dict):
                return base64.b64decode(value["base64"], validate=True)
        except (NotJSON, KeyError, TypeError, ValueError):
            pass
        return pub.data  # a kind that does not match its data: the data as it is

    def join(self, channel: str, info: ClientInfo) -> None:
        return None

    def leave(self, channel: str, info: ClientInfo) -> None:
        return None


RAW: Final = RawWire()


@dataclass(eq=False, slots=True)
class RoomMember:
    """A raw-room connection as a channel member."""

    client_id: str
    transport: Transport
    wire: RawWire = RAW

    def wants_join_leave(self, channel: str, forced: bool = False) -> bool:
        return False

    def positioned(self, channel: str) -> bool:
        return False  # raw frames carry no offsets: nothing to resubscribe with


def room_publication(message: str | bytes) -> tuple[str, str]:
    """The publication data (JSON text) and frame kind for a raw room message: JSON text as
    it is, other text as a JSON string, binary as ``{"base64": "..."}``."""
    if isinstance(message, bytes):
        return dumps({"base64": base64.b64encode(message).decode()}), FRAME_BINARY
    try:
        loads(message)
    except NotJSON:
        return dumps(message), FRAME_STRING
    return message, FRAME_TEXT


async def run_echo(conn: RawConnection) -> None:
    """Echo until the peer closes. Replies are awaited, so a peer that stops reading slows
    only itself (TCP backpressure) instead of being buffered for."""
    while (message := await conn.receive()) is not None:
        await conn.send(message)


async def run_room(node: Node, room: str, conn: RawConnection) -> None:
    """Membership of ``room`` for the life of ``conn``."""
    channel = room_channel(room)
    options = node.options(channel)
    # An id unique in the cluster (connection ids are only unique within a node): members
    # never get their own messages, and members of other nodes never look like them.
    member = RoomMember(str(uuid.uuid4()), conn)
    info = ClientInfo(client=member.client_id, user="")
    limiter = RateLimiter(node.limits, time.monotonic())
    await node.add_member(channel, member)
    try:
        while (message := await conn.receive()) is not None:
            verdict = limiter.admit(time.monotonic(), message_size(message))
            if verdict is Verdict.DISCONNECT:
                conn.close(int(CloseCode.POLICY_VIOLATION), RATE_LIMITED)
                break
            if verdict is Verdict.REFUSE:
                continue
            data, frame = room_publication(message)
            try:
                await node.publish(
                    channel, data, info=info, frame=frame, options=options, source=Source.CLIENT
                )
            except StoreError:
                conn.close(int(CloseCode.TRY_AGAIN_LATER), "message could not be stored")
                break
    finally:
        await node.remove_member(channel, member)
