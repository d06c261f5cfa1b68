"""Data between the application's hooks and the wire formats.

Hooks see a client's data as a JSON value (or, from a Protobuf client whose data is not JSON,
as ``bytes``) and return JSON values or ``bytes``. What a wire can write is checked here,
before the client commits anything: bytes that are not JSON text cannot go to a JSON client,
and text that is not valid Unicode (a lone surrogate) cannot go anywhere. The application's
mistakes are error 100 (logged), as any failing hook is.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from hubbub.core import messages as m
from hubbub.core.codes import ErrorCode
from hubbub.core.jsontext import dumps
from hubbub.errors import ClientError, DisconnectError

log = logging.getLogger(__name__)


def required(value: str, field: str) -> str:
    """``value`` of a request's ``field``; 107 when it is empty (a channel, a token)."""
    if not value:
        raise ClientError(ErrorCode.BAD_REQUEST, f"bad request: {field} is required")
    return value


def for_hooks(payload: m.Payload | None) -> Any:
    """What a hook sees of a client's data: the JSON value, bytes, or None."""
    return None if payload is None else payload.value()


def is_unicode(text: str) -> bool:
    """Whether ``text`` can be written as UTF-8 (no lone surrogate), as every wire needs."""
    if text.isascii():
        return True
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def writable(text: str) -> str:
    """``text`` with what UTF-8 cannot hold replaced (an application's error message)."""
    return text if is_unicode(text) else text.encode(errors="replace").decode()


def info_text(value: Any) -> str | None:
    """Conn or chan info from a hook, as stored and shown to others: JSON text. Bytes are
    taken when they are JSON text; other bytes are error 100."""
    if value is None:
        return None
    if isinstance(value, bytes):
        payload = m.Payload.of_bytes(value)
        if payload.text is None:
            log.error("a hook returned info in bytes that are not JSON text")
            raise ClientError(ErrorCode.INTERNAL)
        return payload.text
    return dumps(value)


def hook_meta(value: Any) -> dict[str, Any]:
    """A connection's ``meta`` from on_connect: a JSON object (anything else is error 100)."""
    if not isinstance(value, dict):
        log.error("on_connect returned meta that is not a dict")
        raise ClientError(ErrorCode.INTERNAL)
    try:
        dumps(value)
    except (TypeError, ValueError):
        log.error("on_connect returned meta that is not JSON")
        raise ClientError(ErrorCode.INTERNAL) from None
    return value


def hook_data(value: Any, *, binary: bool) -> m.Data:
    """A hook's data for a client whose wire carries bytes (``binary``) or not: JSON text, or
    the bytes as they are; bytes a JSON client could not read are error 100."""
    if not isinstance(value, bytes):
        return dumps(value)
    if not binary and m.Payload.of_bytes(value).text is None:
        log.error("a hook returned bytes that are not JSON text to a JSON client")
        raise ClientError(ErrorCode.INTERNAL)
    return value


async def call_hook(fn: Callable[[Any], Awaitable[Any]], ctx: Any) -> Any:
    """Call an application hook: what it raises as ClientError or DisconnectError goes to the
    client; anything else is logged and becomes error 100."""
    try:
        return await fn(ctx)
    except (ClientError, DisconnectError):
        raise
    except Exception:
        log.exception("hook %s failed", getattr(fn, "__name__", fn))
        raise ClientError(ErrorCode.INTERNAL) from None
