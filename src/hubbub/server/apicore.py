"""The server API over HTTP, whatever edge serves it: the key check, the method call and the
legacy body, as ``(status, JSON text)`` replies. The aiohttp routes (:mod:`hubbub.server.api`)
and the ASGI edge (:mod:`hubbub.server.asgi`) both answer with these, so their replies are the
same. What the replies are: :mod:`hubbub.server.api`. No I/O beyond the node's own.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Mapping
from typing import Any, Final

from hubbub import api
from hubbub.config import Settings
from hubbub.core import jsontext as protocol
from hubbub.core.codes import ErrorCode
from hubbub.errors import ClientError, StoreError
from hubbub.node import Node

log = logging.getLogger("hubbub.server.api")

#: A reply: the HTTP status and its JSON body.
Reply = tuple[int, str]

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


def error(status: int, code: int, message: str) -> Reply:
    return status, json.dumps({"error": {"code": code, "message": message}})


def given_key(headers: Mapping[str, str]) -> str | None:
    """The key a request carries: ``X-API-Key``, else ``Authorization: apikey <key>``."""
    key = headers.get("X-API-Key")
    if key:
        return key
    scheme, _, value = headers.get("Authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "apikey" and value.strip() else None


def refused(settings: Settings, headers: Mapping[str, str]) -> Reply | None:
    """The 401 for a request without the right key; None when the key is right."""
    if settings.api_key is None:
        return error(
            401,
            ErrorCode.UNAUTHORIZED,
            "the server API is off: set an API key (--api-key, HUBBUB_API_KEY or api_key)",
        )
    given = given_key(headers)
    # surrogateescape: a header byte that is not UTF-8 arrives as a surrogate
    given_bytes = given.encode("utf-8", "surrogateescape") if given is not None else b""
    if given is None or not hmac.compare_digest(given_bytes, settings.api_key.encode()):
        return error(401, ErrorCode.UNAUTHORIZED, "unauthorized: missing or wrong API key")
    return None


def too_large(limit: int) -> Reply:
    """The 413 for a body over ``api_max_body_size``."""
    return error(413, ErrorCode.LIMIT_EXCEEDED, f"body is larger than {limit} bytes")


def too_slow() -> Reply:
    """The 408 for a body not all there within ``handshake_timeout``."""
    return error(408, ErrorCode.BAD_REQUEST, "the request body did not come in time")


def known(name: str) -> Reply | None:
    """The 404 for a method that does not exist; None when it does."""
    if name in METHODS:
        return None
    return error(404, ErrorCode.METHOD_NOT_FOUND, f"method not found: {name}")


async def call(node: Node, name: str, raw: bytes, client: str = "") -> Reply:
    """``POST /api/{name}`` with body ``raw`` (a method :func:`known` says exists) from the
    client at address ``client`` (for the log)."""
    method = METHODS[name]
    try:
        params: Any = protocol.loads(raw) if raw.strip() else {}
    except ValueError as exc:
        return error(400, ErrorCode.BAD_REQUEST, f"bad request: the body is {exc}")
    if not isinstance(params, dict):
        return error(400, ErrorCode.BAD_REQUEST, "bad request: the body must be a JSON object")
    try:
        result = await method(node, params)
    except ClientError as exc:
        return error(200, exc.code, exc.message)
    except StoreError as exc:
        log.warning("api %s from %s failed: %s", name, client or "?", exc)
        return error(200, ErrorCode.INTERNAL, "internal server error")
    if name == "batch":
        return 200, result
    return 200, f'{{"result":{result}}}'


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


async def _legacy_reply(node: Node, line: bytes, client: str) -> str:
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
            log.warning("api %s from %s failed: %s", name, client or "?", exc)
            raise ClientError(ErrorCode.INTERNAL, "internal server error") from None
    except ClientError as exc:
        error = protocol.dumps({"code": exc.code, "message": exc.message})
        return f'{{{prefix}"error":{error}}}'
    return f'{{{prefix}"result":{result}}}'


async def call_legacy(node: Node, raw: bytes, client: str = "") -> Reply:
    """``POST /api`` with body ``raw``: newline-delimited ``{"method", "params"}`` commands,
    run in order, from the client at address ``client`` (for the log)."""
    commands = _commands(raw)
    if not commands:
        return error(400, ErrorCode.BAD_REQUEST, "bad request: no command in the body")
    if len(commands) > LEGACY_MAX_COMMANDS:
        return error(
            413,
            ErrorCode.LIMIT_EXCEEDED,
            f"more than {LEGACY_MAX_COMMANDS} commands in one request",
        )
    replies = [await _legacy_reply(node, line, client) for line in commands]
    # "\n" between replies and none after the last, as Centrifugo writes them
    return 200, "\n".join(replies)
