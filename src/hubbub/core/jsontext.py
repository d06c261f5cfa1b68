"""JSON text as hubbub reads and writes it: RFC 8259 only, in and out.

- :func:`loads` raises :class:`NotJSON` for NaN, Infinity, numbers out of range, lone
  surrogate escapes and nesting too deep to follow; :func:`parse` says what is wrong instead,
  for a codec that answers the command rather than failing the frame.
- :func:`dumps` writes compact, single-line, ASCII-only text and never writes what JSON has no
  words for, so everything hubbub writes is text ``JSON.parse`` takes.
- ``data`` and ``info`` payloads travel inside hubbub as JSON *text* (``str``), so that a
  publication is serialised once and the same text is pasted into every message.
- The field readers (:func:`require_str`, ...) take a parsed JSON object's fields for the
  server API and raise :class:`hubbub.errors.ClientError` (107) for a missing or mistyped one.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any, Final

import orjson

from hubbub.core.codes import ErrorCode
from hubbub.errors import ClientError

# ensure_ascii: text stays ASCII on the wire; allow_nan=False: NaN and Infinity, which JSON
# has no words for, raise ValueError instead of becoming text that JSON.parse throws on.
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode
#: What that encoder writes for a ``str`` (its own first step for one), without the call
#: layers around it: the usual data of a command is a string.
_dumps_str: Final = json.encoder.encode_basestring_ascii


#: A run of 19 or more digits: an integer orjson would read as a float, losing digits (it
#: keeps integers only within 64 bits; -9999999999999999999 already is past them). Text with
#: one goes to json, whose integers are exact (a long fraction goes there too: same value).
_LONG_DIGITS: Final = re.compile(rb"[0-9]{19}")
#: Every byte but the ASCII digits: what ``bytes.translate`` deletes to count the digits.
_NOT_DIGITS: Final = bytes(c for c in range(256) if not 0x30 <= c <= 0x39)


def _lossless_in_orjson(text: str | bytes) -> bool:
    """Whether orjson reads ``text``'s numbers exactly: a digit count first (~0.2 us for a
    usual command), the search only for text with 19 digits or more in all."""
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    if len(data.translate(None, _NOT_DIGITS)) < 19:
        return True
    return _LONG_DIGITS.search(data) is None


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


def parse(text: str | bytes) -> tuple[Any, str | None]:
    """Parse JSON text: ``(value, None)``, or ``(value, problem)`` when the text parses but
    holds what RFC 8259 has no value for (the value then has stand-ins in those places).
    Raises ValueError for text that does not parse at all.

    orjson first (strict RFC 8259); what it refuses goes to json, whose hooks mark NaN,
    Infinity and numbers out of range, so that the command they came in can be answered.
    Integers are exact whatever their size (text with one past 64 bits goes to json)."""
    try:
        if _lossless_in_orjson(text):
            return orjson.loads(text), None
        if isinstance(text, bytes):
            text = text.decode()  # (UTF-8 or not JSON; UnicodeDecodeError is a ValueError)
        raise orjson.JSONDecodeError("an integer past 64 bits", "", 0)
    except orjson.JSONDecodeError:
        try:
            value = json.loads(text, parse_constant=_constant, parse_float=_float)
        except RecursionError:  # nested deeper than json can follow
            raise ValueError("JSON nested too deeply") from None
        return value, _problem(value)


def loads(text: str | bytes) -> Any:
    """Strict RFC 8259 JSON: raises :class:`NotJSON` (saying why) for anything else,
    including NaN, Infinity, numbers out of range, lone surrogate escapes and nesting deeper
    than Python's own parser follows (so every JSON client can read what is accepted)."""
    try:
        if not _lossless_in_orjson(text):  # (an integer past 64 bits: exact through json)
            raise orjson.JSONDecodeError("an integer past 64 bits", "", 0)
        value = orjson.loads(text)  # the usual case, without parse()'s bookkeeping
    except orjson.JSONDecodeError:
        try:
            # Bytes are UTF-8 or not JSON: json's fallback would guess UTF-16/32 or skip a
            # BOM, and take text that no JSON client parses.
            value, problem = parse(text.decode() if isinstance(text, bytes) else text)
        except ValueError as exc:  # UnicodeDecodeError included
            raise NotJSON(f"not JSON: {exc}") from None
        if problem is not None:
            raise NotJSON(f"not RFC 8259 JSON: {problem}") from None
    if len(text) > 2 * _DEEP and _may_be_deep(text):  # shorter text cannot open that many
        try:
            json.loads(text)  # C speed; its recursion limit is what centrifuge-python meets
        except RecursionError:
            raise NotJSON("not JSON: nested too deeply") from None
    return value


#: Arrays and objects that text may open before its depth is checked (a cheap count first).
_DEEP: Final = 256


def _may_be_deep(text: str | bytes) -> bool:
    if isinstance(text, str):
        return text.count("[") + text.count("{") > _DEEP
    return text.count(b"[") + text.count(b"{") > _DEEP


def dumps(value: Any) -> str:
    """Compact, single-line, ASCII-only RFC 8259 JSON text. Raises ValueError for what JSON
    cannot hold (NaN, Infinity) and for values nested deeper than the encoder can follow."""
    if type(value) is str:
        return _dumps_str(value)
    try:
        return _dumps(value)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


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
