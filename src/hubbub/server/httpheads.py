"""Response headers of the HTTP transports, whatever edge serves them: the streams' no-cache
and no-buffering headers (Centrifugo's) and CORS for the pages of allowed origins."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

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


def cors_headers(request: Mapping[str, str], listed: bool) -> dict[str, str]:
    """CORS headers for a request (its headers, case-insensitive) whose ``Origin`` passed
    :func:`hubbub.server.admission.origin_refusal`, as Centrifugo's middleware gives them: the
    origin echoed, requested headers allowed, so that a page of that origin can read the
    stream; none without ``Origin``. Credentials (cookies) are allowed only for an origin
    ``listed`` in ``allowed_origins``: with the list empty any page may read a stream, but
    never with the user's cookies (an ``on_connect`` hook that authenticates by cookie is not
    open to every site by default)."""
    origin = request.get("Origin")
    if not origin:
        return {}
    headers = {"Access-Control-Allow-Origin": origin}
    if listed:
        headers["Access-Control-Allow-Credentials"] = "true"
    wanted = request.get("Access-Control-Request-Headers")
    if wanted and wanted != "null":
        headers["Access-Control-Allow-Headers"] = wanted
    return headers
