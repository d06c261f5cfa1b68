"""Proxy request and response bodies, as Centrifugo's HTTP proxy writes and reads them. Pure.

Requests (:func:`connect_request`, ...) are JSON objects of the fields of Centrifugo's
``proxy.proto`` (``client``, ``transport``, ``protocol``, ``encoding``, then ``user``,
``channel``, ``method``, ``meta``, ``data`` ...), empty ones left out as Centrifugo leaves
them out, except ``user``, always there for the events of a connected client. A client's
data goes as ``data`` (the JSON value, its text as the client sent it) with ``encoding:
"json"``; data that is not JSON (a Protobuf client's bytes) goes as ``b64data`` with
``encoding: "binary"``.

Responses are ``{"result": {...}}``, ``{"error": {"code", "message", "temporary"}}`` or
``{"disconnect": {"code", "reason"}}`` (a disconnect wins over an error, as in Centrifugo).
The parsers (:func:`connect_answer`, ...) guarantee:

- the backend's ``error`` is raised as :class:`hubbub.errors.ClientError` with its code,
  message and ``temporary`` unchanged; its ``disconnect`` as
  :class:`hubbub.errors.DisconnectError` (codes 3000-4999: 4500 and up tell SDKs not to
  reconnect, as the protocol says);
- anything that is not such a body (not JSON, not an object, a field of the wrong type,
  base64 that does not decode, info that is not JSON) raises :class:`BadResponse` naming
  what is wrong; never another exception;
- ``data`` and ``info`` come out as JSON text (``b64data`` wins over ``data`` when it is a
  non-empty string, as ``b64info`` over ``info``, except in a publish answer, where ``data``
  wins: Centrifugo's order for each); ``b64data`` that is not JSON text comes out as
  ``bytes`` where Protobuf clients can take it (connect, subscribe and RPC data);
- field names match as Centrifugo's decoder (Go's) matches them: case-insensitively, an
  exact match winning (``{"Result": {"User": "u"}}`` is ``{"result": {"user": "u"}}``, what a
  Go backend without JSON tags writes); keys that are values (channels of ``subs``, tags,
  what ``info``, ``data`` and ``meta`` hold) stay as they are;
- ``expire_at`` is a Unix time in seconds (an integer); 0, negative or absent is None (no
  expiry), as Centrifugo reads only an ``expire_at`` above 0. How far ahead it may be is the
  caller's business (:mod:`hubbub.dialects.centrifuge.tokens` caps it at a year).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from hubbub import claims
from hubbub.claims import ClaimError, Override, SubscribeOptions
from hubbub.core import messages as m
from hubbub.core.jsontext import NotJSON, dumps, loads
from hubbub.errors import ClientError, DisconnectError

#: The proxy kinds, as the metrics' ``kind`` label names them.
KINDS: Final = ("connect", "refresh", "subscribe", "publish", "sub_refresh", "rpc")
#: Headers never forwarded, even when configured: the proxy request's own.
NOT_FORWARDED: Final = frozenset(
    {"host", "content-length", "content-type", "connection", "transfer-encoding", "upgrade",
     "keep-alive", "te", "trailer", "proxy-connection", "expect"}
)  # fmt: skip


class BadResponse(ValueError):
    """A proxy response that is not one of Centrifugo's bodies; the message says why."""


@dataclass(frozen=True, slots=True)
class Caller:
    """The connection a request is about: its id, Centrifugo's name of what carries it
    (``websocket``, ``sse``, ``uni_http_stream``, ...), its protocol (``json``,
    ``protobuf``), its user and meta (None: none)."""

    client: str
    transport: str
    protocol: str
    user: str = ""
    meta: Mapping[str, Any] | None = None


# -- requests --------------------------------------------------------------------------------


