"""The server API's methods, independent of HTTP: ``params`` in, result JSON text out.

Request and result shapes follow Centrifugo's server API, so its clients (``cent`` on PyPI and
others) work unchanged. Methods raise :class:`hubbub.errors.ClientError` with the protocol's
codes (102 unknown channel, 107 bad request, 108 not available, ...).
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

from hubbub import claims
from hubbub.control import Control
from hubbub.core import jsontext as p
from hubbub.core import messages as m
from hubbub.core.codes import Disconnects, ErrorCode
from hubbub.core.publishlatency import Source
from hubbub.dialects.centrifuge import jsonwire, reads
from hubbub.engines.base import MAX_IDEMPOTENCY_KEY
from hubbub.errors import ClientError
from hubbub.node import Node

Method = Callable[[Node, Mapping[str, Any]], Awaitable[str]]

#: Sent by ``disconnect`` when the request names no code: the SDK does not reconnect.
DEFAULT_DISCONNECT: Final = Disconnects.FORCE_NO_RECONNECT


def _bad(message: str) -> ClientError:
    return ClientError(ErrorCode.BAD_REQUEST, f"bad request: {message}")


def _tags(params: Mapping[str, Any]) -> dict[str, str] | None:
    tags = params.get("tags")
    if tags is None:
        return None
    if not isinstance(tags, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in tags.items()
    ):
        raise _bad("tags must be an object of strings")
    return tags or None


def _b64(params: Mapping[str, Any], field: str) -> str | None:
    """The JSON text in base64 field ``field`` (None when absent). Binary payloads reach
    Protobuf clients as bytes; hubbub admits them when they are JSON text (UTF-8), so that
    JSON clients of the same channel can read them too (else 107)."""
    value = params.get(field)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _bad(f"{field} must be a base64 string")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise _bad(f"{field} is not base64") from None
    payload = m.Payload.of_bytes(raw)
    if payload.text is None:
        raise _bad(f"{field} must hold JSON text (UTF-8): JSON clients could not read it")
    return payload.text


def _data(params: Mapping[str, Any]) -> str:
    """The ``data`` (a JSON value) or ``b64data`` (JSON text in base64) of a publish."""
    if params.get("data") is not None and params.get("b64data") is not None:
        raise _bad("data and b64data are exclusive")
    b64 = _b64(params, "b64data")
    return b64 if b64 is not None else p.data_text(params, required=True)


async def _publish_one(node: Node, channel: str, params: Mapping[str, Any]) -> str:
    data = _data(params)
    key = p.optional_str(params, "idempotency_key") or None
    if key is not None and len(key) > MAX_IDEMPOTENCY_KEY:
        raise _bad(f"idempotency_key is longer than {MAX_IDEMPOTENCY_KEY} characters")
    options = node.options(channel)
    pub = await node.publish(
        channel,
        data,
        tags=_tags(params),
        options=options,
        idempotency_key=key,
        skip_history=p.optional_bool(params, "skip_history"),
        delta=p.optional_bool(params, "delta"),
        source=Source.API,
    )
    if not pub.offset:
        return "{}"
    epoch = (await node.broker.position(channel)).epoch
    return f'{{"offset":{pub.offset},"epoch":{p.dumps(epoch)}}}'


async def publish(node: Node, params: Mapping[str, Any]) -> str:
    return await _publish_one(node, p.require_str(params, "channel"), params)


async def broadcast(node: Node, params: Mapping[str, Any]) -> str:
    channels = params.get("channels")
    if (
        not isinstance(channels, list)
        or not channels
        or not all(isinstance(c, str) for c in channels)
    ):
        raise _bad("channels must be a non-empty list of strings")
    responses = []
    for channel in channels:
        try:
            responses.append(f'{{"result":{await _publish_one(node, channel, params)}}}')
        except ClientError as exc:
            responses.append(f'{{"error":{_error_json(exc)}}}')
    return f'{{"responses":[{",".join(responses)}]}}'


def _addressee(params: Mapping[str, Any]) -> tuple[str, str]:
    """The ``user`` (required, may be empty: anonymous) and ``client`` (optional) named."""
    return p.require_str(params, "user", allow_empty=True), p.optional_str(params, "client")


async def subscribe(node: Node, params: Mapping[str, Any]) -> str:
    """Subscribe the user's connections on every node (see :mod:`hubbub.control`)."""
    channel = p.require_str(params, "channel")
    node.options(channel)
    user, client = _addressee(params)
    info, data = params.get("info"), params.get("data")
    b64info, b64data = _b64(params, "b64info"), _b64(params, "b64data")
    if b64info is not None:
        info = p.loads(b64info)
    if b64data is not None:
        data = p.loads(b64data)
    override = params.get("override")
    try:
        claims.override(override)
    except claims.ClaimError as exc:
        raise _bad(str(exc)) from None
    control = Control("subscribe", user, client, channel, info, data, override=override)
    await node.control(control)
    return "{}"


async def unsubscribe(node: Node, params: Mapping[str, Any]) -> str:
    channel = p.require_str(params, "channel")
    user, client = _addressee(params)
    await node.control(Control("unsubscribe", user, client, channel))
    return "{}"


async def disconnect(node: Node, params: Mapping[str, Any]) -> str:
    spec = params.get("disconnect") or {}
    if not isinstance(spec, dict):
        raise _bad("disconnect must be an object")
    code = p.optional_int(spec, "code", DEFAULT_DISCONNECT.code)
    reason = p.optional_str(spec, "reason") or DEFAULT_DISCONNECT.reason
    if not 3000 <= code <= 4999:
        raise _bad("disconnect code must be in 3000..4999")
    keep = params.get("whitelist") or []
    if not isinstance(keep, list) or not all(isinstance(k, str) for k in keep):
        raise _bad("whitelist must be a list of client ids")
    user, client = _addressee(params)
    await node.control(
        Control("disconnect", user, client, code=code, reason=reason, keep=tuple(keep))
    )
    return "{}"


