"""What the HTTP (not WebSocket) transports share: the request body read with a size limit and
a deadline, CORS for the pages of allowed origins, and the response headers of a stream.

Used by the unidirectional streams (:mod:`hubbub.server.unidirectional`) and by the
bidirectional emulation (:mod:`hubbub.server.emulation`), so that both answer browsers alike.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiohttp import web

from hubbub.config import Settings
from hubbub.server.httpheads import cors_headers
from hubbub.server.websocket import check_origin


async def read_body(request: web.Request, settings: Settings) -> bytes:
    """The request body; HTTP 413 beyond ``max_message_size`` bytes (before reading more),
    408 when it has not all come within ``handshake_timeout`` seconds, the connection then not
    kept alive: a body trickled byte by byte holds its socket no longer than a trickled head
    does, plus aiohttp's lingering read of what follows a refusal (10 s at most). A body its
    peer cut off ends the request quietly (400, which no one reads; no traceback)."""
    limit = settings.max_message_size
    if request.content_length is not None and request.content_length > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=request.content_length)
    body = bytearray()
    try:
        async with asyncio.timeout(settings.handshake_timeout):
            while chunk := await request.content.readany():
                body += chunk
                if len(body) > limit:
                    raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=len(body))
    except TimeoutError:
        refusal = web.HTTPRequestTimeout(text="the request body did not come in time\n")
        refusal.force_close()
        raise refusal from None
    except ConnectionError:  # aiohttp's "Connection lost"
        raise web.HTTPBadRequest(text="the request body was cut off\n") from None
    return bytes(body)


def readable_refusals(
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]], allowed: tuple[str, ...]
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """``handler`` behind :func:`check_origin` (403 without CORS headers), its refusals
    (aiohttp's HTTP errors: 400, 404, 413, 503...) carrying the CORS headers as its answers do,
    so that a page of an allowed origin reads their status (a cross-origin ``fetch`` of a
    response without them fails as a network error)."""

    async def handle(request: web.Request) -> web.StreamResponse:
        check_origin(request, allowed)
        try:
            return await handler(request)
        except web.HTTPException as exc:
            exc.headers.update(cors_headers(request.headers, bool(allowed)))
            raise

    return handle


async def answer_preflight(
    request: web.Request, allowed: tuple[str, ...], methods: str
) -> web.Response:
    """The answer to a CORS preflight (``OPTIONS``) of an endpoint taking ``methods``:
    403 for an origin not allowed, else 204 with the CORS headers."""
    check_origin(request, allowed)
    return web.Response(
        status=204,
        headers={
            "Access-Control-Max-Age": "300",
            "Access-Control-Allow-Methods": methods,
            **cors_headers(request.headers, bool(allowed)),
        },
    )