def _body(caller: Caller, data: m.Payload | None, with_user: bool, **fields: Any) -> bytes:
    """The JSON body: the caller's fields, ``fields`` without the empty ones, the data."""
    binary = data is not None and data.text is None
    head: dict[str, Any] = {
        "client": caller.client,
        "transport": caller.transport,
        "protocol": caller.protocol,
        "encoding": "binary" if binary else "json",
    }
    if with_user:
        head["user"] = caller.user
    head.update((k, v) for k, v in fields.items() if v)
    if caller.meta is not None:
        head["meta"] = caller.meta
    if data is not None and data.binary is not None:
        head["b64data"] = base64.b64encode(data.binary).decode()
    text = dumps(head)
    if data is not None and data.text is not None:  # the client's JSON text, as it sent it
        text = f'{text[:-1]},"data":{data.text}}}'
    return text.encode()


def connect_request(
    caller: Caller,
    data: m.Payload | None,
    name: str = "",
    version: str = "",
    channels: list[str] | None = None,
) -> bytes:
    """A connect: the client's connect data, app name and version, the channels it asks for."""
    return _body(caller, data, False, name=name, version=version, channels=channels)


def refresh_request(caller: Caller) -> bytes:
    return _body(caller, None, True)


def subscribe_request(
    caller: Caller, channel: str, token: str = "", data: m.Payload | None = None
) -> bytes:
    return _body(caller, data, True, channel=channel, token=token)


def publish_request(caller: Caller, channel: str, data: m.Payload) -> bytes:
    return _body(caller, data, True, channel=channel)


def rpc_request(caller: Caller, method: str, data: m.Payload | None) -> bytes:
    return _body(caller, data, True, method=method)


def sub_refresh_request(caller: Caller, channel: str) -> bytes:
    return _body(caller, None, True, channel=channel)


def forwarded_headers(
    handshake: Mapping[str, str],
    emulated: Mapping[str, str],
    http_names: tuple[str, ...],
    emulated_names: tuple[str, ...],
    address: str = "",
) -> dict[str, str]:
    """The headers a proxy request carries from a connection: the emulated headers named in
    ``emulated_names``, then the handshake's named in ``http_names`` (winning over an emulated
    one of the same name), then ``X-Real-IP`` and ``X-Forwarded-For`` set to ``address`` (the
    client's, ``trusted_proxies`` applied) whatever the client sent, or left out when there is
    no address (never the client's own). Names are compared lowercased and sent lowercased;
    values with a control character (CR, LF, NUL, ...: what HTTP forbids in a field value;
    tab is allowed) and the request's own headers (:data:`NOT_FORWARDED`) are left out."""
    out: dict[str, str] = {}
    for names, headers in ((emulated_names, emulated), (http_names, handshake)):
        if not names:
            continue
        for name, value in headers.items():
            low = name.lower()
            if low in names and low not in NOT_FORWARDED and _clean(value):
                out[low] = value
    out.pop("x-real-ip", None)
    out.pop("x-forwarded-for", None)
    if address:
        out["x-real-ip"] = out["x-forwarded-for"] = address
    return out


#: What HTTP forbids in a field value (RFC 9110 5.5): controls but tab, and DEL.
_FORBIDDEN: Final = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def _clean(value: str) -> bool:
    return _FORBIDDEN.search(value) is None


# -- responses -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConnectAnswer:
    """Who the connecting client is. ``channels``: server-side subscriptions (``channels``
    and ``subs`` together, once each); ``subs``: the options given per channel."""

    user: str = ""
    expire_at: int | None = None
    info: str | None = None
    data: m.Data | None = None
    channels: list[str] = field(default_factory=list)
    subs: dict[str, SubscribeOptions] = field(default_factory=dict)
    meta: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class RefreshAnswer:
    expired: bool = False
    expire_at: int | None = None
    info: str | None = None
    meta: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class SubscribeAnswer:
    expire_at: int | None = None
    info: str | None = None
    data: m.Data | None = None
    override: Override | None = None


