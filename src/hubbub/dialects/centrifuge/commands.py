"""The channel protocol's commands that keep no state in the client: publish, reading a
channel's presence and history, ping, rpc and send.

Each handler takes the client, the command id and the typed request, and returns the typed
result (None: no reply), as :data:`hubbub.dialects.centrifuge.client._HANDLERS` expects;
errors are ClientError (the reply's error) or DisconnectError.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, Final

from hubbub.config import ChannelOptions
from hubbub.core import messages as m
from hubbub.core.channels import allowed, restricted
from hubbub.core.codes import Disconnects, ErrorCode
from hubbub.core.jsontext import dumps, loads
from hubbub.core.publishlatency import Source
from hubbub.dialects.centrifuge import proxying, reads
from hubbub.dialects.centrifuge.payloads import call_hook, for_hooks, hook_data, required
from hubbub.errors import ClientError, DisconnectError
from hubbub.hooks import MessageContext, PublishContext, RPCContext
from hubbub.proxy.bodies import PublishAnswer

if TYPE_CHECKING:
    from hubbub.dialects.centrifuge.client import Client

_PONG: Final = m.PingResult()
_NOT_PROXIED: Final = PublishAnswer()


def readable(client: Client, channel: str, action: str, *, proxied: bool = False) -> ChannelOptions:
    """The options of ``channel`` when ``client`` may do ``action`` (publish, history,
    presence) in it: the namespace's flags (unless a proxy decides instead: ``proxied``),
    and for private and user-limited channels being subscribed (hubbub's rule); 103
    otherwise."""
    options = client.node.options(required(channel, "channel"))
    if not (proxied or allowed(options, action, client.user)) or (
        restricted(channel) and not client.session.is_subscribed(channel)
    ):
        raise ClientError(ErrorCode.PERMISSION_DENIED)
    return options


async def publish(client: Client, cid: int, request: m.Publish) -> None:
    """Checks (permission 103, data 107, size 106), the publish proxy where the namespace
    asks it (instead of the ``allow_publish_*`` flags: it may refuse, or rewrite the data,
    tags, idempotency key, skip the history), the ``on_publish`` hook (seeing the proxy's
    data), then the store, pipelined: answered in command order once stored
    (:meth:`Client.pipelined`)."""
    channel = required(request.channel, "channel")
    url = proxying.endpoint(client.node.settings, client.node.options(channel), "publish")
    options = readable(client, channel, "publish", proxied=url is not None)
    payload = request.data
    if payload is None:
        raise ClientError(ErrorCode.BAD_REQUEST, "bad request: data is required")
    data = payload.text
    if data is None:  # bytes that are not JSON: JSON subscribers could not read them
        raise ClientError(ErrorCode.BAD_REQUEST, "bad request: data must be JSON")
    if len(data.encode()) > options.max_message_size:
        raise ClientError(
            ErrorCode.LIMIT_EXCEEDED,
            f"limit exceeded: data is over {options.max_message_size} bytes",
        )
    answer = _NOT_PROXIED if url is None else await proxying.publish(client, url, channel, payload)
    hook = client.hooks.on_publish
    if hook is not None:
        value = payload.value() if answer.data is None else loads(answer.data)
        ctx = PublishContext(client.client_id, client.user, channel, value, client.meta)
        result = await call_hook(hook, ctx)
        if result is not None:
            data = dumps(result.data)
        elif answer.data is not None:
            data = answer.data
    elif answer.data is not None:
        data = answer.data
    # Stored in command order (the stores queue appends as they are called) while the next
    # commands are read.
    publishing = client.node.publish(
        channel,
        data,
        info=client.info(channel),
        options=options,
        source=Source.CLIENT,
        tags=answer.tags,
        idempotency_key=answer.idempotency_key,
        skip_history=answer.skip_history,
        delta=answer.delta,
    )
    await client.pipelined(cid, publishing)


async def presence(client: Client, cid: int, request: m.Presence) -> m.PresenceResult:
    readable(client, request.channel, "presence")
    return await reads.presence(client.node, request.channel)


async def presence_stats(
    client: Client, cid: int, request: m.PresenceStats
) -> m.PresenceStatsResult:
    readable(client, request.channel, "presence")
    return await reads.presence_stats(client.node, request.channel)


async def history(client: Client, cid: int, request: m.History) -> m.HistoryResult:
    readable(client, request.channel, "history")
    return await reads.history(client.node, request)


async def ping(client: Client, cid: int, request: m.Ping) -> m.PingResult:
    return _PONG


async def rpc(client: Client, cid: int, request: m.RPC) -> m.RPCResult:
    """A ``@hub.rpc`` handler of the method answers; else the RPC proxy, when configured;
    else 104."""
    handler = client.hooks.rpc.get(request.method)
    if handler is None:
        if client.node.settings.proxy_rpc_endpoint is not None:
            return await proxying.rpc(client, request)
        raise ClientError(ErrorCode.METHOD_NOT_FOUND)
    # Called directly (not through call_hook): Client.handle turns unexpected errors into 100.
    ctx = RPCContext(
        client.client_id, client.user, request.method, for_hooks(request.data), client.meta
    )
    result = await handler(ctx)
    return m.RPCResult(None if result is None else hook_data(result, binary=client.wire.binary))


async def send(client: Client, cid: int, request: m.Send) -> None:
    if client.hooks.on_message is None:
        not_available = Disconnects.NOT_AVAILABLE
        raise DisconnectError(not_available.code, not_available.reason)
    ctx = MessageContext(client.client_id, client.user, for_hooks(request.data), client.meta)
    with contextlib.suppress(ClientError):  # send has no reply to carry an error
        await call_hook(client.hooks.on_message, ctx)


def describe(client: Client, name: str, version: str, since_ms: int) -> dict[str, Any]:
    """Centrifugo's ``ConnectionInfo`` of ``client`` (the server API's ``connections``),
    empty strings left out: app ``name`` and ``version`` from its connect, connected at
    ``since_ms``."""
    session = client.session
    channels: dict[str, dict[str, Any]] = {
        ch: {} for ch in session.subs if session.is_subscribed(ch)
    }
    named = {"app_name": name, "app_version": version, "user": client.user}
    return {k: v for k, v in named.items() if v} | {
        "transport": client.transport_name,
        "protocol": client.wire.name,
        "state": {"channels": channels},
        "connected_at_ms": since_ms,
    }
