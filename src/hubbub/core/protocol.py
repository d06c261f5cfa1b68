"""The JSON variant of the Centrifugo client protocol: decoding commands, encoding replies.

Rules of this module:

- A frame holds one or more JSON objects separated by newlines. Each command is
  ``{"id": N, "<method>": {...}}``; a command with no method at all (``{}``) is the client's pong.
- ``data`` and ``info`` payloads are JSON values embedded as they are. Inside hubbub they travel
  as JSON *text* (``str``) so that a publication is serialised once and the same text is pasted
  into every push.
- :func:`decode_frame` raises :class:`ProtocolViolation` for what must disconnect the client
  (not JSON, not an object, bad id) and returns :class:`Command` objects whose ``params`` are
  checked later by :func:`require_*` helpers, which raise :class:`hubbub.errors.ClientError`
  (107 bad request) for a missing or mistyped field.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import orjson

from hubbub.core.codes import ErrorCode
from hubbub.errors import ClientError

METHODS: Final = (
    "connect",
    "subscribe",
    "unsubscribe",
    "publish",
    "presence",
    "presence_stats",
    "history",
    "ping",
    "send",
    "rpc",
    "refresh",
    "sub_refresh",
)
_METHOD_SET: Final = frozenset(METHODS)
MAX_COMMAND_ID: Final = 2**32 - 1

# ensure_ascii: a lone surrogate ("\ud800") in client JSON stays an escape instead of becoming
# text that cannot be encoded to UTF-8.
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True).encode


def _loads(text: str) -> Any:
    """``json.loads``, through orjson when it takes the text: orjson is strict RFC 8259 and
    refuses the few things json accepts beyond it (NaN, integers past 64 bits, lone
    surrogates), which then go to json, so what is accepted and how it reads stays json's."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        try:
            return json.loads(text)
        except RecursionError:  # nested deeper than json can follow
            raise ValueError("JSON nested too deeply") from None


class ProtocolViolation(Exception):
    """The frame cannot be understood at all; the client is disconnected (3501)."""


@dataclass(slots=True)  # not frozen: made once per command, frozen init costs twice as much
class Command:
    """One decoded command. ``method`` is ``""`` for a pong, ``None`` for an unknown method;
    ``problem`` says why the command is malformed (its params are then empty)."""

    id: int
    method: str | None
    params: Mapping[str, Any]
    problem: str | None = None


def dumps(value: Any) -> str:
    """Compact, single-line, ASCII-only JSON text."""
    return _dumps(value)


def decode_frame(frame: str | bytes) -> list[Command]:
    """Split and decode one WebSocket message into commands."""
    if isinstance(frame, bytes):
        try:
            frame = frame.decode()
        except UnicodeDecodeError:
            raise ProtocolViolation("frame is not UTF-8") from None
    commands = []
    for line in frame.split("\n") if "\n" in frame else (frame,):
        if not line or line.isspace():
            continue
        try:
            obj = _loads(line)
        except ValueError:
            raise ProtocolViolation("command is not JSON") from None
        commands.append(_command(obj))
    if not commands:
        raise ProtocolViolation("empty frame")
    return commands


def _command(obj: Any) -> Command:
    if not isinstance(obj, dict):
        raise ProtocolViolation("command is not a JSON object")
    cid = obj.get("id", 0)
    if type(cid) is not int or not 0 <= cid <= MAX_COMMAND_ID:
        raise ProtocolViolation("command id must be an unsigned 32-bit integer")
    if len(obj) - ("id" in obj) == 1:  # the usual shape: one method beside the id
        for method in obj:
            if method != "id":
                break
        if method not in _METHOD_SET:
            return Command(cid, None, {})
    else:
        methods = [key for key in obj if key != "id"]
        if not methods:
            return Command(cid, "", {})
        known = [m for m in methods if m in _METHOD_SET]
        if len(known) != 1:
            return Command(cid, None, {})
        method = known[0]
    params = obj[method]
    if params is None:
        params = {}
    if not isinstance(params, dict):
        return Command(cid, method, {}, f"{method} must be an object")
    return Command(cid, method, params)


# -- reading fields -------------------------------------------------------------------------


def _bad(field: str, what: str) -> ClientError:
    return ClientError(ErrorCode.BAD_REQUEST, f"bad request: {field} {what}")


def require_str(params: Mapping[str, Any], field: str, *, allow_empty: bool = False) -> str:
    value = params.get(field)
    if not isinstance(value, str):
        raise _bad(field, "must be a string")
    if not value and not allow_empty:
        raise _bad(field, "is required")
    return value


def optional_str(params: Mapping[str, Any], field: str) -> str:
    value = params.get(field, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _bad(field, "must be a string")
    return value


def optional_int(params: Mapping[str, Any], field: str, default: int = 0) -> int:
    value = params.get(field, default)
    if value is None:
        return default
    # Protobuf's JSON mapping writes 64-bit integers as strings; accept both.
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if type(value) is not int:
        raise _bad(field, "must be an integer")
    return value


def optional_bool(params: Mapping[str, Any], field: str) -> bool:
    value = params.get(field, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise _bad(field, "must be a boolean")
    return value


def data_text(params: Mapping[str, Any], field: str = "data", *, required: bool = False) -> str:
    """The JSON value in ``field`` as JSON text (``"null"`` when absent and not required)."""
    if field not in params or params[field] is None:
        if required:
            raise _bad(field, "is required")
        return "null"
    return dumps(params[field])


# -- writing replies and pushes -------------------------------------------------------------


def reply(cid: int, method: str, result_json: str = "{}") -> str:
    """A successful reply; ``result_json`` is the result object as JSON text."""
    return f'{{"id":{cid},"{method}":{result_json}}}'


def error_reply(cid: int, error: ClientError) -> str:
    body: dict[str, Any] = {"code": error.code, "message": error.message}
    if error.temporary:
        body["temporary"] = True
    return f'{{"id":{cid},"error":{dumps(body)}}}'


def push(channel: str, kind: str, body_json: str) -> str:
    """A push; ``body_json`` is the push body (e.g. a publication) as JSON text."""
    if channel:
        return f'{{"push":{{"channel":{dumps(channel)},"{kind}":{body_json}}}}}'
    return f'{{"push":{{"{kind}":{body_json}}}}}'


PING: Final = "{}"


def join_frames(messages: Iterable[str]) -> str:
    """Several replies/pushes in one WebSocket message."""
    return "\n".join(messages)