@dataclass(frozen=True, slots=True)
class PublishAnswer:
    """``data``: the publication's data instead of the client's (None: the client's)."""

    data: str | None = None
    skip_history: bool = False
    tags: dict[str, str] | None = None
    idempotency_key: str | None = None
    delta: bool = False


@dataclass(frozen=True, slots=True)
class SubRefreshAnswer:
    expired: bool = False
    expire_at: int | None = None
    info: str | None = None


def connect_answer(body: bytes) -> ConnectAnswer | None:
    """The connect proxy's answer; None when it has no ``result`` (the server then treats the
    client as without credentials)."""
    result = _result(body)
    if result is None:
        return None
    channels = _str_list(result, "channels")
    subs_raw = _typed(result, "subs", dict, {})
    subs: dict[str, SubscribeOptions] = {}
    for channel, entry in subs_raw.items():
        if type(entry) is not dict:
            raise BadResponse(f"result.subs.{channel} must be an object")
        options = _with_override(_fold(entry))
        subs[channel] = _claims(claims.subscribe_options, options, f"result.subs.{channel}.")
    return ConnectAnswer(
        user=_typed(result, "user", str, ""),
        expire_at=_expire_at(result),
        info=_claims(claims.info, result, "result."),
        data=_data(result),
        channels=list(dict.fromkeys([*channels, *subs])),
        subs={ch: o for ch, o in subs.items() if o != claims.NO_OPTIONS},
        meta=_claims(claims.meta, result),
    )


def refresh_answer(body: bytes) -> RefreshAnswer:
    """The refresh proxy's answer; no ``result`` means expired (as in Centrifugo)."""
    result = _result(body)
    if result is None:
        return RefreshAnswer(expired=True)
    return RefreshAnswer(
        expired=_typed(result, "expired", bool, False),
        expire_at=_expire_at(result),
        info=_claims(claims.info, result, "result."),
        meta=_claims(claims.meta, result),
    )


def subscribe_answer(body: bytes) -> SubscribeAnswer:
    """The subscribe proxy's answer; no ``result`` subscribes with the namespace's options."""
    result = _result(body)
    if result is None:
        return SubscribeAnswer()
    override = _claims(claims.override, _with_override(result).get("override"))
    return SubscribeAnswer(
        _expire_at(result), _claims(claims.info, result, "result."), _data(result), override
    )


def publish_answer(body: bytes) -> PublishAnswer:
    """The publish proxy's answer: the data (JSON only: publications are JSON in hubbub),
    ``skip_history``, ``tags``, ``idempotency_key``, ``delta``."""
    result = _result(body)
    if result is None:
        return PublishAnswer()
    data = dumps(result["data"]) if result.get("data") is not None else _data(result)
    if isinstance(data, bytes):
        raise BadResponse("result.b64data must be base64 of JSON text: publications are JSON")
    tags = _typed(result, "tags", dict, None)
    if tags is not None and not all(type(v) is str for v in tags.values()):
        raise BadResponse("result.tags must be an object of strings")
    return PublishAnswer(
        data,
        _typed(result, "skip_history", bool, False),
        tags or None,
        _typed(result, "idempotency_key", str, "") or None,
        _typed(result, "delta", bool, False),
    )


def rpc_answer(body: bytes) -> m.Data | None:
    """The RPC proxy's answer: the data for the client (None: none)."""
    result = _result(body)
    return None if result is None else _data(result)


def sub_refresh_answer(body: bytes) -> SubRefreshAnswer:
    """The sub refresh proxy's answer; no ``result`` means expired (as in Centrifugo)."""
    result = _result(body)
    if result is None:
        return SubRefreshAnswer(expired=True)
    return SubRefreshAnswer(
        _typed(result, "expired", bool, False),
        _expire_at(result),
        _claims(claims.info, result, "result."),
    )


