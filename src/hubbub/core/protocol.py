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
- JSON means RFC 8259 JSON, in and out: a command holding NaN, Infinity, a number out of
  range or a lone surrogate escape is answered with 107 (the connection stays), and
  :func:`dumps` never writes them, so every push and reply is text ``JSON.parse`` takes.
"""

from __future__ import annotations

import json
import math
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

# ensure_ascii: text stays ASCII on the wire; allow_nan=False: NaN and Infinity, which JSON
# has no words for, raise ValueError instead of becoming text that JSON.parse throws on.
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode


class NotJSON(ValueError):
    """Text that is not RFC 8259 JSON; the message says what is wrong with it."""


class _NotRFC8259:
    """Stands in, while a fallback parse runs, for what RFC 8259 has no value for."""

    __slots__ = ("what",)

    def __init__(self, what: str) -> None:
        self.what = what


def _constant(name: str) -> _NotRFC8259:
    return _NotRFC8259(name)


def _float(text: str) -> float | _NotRFC8259:
    value = float(text)
    return value if math.isfinite(value) else _NotRFC8259(f"{text} (out of range)")


def _problem(value: Any) -> str | None:
    """What in ``value`` (a json.loads result) is not RFC 8259 JSON: NaN, Infinity, numbers
    out of range, lone surrogates; None when it is all JSON. Iterative: values may be deep."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, _NotRFC8259):
            return item.what
        if isinstance(item, str):
            if not item.isascii():
                try:
                    item.encode("utf-8")
                except UnicodeEncodeError:
                    return "a lone surrogate escape"
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return None


def _parse(text: str | bytes) -> tuple[Any, str | None]:
    """Parse JSON text: ``(value, None)``, or ``(value, problem)`` when the text parses but
    holds what RFC 8259 has no value for (the value then has stand-ins in those places).
    Raises ValueError for text that does not parse at all.

    orjson first (strict RFC 8259); what it refuses goes to json, whose hooks mark NaN,
    Infinity and numbers out of range, so that the command they came in can be answered."""
    try:
        return orjson.loads(text), None
    except orjson.JSONDecodeError:
        try:
            value = json.loads(text, parse_constant=_constant, parse_float=_float)
        except RecursionError:  # nested deeper than json can follow
            raise ValueError("JSON nested too deeply") from None
        return value, _problem(value)


def loads(text: str | bytes) -> Any:
    """Strict RFC 8259 JSON: raises :class:`NotJSON` (saying why) for anything else,
    including NaN, Infinity, numbers out of range and lone surrogate escapes."""
    try:
        value, problem = _parse(text)
    except ValueError as exc:
        raise NotJSON(f"not JSON: {exc}") from None
    if problem is not None:
        raise NotJSON(f"not RFC 8259 JSON: {problem}")
    return value


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
    """Compact, single-line, ASCII-only RFC 8259 JSON text. Raises ValueError for what JSON
    cannot hold (NaN, Infinity) and for values nested deeper than the encoder can follow."""
    try:
        return _dumps(value)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


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
            obj, problem = _parse(line)
        except ValueError:
            raise ProtocolViolation("command is not JSON") from None
        command = _command(obj)
        if problem is not None and command.problem is None and command.method:
            command = Command(command.id, command.method, {}, f"not RFC 8259 JSON: {problem}")
        commands.append(command)
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
    try:
        return dumps(params[field])
    except ValueError as exc:  # nested too deeply (what else is not JSON was refused before)
        raise _bad(field, f"is not usable JSON: {exc}") from None


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