async def refresh(node: Node, params: Mapping[str, Any]) -> str:
    """Expire the user's connections (or one client) on every node, now (``expired``), at
    ``expire_at`` (Unix seconds) or never (``expire_at`` 0 or absent); ``info``/``b64info``
    replaces their conn info. A ``session`` matches no connection: hubbub's WebSocket
    connections have no session id (Centrifugo's have one on its HTTP-based transports only)."""
    user, client = _addressee(params)
    expired = p.optional_bool(params, "expired")
    expire_at = p.optional_int(params, "expire_at")
    if expire_at < 0:
        raise _bad("expire_at must not be negative")
    info = params.get("info")
    b64info = _b64(params, "b64info")
    if b64info is not None:
        info = p.loads(b64info)
    if p.optional_str(params, "session"):
        return "{}"
    cmd = Control("refresh", user, client, info=info, expired=expired, expire_at=expire_at)
    await node.control(cmd)
    return "{}"


async def connections(node: Node, params: Mapping[str, Any]) -> str:
    """The user's connections on every node (``user`` "" for the anonymous ones), as
    Centrifugo PRO's ``connections`` lists them: ``{client id: ConnectionInfo}``. Each node
    lists at most 256 KiB of them (then ``"truncated": true``); a node that does not answer
    within 2 s fails the call (100). ``expression`` (a CEL filter) is not supported (107)."""
    user = p.require_str(params, "user", allow_empty=True)
    if p.optional_str(params, "expression").strip():
        raise _bad("expression filters are not supported")
    found: dict[str, Any] = {}
    truncated = False
    for answer in (await node.survey("connections", {"user": user})).values():
        listed = answer.get("connections") if isinstance(answer, dict) else None
        if isinstance(listed, dict):
            found.update((k, v) for k, v in listed.items() if isinstance(v, dict))
            truncated = truncated or answer.get("truncated") is True
    body: dict[str, Any] = {"connections": found}
    if truncated:
        body["truncated"] = True
    return p.dumps(body)


async def presence(node: Node, params: Mapping[str, Any]) -> str:
    result = await reads.presence(node, p.require_str(params, "channel"))
    return jsonwire.presence_json(result)


async def presence_stats(node: Node, params: Mapping[str, Any]) -> str:
    result = await reads.presence_stats(node, p.require_str(params, "channel"))
    return jsonwire.presence_stats_json(result)


async def history(node: Node, params: Mapping[str, Any]) -> str:
    since_raw = params.get("since")
    since = None
    if since_raw is not None:
        if not isinstance(since_raw, dict):
            raise _bad("since must be an object")
        since = m.Since(p.optional_int(since_raw, "offset"), p.optional_str(since_raw, "epoch"))
    request = m.History(
        channel=p.require_str(params, "channel"),
        limit=p.optional_int(params, "limit"),
        since=since,
        reverse=p.optional_bool(params, "reverse"),
    )
    return jsonwire.history_json(await reads.history(node, request))


async def history_remove(node: Node, params: Mapping[str, Any]) -> str:
    channel = p.require_str(params, "channel")
    node.options(channel)
    await node.broker.remove_history(channel)
    return "{}"


async def channels(node: Node, params: Mapping[str, Any]) -> str:
    """Channels with subscribers anywhere in the cluster; ``pattern`` is a glob (``chat:*``)."""
    pattern = p.optional_str(params, "pattern")
    counts: dict[str, int] = {}
    for snapshot in await node.cluster():
        for name, count in snapshot.get("channels", {}).items():
            counts[name] = counts.get(name, 0) + int(count)
    found = {
        name: {"num_clients": count}
        for name, count in sorted(counts.items())
        if not pattern or fnmatch.fnmatchcase(name, pattern)
    }
    return json.dumps({"channels": found}, separators=(",", ":"))


async def info(node: Node, params: Mapping[str, Any]) -> str:
    """Every live node of the cluster with its counts."""
    nodes = [{k: v for k, v in n.items() if k != "channels"} for n in await node.cluster()]
    return json.dumps({"nodes": nodes}, separators=(",", ":"))


METHODS: Final[dict[str, Method]] = {
    "publish": publish,
    "broadcast": broadcast,
    "subscribe": subscribe,
    "unsubscribe": unsubscribe,
    "disconnect": disconnect,
    "refresh": refresh,
    "connections": connections,
    "presence": presence,
    "presence_stats": presence_stats,
    "history": history,
    "history_remove": history_remove,
    "channels": channels,
    "info": info,
}


async def batch(node: Node, params: Mapping[str, Any]) -> str:
    """Several commands: ``{"commands": [{"publish": {...}}, ...]}``; replies in order."""
    commands = params.get("commands")
    if not isinstance(commands, list):
        raise _bad("commands must be a list")
    replies = []
    for command in commands:
        if not isinstance(command, dict) or len(command) != 1:
            replies.append(f'{{"error":{_error_json(_bad("one method per command"))}}}')
            continue
        ((name, body),) = command.items()
        method = METHODS.get(name)
        try:
            if method is None:
                raise ClientError(ErrorCode.METHOD_NOT_FOUND)
            if not isinstance(body, dict):
                raise _bad(f"{name} must be an object")
            replies.append(f'{{"{name}":{await method(node, body)}}}')
        except ClientError as exc:
            replies.append(f'{{"error":{_error_json(exc)}}}')
    return f'{{"replies":[{",".join(replies)}]}}'


def _error_json(exc: ClientError) -> str:
    return p.dumps({"code": exc.code, "message": exc.message})