def _result(body: bytes) -> dict[str, Any] | None:
    """The ``result`` object of a response; raises the backend's disconnect or error."""
    try:
        parsed = loads(body)
    except (NotJSON, UnicodeDecodeError):
        raise BadResponse("the body is not JSON") from None
    if type(parsed) is not dict:
        raise BadResponse("the body is not a JSON object")
    parsed = _fold(parsed)
    disconnect = _object(parsed, "disconnect")
    if disconnect is not None:
        code = _typed(disconnect, "code", int, 0)
        if not 3000 <= code <= 4999:
            raise BadResponse(f"disconnect.code {code} is not in 3000-4999")
        raise DisconnectError(code, _typed(disconnect, "reason", str, ""))
    error = _object(parsed, "error")
    if error is not None:
        code = _typed(error, "code", int, 0)
        if not 0 < code < 2**32:
            raise BadResponse(f"error.code {code} is not a positive 32-bit number")
        message = _typed(error, "message", str, "")
        raise ClientError(code, message or None, temporary=_typed(error, "temporary", bool, False))
    return _object(parsed, "result")


def _fold(obj: dict[str, Any]) -> dict[str, Any]:
    """``obj`` with its keys lowercased, as Go's decoder matches keys to field names
    (case-insensitively; an exact match wins, else the last of a name)."""
    if all(k.islower() for k in obj):  # the usual case
        return obj
    out: dict[str, Any] = {}
    for key, value in obj.items():
        low = key.lower()
        if low == key or low not in obj:
            out[low] = value
    return out


def _object(obj: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    """The object field ``name`` (None: absent or null), its keys folded (:func:`_fold`)."""
    value = _typed(obj, name, dict, None)
    return None if value is None else _fold(value)


def _with_override(options: dict[str, Any]) -> dict[str, Any]:
    """``options`` with its ``override`` object (and each ``{"value": ...}`` in it) folded."""
    raw = options.get("override")
    if type(raw) is not dict:
        return options
    boxes = {k: _fold(v) if type(v) is dict else v for k, v in _fold(raw).items()}
    return {**options, "override": boxes}


def _typed(obj: Mapping[str, Any], name: str, kind: type, default: Any) -> Any:
    """``obj[name]`` when it is a ``kind`` (null and absent: ``default``); BadResponse else."""
    value = obj.get(name)
    if value is None:
        return default
    if type(value) is not kind:  # (bool is not int here)
        raise BadResponse(f"{name} must be a JSON {_KIND_NAMES[kind]}")
    return value


_KIND_NAMES: Final = {str: "string", int: "integer", bool: "boolean", dict: "object", list: "array"}


def _str_list(obj: Mapping[str, Any], name: str) -> list[str]:
    value = _typed(obj, name, list, [])
    if not all(type(v) is str and v for v in value):
        raise BadResponse(f"result.{name} must be an array of channel names")
    return list(value)


def _expire_at(result: Mapping[str, Any]) -> int | None:
    value: int = _typed(result, "expire_at", int, 0)
    return value if value > 0 else None


def _data(result: Mapping[str, Any]) -> m.Data | None:
    """``b64data`` (a non-empty string) decoded, else ``data`` as JSON text; bytes that are
    not JSON text stay bytes."""
    b64 = _typed(result, "b64data", str, "")
    if b64:
        try:
            raw = base64.b64decode(b64, validate=True)
        except ValueError:  # binascii.Error, and non-ASCII text
            raise BadResponse("result.b64data is not base64") from None
        payload = m.Payload.of_bytes(raw)
        return payload.text if payload.text is not None else raw
    value = result.get("data")
    return None if value is None else dumps(value)


def _claims(fn: Any, *args: Any) -> Any:
    """A reader of :mod:`hubbub.claims` (the same shapes as the proxy's), its errors as
    BadResponse."""
    try:
        return fn(*args)
    except ClaimError as exc:
        raise BadResponse(str(exc)) from None
