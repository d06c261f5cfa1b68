"""One unidirectional connection of the Centrifugo client protocol (``uni_sse``,
``uni_http_stream``, ``uni_websocket``): the connect request the edge read, then pushes only.

The connect is handled by the same :class:`hubbub.dialects.centrifuge.client.Client` as over
a bidirectional WebSocket, in the unidirectional codec (:mod:`.uniwire`): its subscriptions
are the server-side ones (the token's ``channels``/``subs``, the ``on_connect`` hook's); the
connect push lists them. Guarantees:

- A connect that fails ends the connection with a disconnect push (the error mapped as
  Centrifugo maps it, see :mod:`.uniwire`); one that takes longer than
  ``client_connect_timeout`` ends it with 3502 "stale".
- ``recover``: stream positions (from an SSE ``Last-Event-ID``, :mod:`.eventids`) become the
  connect's ``subs`` entries with ``recover`` for the channels the request does not name
  itself, so the server-side subscriptions recover as an SDK's reconnect does.
- The codec's ping (``{}``) is posted every ``ping_interval`` seconds while connected.
- The client leaves every channel when the connection ends, however it ends.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol

from hubbub.core import messages as m
from hubbub.core.codes import Disconnects
from hubbub.core.ratelimit import RateLimiter, Verdict
from hubbub.dialects.centrifuge.client import Client
from hubbub.dialects.centrifuge.connection import NO_HEADERS, STALE
from hubbub.dialects.centrifuge.uniwire import UNI_JSON, BadConnect, connect_frame
from hubbub.errors import DisconnectError
from hubbub.hooks import Hooks
from hubbub.node import Node
from hubbub.transport import Transport

log = logging.getLogger(__name__)


def with_recovery(frame: m.Frame, positions: Mapping[str, tuple[int, str]]) -> m.Frame:
    """``frame``'s connect with ``subs`` entries recovering from ``positions`` (the request's
    own entries win)."""
    request = frame.request
    if not positions or not isinstance(request, m.Connect):
        return frame
    subs = {
        channel: m.Subscribe(channel, recover=True, offset=offset, epoch=epoch)
        for channel, (offset, epoch) in positions.items()
    }
    subs.update(request.subs)
    return dataclasses.replace(frame, request=dataclasses.replace(request, subs=subs))


class Closing(Transport, Protocol):
    @property
    def closed_with(self) -> tuple[int, str] | None: ...


async def run_unidirectional(
    node: Node,
    hooks: Hooks,
    conn: Closing,
    headers: Mapping[str, str],
    frame: m.Frame,
    ended: Callable[[], Awaitable[None]],
    transport_name: str,
    address: str = "",
) -> None:
    """Serve one unidirectional connection whose connect command is ``frame``; ``ended``
    returns when the connection has ended (the peer went away or a close completed);
    ``transport_name``: what the server API's ``connections`` says carries it; ``address``:
    the client's (what ``on_connect`` sees)."""
    client = Client(node, hooks, conn, headers, UNI_JSON)
    client.transport_name, client.address = transport_name, address
    del headers
    code, reason = 3000, "connection closed"
    loop = asyncio.get_running_loop()
    beat: asyncio.TimerHandle | None = None
    interval = node.settings.ping_interval

    def ping() -> None:
        nonlocal beat
        conn.post(UNI_JSON.ping)
        beat = loop.call_later(interval, ping)

    try:
        try:
            async with asyncio.timeout(node.settings.client_connect_timeout):
                await client.handle(frame, 0)
        except DisconnectError as exc:
            code, reason = exc.code, exc.reason
            conn.close(code, reason)
        except TimeoutError:
            timeout = node.settings.client_connect_timeout
            log.info("%s: connect took over %.1fs", client.client_id, timeout)
            code, reason = STALE
            conn.close(code, reason)
        else:
            del frame
            if client.connected:
                client.headers = NO_HEADERS
                beat = loop.call_later(interval, ping)
            else:
                code, reason = Disconnects.SERVER_ERROR.code, Disconnects.SERVER_ERROR.reason
                conn.close(code, reason)
        await ended()
    finally:
        if beat is not None:
            beat.cancel()
        beat = ping = None  # type: ignore[assignment]  # (ping's cell holds ping: a cycle)
        if conn.closed_with is not None:  # the disconnect hook sees why the server closed it
            code, reason = conn.closed_with
        await client.close(code, reason)


class UniWebSocket(Closing, Protocol):
    """What :func:`run_uni_websocket` needs of a WebSocket, whatever edge carries it."""

    async def receive(self) -> str | bytes | None: ...

    async def wait_closed(self) -> None: ...


async def run_uni_websocket(
    node: Node,
    hooks: Hooks,
    conn: UniWebSocket,
    headers: Mapping[str, str],
    frame: m.Frame | None,
    address: str = "",
) -> None:
    """Serve one ``uni_websocket`` of the client at ``address`` (what ``on_connect`` sees):
    its connect is ``frame`` (from ``cf_connect``) or else the first message (a bad one
    closes with 3501, none within ``client_connect_timeout`` with 3502). What the client
    sends after is ignored, but counted by the rate limits as commands are, so that a flood
    is cut off (3013)."""
    if frame is None:
        frame = await _first_message(conn, node.settings.client_connect_timeout)
    if frame is None:
        return

    async def ended() -> None:
        limiter = RateLimiter(node.limits, time.monotonic())
        while (message := await conn.receive()) is not None:
            if limiter.admit(time.monotonic(), len(message)) is Verdict.DISCONNECT:
                d = Disconnects.TOO_MANY_REQUESTS
                conn.close(d.code, d.reason)
                break
        await conn.wait_closed()

    await run_unidirectional(node, hooks, conn, headers, frame, ended, "uni_websocket", address)


async def _first_message(conn: UniWebSocket, wait: float) -> m.Frame | None:
    """The connect request of a uni_websocket sent as its first message; None (the
    connection closed: 3501 for a bad one, 3502 when none came in time) otherwise."""
    try:
        async with asyncio.timeout(wait):
            message = await conn.receive()
    except TimeoutError:
        conn.close(*STALE)
        return None
    if message is None:
        return None
    try:
        return connect_frame(message)
    except BadConnect as exc:
        conn.close(Disconnects.BAD_REQUEST.code, f"bad request: {exc}")
        return None
