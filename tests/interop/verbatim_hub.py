"""The example chat hub plus a ``raw:`` namespace whose publications are not rewritten.

The chat hub's publish hook replaces every message with ``{"text": ..., "from": ...}``, so
the data a client sent never reaches the subscribers as it was. On ``raw:`` channels this
hub lets a publication through unchanged, so that the interop tests can check that the bytes
a Protobuf client publishes reach Protobuf subscribers byte for byte (and JSON ones as the
same JSON value). A client that sends emulated headers (centrifuge-js's ``headers`` option)
gets them back in its connect data, with the names of the handshake's own headers. Everything
else is the chat hub's: its connect hook, RPC and namespace.
"""

from __future__ import annotations

import dataclasses

from examples.chat_hub import authenticate, check_message, whoami
from examples.chat_hub import hub as chat_hub

from hubbub.hub import ConnectContext, ConnectResult, Hub, PublishContext, PublishResult

hub = Hub(
    namespaces=[
        *chat_hub.defaults["namespaces"],
        {"name": "raw", "history_size": 10, "history_ttl": 600},
    ]
)


@hub.on_connect
async def connect(ctx: ConnectContext) -> ConnectResult:
    result = await authenticate(ctx)
    if not ctx.emulated_headers:
        return result
    echo = {"emulated": dict(ctx.emulated_headers), "real": sorted(k.lower() for k in ctx.headers)}
    return dataclasses.replace(result, data=echo)


hub.rpc("whoami")(whoami)


@hub.on_publish
async def publish(ctx: PublishContext) -> PublishResult | None:
    if ctx.channel.startswith("raw:"):
        return None  # published as sent
    return await check_message(ctx)
