"""HTTP edge of the server API: ``POST /api/{method}`` with ``X-API-Key``.

Replies: ``200 {"result": ...}`` or ``200 {"error": {"code", "message"}}`` for a method's
error (as Centrifugo); ``401`` without the right key (or with no key configured: the message
says how to set one); ``400`` for a body that is not a JSON object; ``404`` for an unknown
method; ``413`` for a body over ``api_max_body_size``; ``408`` for a body not all there within
``handshake_timeout`` (a trickled body holds its socket no longer than a trickled head), the
connection then closed; a body its peer cut off ends quietly (400). Every error body is JSON.

``POST /api`` is the legacy format (Centrifugo v3/v4, gocent v3 and older clients): one
``{"method": ..., "params": {...}}`` command per line, one reply per line in the same order
(``{"result": ...}`` or ``{"error": ...}``, with the command's ``id`` when it has one), the
same key check and body limit. A line that is not a JSON object, or a bad ``method`` or
``params``, is error 107 in its place; an unknown method (``batch`` included: the legacy
format never had it) is 104; the other commands go on. More than :data:`LEGACY_MAX_COMMANDS`
commands is 413 before any runs; a body with no command is 400.
"""

from __future__ import annotations

import asyncio
from typing import Final

from aiohttp import web

from hubbub.config import Settings
from hubbub.core.codes import ErrorCode
from hubbub.node import Node
from hubbub.server import apicore
from hubbub.server.apicore import LEGACY_MAX_COMMANDS, LEGACY_METHOD_NUMBERS, METHODS
from hubbub.server.openapi import document
from hubbub.server.remote import client_of

__all__ = ["LEGACY_MAX_COMMANDS", "LEGACY_METHOD_NUMBERS", "METHODS", "add_routes"]

API_NODE: Final = web.AppKey("api_node", Node)
API_SETTINGS: Final = web.AppKey("api_settings", Settings)


def _response(reply: apicore.Reply) -> web.Response:
    status, body = reply
    return web.Response(status=status, text=body, content_type="application/json")


async def _body(request: web.Request) -> bytes | web.Response:
    """The request body, or the 413 for one over ``api_max_body_size``, or the 408."""
    settings = request.app[API_SETTINGS]
    limit = settings.api_max_body_size
    if request.content_length is not None and request.content_length > limit:
        return _response(apicore.too_large(limit))
    try:
        async with asyncio.timeout(settings.handshake_timeout):
            return await request.read()
    except web.HTTPRequestEntityTooLarge:
        return _response(apicore.too_large(limit))
    except TimeoutError:
        refusal = _response(apicore.too_slow())
        refusal.force_close()
        return refusal
    except ConnectionError:  # aiohttp's "Connection lost": nobody reads the answer
        return _response(apicore.error(400, ErrorCode.BAD_REQUEST, "the request body was cut off"))


async def handle(request: web.Request) -> web.Response:
    refused = apicore.refused(request.app[API_SETTINGS], request.headers)
    if refused is not None:
        return _response(refused)
    name = request.match_info["method"]
    unknown = apicore.known(name)
    if unknown is not None:
        return _response(unknown)
    raw = await _body(request)
    if isinstance(raw, web.Response):
        return raw
    return _response(await apicore.call(request.app[API_NODE], name, raw, client_of(request)))


async def legacy(request: web.Request) -> web.Response:
    """``POST /api``: newline-delimited ``{"method", "params"}`` commands, run in order."""
    refused = apicore.refused(request.app[API_SETTINGS], request.headers)
    if refused is not None:
        return _response(refused)
    raw = await _body(request)
    if isinstance(raw, web.Response):
        return raw
    return _response(await apicore.call_legacy(request.app[API_NODE], raw, client_of(request)))


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(document())


def add_routes(app: web.Application, settings: Settings, node: Node) -> None:
    """Mount ``/api/openapi.json``, ``POST /api/{method}`` and the legacy ``POST /api``."""
    app[API_SETTINGS] = settings
    app[API_NODE] = node
    app.router.add_get("/api/openapi.json", openapi)
    app.router.add_post("/api/{method}", handle)
    app.router.add_post("/api", legacy)
