"""HTTP edge of the server API: ``POST /api/{method}`` with ``X-API-Key``.

Replies: ``200 {"result": ...}`` or ``200 {"error": {"code", "message"}}`` for a method's
error (as Centrifugo); ``401`` without the right key (or with no key configured: the message
says how to set one); ``400`` for a body that is not a JSON object; ``404`` for an unknown
method; ``413`` for a body over ``api_max_body_size``. Every error body is JSON.

``POST /api`` is the legacy format (Centrifugo v3/v4, gocent v3 and older clients): one
``{"method": ..., "params": {...}}`` command per line, one reply per line in the same order
(``{"result": ...}`` or ``{"error": ...}``, with the command's ``id`` when it has one), the
same key check and body limit. A line that is not a JSON object, or a bad ``method`` or
``params``, is error 107 in its place; an unknown method (``batch`` included: the legacy
format never had it) is 104; the other commands go on. More than :data:`LEGACY_MAX_COMMANDS`
commands is 413 before any runs; a body with no command is 400.
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
from hubbub.server.remote import client_of

log = logging.getLogger(__name__)

API_NODE: Final = web.AppKey("api_node", Node)
API_SETTINGS: Final = web.AppKey("api_settings", Settings)
METHODS: Final = {**api.METHODS, "batch": api.batch}

#: Most commands in one legacy ``POST /api`` body (more: 413, none of them run).
LEGACY_MAX_COMMANDS: Final = 1000
#: Centrifugo's ``Command.MethodType`` numbers, which its legacy endpoint takes for names.
LEGACY_METHOD_NUMBERS: Final = {
    0: "publish",
    1: "broadcast",
    2: "unsubscribe",
    3: "disconnect",
    4: "presence",
    5: "presence_stats",
    6: "history",
    7: "history_remove",
    8: "channels",
    9: "info",
    11: "subscribe",
    12: "refresh",
    14: "connections",
}


def _error(status: int, code: int, message: str) -> web.Response:
    body = json.dumps({"error": {"code": code, "message": message}})
    return web.Response(status=status, text=body, content_type="application/json")


def _given_key(request: web.Request) -> str | None:
    key = request.headers.get("X-API-Key")
    if key:
        return key
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "apikey" and value.strip() else None


def _refused(request: web.Request) -> web.Response | None:
    """The 401 for a request without the right key; None when the key is right."""
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
    return None


async def _body(request: web.Request) -> bytes | web.Response:
    """The request body, or the 413 for one over ``api_max_body_size``."""
    limit = request.app[API_SETTINGS].api_max_body_size
    if request.content_length is not None and request.content_length > limit:
        return _error(413, ErrorCode.LIMIT_EXCEEDED, f"body is larger than {limit} bytes")
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        return _error(413, ErrorCode.LIMIT_EXCEEDED, f"body is larger than {limit} bytes")


async def handle(request: web.Request) -> web.Response:
    refused = _refused(request)
    if refused is not None:
        return refused
    name = request.match_info["method"]
    method = METHODS.get(name)
    if method is None:
        return _error(404, ErrorCode.METHOD_NOT_FOUND, f"method not found: {name}")
    raw = await _body(request)
    if isinstance(raw, web.Response):
        return raw
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
        log.warning("api %s from %s failed: %s", name, client_of(request), exc)
        return _error(200, ErrorCode.INTERNAL, "internal server error")
    if name == "batch":
        return web.Response(text=result, content_type="application/json")
    return web.Response(text=f'{{"result":{result}}}', content_type="application/json")


def _commands(raw: bytes) -> list[bytes]:
    """The commands of a legacy body: one per non-blank line, or the whole body when it is
    one JSON object written over several lines (as Centrifugo's JSON-stream reader takes)."""
    lines = [line.strip() for line in raw.split(b"\n")]
    lines = [line for line in lines if line]
    if len(lines) > 1 and raw.lstrip().startswith(b"{"):
        try:
            whole = protocol.loads(raw)
        except ValueError:
            pass
        else:
            if isinstance(whole, dict):
                return [raw.strip()]
    return lines


def _legacy_method(command: dict[str, Any]) -> str:
    name = command.get("method")
    if isinstance(name, int) and not isinstance(name, bool):
        if name not in LEGACY_METHOD_NUMBERS:
            raise ClientError(ErrorCode.METHOD_NOT_FOUND, f"method not found: {name}")
        return LEGACY_METHOD_NUMBERS[name]
    if not isinstance(name, str) or not name:
        raise ClientError(ErrorCode.BAD_REQUEST, "bad request: method must be a string")
    if name.lower() not in api.METHODS:  # batch is not a legacy method
        raise ClientError(ErrorCode.METHOD_NOT_FOUND, f"method not found: {name}")
    return name.lower()


async def _legacy_reply(node: Node, line: bytes) -> str:
    """One reply line for one command line; never raises for what the client sent."""
    prefix = ""
    try:
        try:
            command = protocol.loads(line)
        except ValueError as exc:
            raise ClientError(ErrorCode.BAD_REQUEST, f"bad request: the command is {exc}") from None
        if not isinstance(command, dict):
            raise ClientError(ErrorCode.BAD_REQUEST, "bad request: a command must be a JSON object")
        cid = command.get("id")
        if isinstance(cid, (int, str)) and not isinstance(cid, bool) and cid:
            prefix = f'"id":{protocol.dumps(cid)},'
        name = _legacy_method(command)
        params = command.get("params")
        if params is None:
            params = {}
        if not isinstance(params, dict):
            raise ClientError(ErrorCode.BAD_REQUEST, "bad request: params must be an object")
        try:
            result = await api.METHODS[name](node, params)
        except StoreError as exc:
            log.warning("api %s failed: %s", name, exc)
            raise ClientError(ErrorCode.INTERNAL, "internal server error") from None
    except ClientError as exc:
        error = protocol.dumps({"code": exc.code, "message": exc.message})
        return f'{{{prefix}"error":{error}}}'
    return f'{{{prefix}"result":{result}}}'


async def legacy(request: web.Request) -> web.Response:
    """``POST /api``: newline-delimited ``{"method", "params"}`` commands, run in order."""
    refused = _refused(request)
    if refused is not None:
        return refused
    raw = await _body(request)
    if isinstance(raw, web.Response):
        return raw
    commands = _commands(raw)
    if not commands:
        return _error(400, ErrorCode.BAD_REQUEST, "bad request: no command in the body")
    if len(commands) > LEGACY_MAX_COMMANDS:
        return _error(
            413,
            ErrorCode.LIMIT_EXCEEDED,
            f"more than {LEGACY_MAX_COMMANDS} commands in one request",
        )
    node = request.app[API_NODE]
    replies = [await _legacy_reply(node, line) for line in commands]
    # "\n" between replies and none after the last, as Centrifugo writes them
    return web.Response(text="\n".join(replies), content_type="application/json")


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(document())


def add_routes(app: web.Application, settings: Settings, node: Node) -> None:
    """Mount ``/api/openapi.json``, ``POST /api/{method}`` and the legacy ``POST /api``."""
    app[API_SETTINGS] = settings
    app[API_NODE] = node
    app.router.add_get("/api/openapi.json", openapi)
    app.router.add_post("/api/{method}", handle)
    app.router.add_post("/api", legacy)
