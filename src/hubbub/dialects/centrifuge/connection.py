"""One connection of the Centrifugo client protocol on a WebSocket: frames in, commands to
the client, in the connection's wire format (its codec).

Commands of one frame are handled in order, each to the end, before the next frame is read.
A frame the codec cannot read, a command without id, or a command before connect closes the
connection with 3501 "bad request"; other mistakes get an error reply and the connection stays.
Each frame's size counts against the connection's byte budget (``client_byte_rate``).
A connection that has not completed connect within ``client_connect_timeout`` seconds is closed
with 3502 "stale" (answering pings does not keep it); a connect still being decided then (a
slow connect proxy or ``on_connect`` hook) is cancelled, so it never admits the client after
the close. The handshake headers are kept for the on_connect hook only until connect
succeeded.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final, Protocol

from hubbub.core.codes import Disconnects
from hubbub.core.ratelimit import message_size
from hubbub.dialects.centrifuge.client import Client
from hubbub.dialects.centrifuge.codec import Codec, ProtocolViolation
from hubbub.dialects.centrifuge.jsonwire import JSON
from hubbub.errors import DisconnectError
from hubbub.hooks import Hooks
from hubbub.node import Node
from hubbub.transport import Transport

log = logging.getLogger(__name__)

#: Keepalive and cut-off codes for connections of this dialect (see server.websocket.Policy).
NO_PONG = (Disconnects.NO_PONG.code, Disconnects.NO_PONG.reason)
SLOW = (Disconnects.SLOW.code, Disconnects.SLOW.reason)
SHUTDOWN = (Disconnects.SHUTDOWN.code, Disconnects.SHUTDOWN.reason)
STALE = (Disconnects.STALE.code, Disconnects.STALE.reason)
#: What a connected client keeps of its handshake headers (hooks saw them at connect).
NO_HEADERS: Final[Mapping[str, str]] = MappingProxyType({})


class FrameConnection(Transport, Protocol):
    async def receive(self) -> str | bytes | None: ...

    @property
    def closed_with(self) -> tuple[int, str] | None:
        """The code and reason the server closed the connection with (a slow consumer, no
        pong, a shutdown, a disconnect); None while open or when the peer ended it."""
        ...


async def run_centrifuge(
    node: Node,
    hooks: Hooks,
    conn: FrameConnection,
    headers: Mapping[str, str],
    codec: Codec = JSON,
    transport_name: str = "websocket",
    session: str = "",
    *,
    address: str = "",
) -> None:
    """Serve one connection speaking ``codec`` until it closes; ``transport_name``: what
    carries it (the server API's ``connections``), ``session``: an emulated connection's
    session id (sent in the connect result), ``address``: the client's (``on_connect``)."""
    client = Client(node, hooks, conn, headers, codec)
    client.transport_name, client.emulated = transport_name, session
    client.address = address
    del headers  # the client holds them until it is connected, nothing else here
    code, reason = 3000, "connection closed"

    def stale() -> None:
        nonlocal code, reason
        if not client.connected:
            log.info("%s: no connect within %.1fs", client.client_id, timeout)
            code, reason = STALE
            conn.close(code, reason)

    timeout = node.settings.client_connect_timeout
    loop = asyncio.get_running_loop()
    connect_by = loop.time() + timeout
    deadline: asyncio.TimerHandle | None = loop.call_at(connect_by, stale)
    try:
        while (frame := await conn.receive()) is not None:
            try:
                size = message_size(frame)  # charged with the frame's first command
                for command in codec.decode(frame):
                    if client.connected:
                        await client.handle(command, size)
                    else:  # the connect, cancelled at the deadline (stale() closes)
                        async with asyncio.timeout_at(connect_by):
                            await client.handle(command, size)
                    size = 0
                    if command.kind == "connect" and not client.connected:
                        break  # an SDK batches subscribes after connect: moot when it failed
                del command, frame  # not kept alive (with params) while the connection idles
                if deadline is not None and client.connected:
                    deadline.cancel()
                    deadline = None
                    client.headers = NO_HEADERS
            except ProtocolViolation as exc:
                log.info("%s: %s", client.client_id, exc)
                code, reason = Disconnects.BAD_REQUEST.code, f"bad request: {exc}"
                await client.settle()  # the publishes before it are answered first
                conn.close(code, reason)
                break
            except DisconnectError as exc:
                code, reason = exc.code, exc.reason
                await client.settle()
                conn.close(code, reason)
                break
            except TimeoutError:  # the connect was still being decided (stale() logged it)
                code, reason = STALE
                conn.close(code, reason)
                break
    finally:
        if deadline is not None:
            deadline.cancel()
        if conn.closed_with is not None:  # the disconnect hook sees why the server closed it
            code, reason = conn.closed_with
        await client.close(code, reason)
