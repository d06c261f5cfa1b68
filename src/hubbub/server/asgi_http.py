"""What the ASGI edge's HTTP handlers share: the route path under a mount, headers, the
query, whole responses, and request bodies read with a size limit and a deadline. No I/O
beyond the ``receive``/``send`` it is given."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qs

from multidict import CIMultiDict, CIMultiDictProxy

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Scope = MutableMapping[str, Any]
Headers = CIMultiDictProxy[str]


def route_path(scope: Scope) -> str:
    """The path relative to where the app is mounted: ``path`` less ``root_path`` when it
    starts with that whole prefix (``/rt`` or ``/rt/...``; not ``/rtx``, which stays as it is),
    as Starlette's ``Mount`` and ``uvicorn --root-path`` pass them."""
    path: str = scope.get("path") or "/"
    root: str = (scope.get("root_path") or "").rstrip("/")
    if root and path.startswith(root) and path[len(root) : len(root) + 1] in ("", "/"):
        path = path[len(root) :]
    return path if path.startswith("/") else "/" + path


def headers_of(scope: Scope) -> Headers:
    """The request headers, case-insensitive (names lowercased, values as sent)."""
    headers: CIMultiDict[str] = CIMultiDict()
    for name, value in scope.get("headers") or ():
        headers.add(name.decode("latin-1"), value.decode("latin-1"))
    return CIMultiDictProxy(headers)


def client_address(scope: Scope) -> str | None:
    client = scope.get("client")
    return str(client[0]) if client else None


async def respond(
    send: Send,
    status: int,
    body: str | bytes,
    content_type: str = "text/plain; charset=utf-8",
    headers: dict[str, str] | None = None,
) -> None:
    """A whole HTTP response."""
    data = body.encode() if isinstance(body, str) else body
    raw = [(b"content-type", content_type.encode()), (b"content-length", b"%d" % len(data))]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": data})


async def respond_json(send: Send, status: int, body: str) -> None:
    await respond(send, status, body, "application/json")


def query_param(scope: Scope, name: str) -> str | None:
    """The first value of the query parameter ``name``; None without one."""
    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get(name)
    return values[0] if values else None


class BodyRefused(Exception):
    """A request body refused: ``status`` and ``text`` to answer with."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status, self.text = status, text


async def read_body(receive: Receive, headers: Headers, limit: int, deadline: float) -> bytes:
    """The request body; :class:`BodyRefused` 413 beyond ``limit`` bytes (before reading more
    when ``Content-Length`` says so), 408 when it has not all come within ``deadline``
    seconds, 400 when the peer went away."""
    length = headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise BodyRefused(413, f"body is larger than {limit} bytes")
    body = bytearray()
    try:
        async with asyncio.timeout(deadline):
            while True:
                event = await receive()
                if event["type"] == "http.disconnect":
                    raise BodyRefused(400, "the request body was cut off")
                body += event.get("body", b"")
                if len(body) > limit:
                    raise BodyRefused(413, f"body is larger than {limit} bytes")
                if not event.get("more_body", False):
                    return bytes(body)
    except TimeoutError:
        raise BodyRefused(408, "the request body did not come in time") from None
