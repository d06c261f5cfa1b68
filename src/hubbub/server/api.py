"""HTTP edge of the server API: ``POST /api/{method}`` with ``X-API-Key``.

Replies: ``200 {"result": ...}`` or ``200 {"error": {"code", "message"}}`` for a method's
error (as Centrifugo); ``401`` without the right key (or with no key configured: the message
says how to set one); ``400`` for a body that is not a JSON object; ``404`` for an unknown
method; ``413`` for a body over ``api_max_body_size``. Every error body is JSON.
"""

from __future__ import annotations

import hmac
import json
import logging
from typing import Any, Final

from aiohttp import web

from hubbub import api
from hubbub.config import Settings
from hubbub.core import jsontext as protocol
from hubbub.core.codes import ErrorCode
from hubbub.errors import ClientError, StoreError
from hubbub.node import Node
from hubbub.server.openapi import document

log = logging.getLogger(__name__)

API_NODE: Final = web.AppKey("api_node", Node)
API_SETTINGS: Final = web.AppKey("api_settings", Settings)
METHODS: Final = {**api.METHODS, "batch": api.batch}


def _error(status: int, code: int, message: str) -> web.Response:
    body = json.dumps({"error": {"code": code, "message": message}})
    return web.Response(status=status, text=body, content_type="application/json")


def _given_key(request: web.Request) -> str | None:
    key = request.headers.get("X-API-Key")
    if key:
        return key
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "apikey" and value.strip() else None


async def handle(request: web.Request) -> web.Response:
    settings = request.app[API_SETTINGS]
    if settings.api_key is None:
        return _error(
            401,
            ErrorCode.UNAUTHORIZED,
            "the server API is off: set an API key (--api-key, HUBBUB_API_KEY or api_key)",
        )
    given = _given_key(request)
    # surrogateescape: a header byte that is not UTF-8 arrives as a surrogate
    given_bytes = given.encode("utf-8", "surrogateescape") if given is not None else b""
    if given is None or not hmac.compare_digest(given_bytes, settings.api_key.encode()):
        return _error(401, ErrorCode.UNAUTHORIZED, "unauthorized: missing or wrong API key")
    name = request.match_info["method"]
    method = METHODS.get(name)
    if method is None:
        return _error(404, ErrorCode.METHOD_NOT_FOUND, f"method not found: {name}")
    limit = settings.api_max_body_size
    if request.content_length is not None and request.content_length > limit:
        return _error(413, ErrorCode.LIMIT_EXCEEDED, f"body is larger than {limit} bytes")
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return _error(413, ErrorCode.LIMIT_EXCEEDED, f"body is larger than {limit} bytes")
    try:
        params: Any = protocol.loads(raw) if raw.strip() else {}
    except ValueError as exc:
        return _error(400, ErrorCode.BAD_REQUEST, f"bad request: the body is {exc}")
    if not isinstance(params, dict):
        return _error(400, ErrorCode.BAD_REQUEST, "bad request: the body must be a JSON object")
    try:
        result = await method(request.app[API_NODE], params)
    except ClientError as exc:
        return _error(200, exc.code, exc.message)
    except StoreError as exc:
        log.warning("api %s failed: %s", name, exc)
        return _error(200, ErrorCode.INTERNAL, "internal server error")
    if name == "batch":
        return web.Response(text=result, content_type="application/json")
    return web.Response(text=f'{{"result":{result}}}', content_type="application/json")


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(document())


def add_routes(app: web.Application, settings: Settings, node: Node) -> None:
    """Mount ``/api/openapi.json`` and ``POST /api/{method}`` on ``app``."""
    app[API_SETTINGS] = settings
    app[API_NODE] = node
    app.router.add_get("/api/openapi.json", openapi)
    app.router.add_post("/api/{method}", handle)
