"""What the HTTP (not WebSocket) transports share: the request body read with a size limit and
a deadline, CORS for the pages of allowed origins, and the response headers of a stream.

Used by the unidirectional streams (:mod:`hubbub.server.unidirectional`) and by the
bidirectional emulation (:mod:`hubbub.server.emulation`), so that both answer browsers alike.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Final

from aiohttp import web

from hubbub.config import Settings
from hubbub.server.websocket import check_origin

#: Headers of every HTTP stream (Centrifugo's): no caching, no proxy buffering.
STREAM_HEADERS: Final = {
    "X-Accel-Buffering": "no",
    "Cache-Control": "private, no-cache, no-store, must-revalidate, max-age=0",
    "Pragma": "no-cache",
    "Expires": "0",
}
SSE_HEADERS: Final = {**STREAM_HEADERS, "Content-Type": "text/event-stream; charset=utf-8"}
LINE_HEADERS: Final = {**STREAM_HEADERS, "Content-Type": "text/plain; charset=utf-8"}
BINARY_HEADERS: Final = {**STREAM_HEADERS, "Content-Type": "application/octet-stream"}


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


def cors_headers(request: web.Request, listed: bool) -> dict[str, str]:
    """CORS headers for a request whose ``Origin`` passed :func:`check_origin` (as
    Centrifugo's middleware: the origin echoed, requested headers allowed), so that a page of
    that origin can read the stream; none without ``Origin``. Credentials (cookies) are
    allowed only for an origin ``listed`` in ``allowed_origins``: with the list empty any page
    may read a stream, but never with the user's cookies (an ``on_connect`` hook that
    authenticates by cookie is not open to every site by default)."""
    origin = request.headers.get("Origin")
    if not origin:
        return {}
    headers = {"Access-Control-Allow-Origin": origin}
    if listed:
        headers["Access-Control-Allow-Credentials"] = "true"
    wanted = request.headers.get("Access-Control-Request-Headers")
    if wanted and wanted != "null":
        headers["Access-Control-Allow-Headers"] = wanted
    return headers


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
            exc.headers.update(cors_headers(request, bool(allowed)))
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
            **cors_headers(request, bool(allowed)),
        },
    )
