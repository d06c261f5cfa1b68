"""A chat hub: authentication from connect data, a publish check and an RPC.

Run it with ``hubbub serve --app examples.chat_hub:hub`` (or ``python -m examples.chat_hub``),
then connect any Centrifugo SDK to ``ws://127.0.0.1:8765/connection/websocket``.
"""

from __future__ import annotations

import time
from typing import Any

from hubbub import (
    ClientError,
    ConnectContext,
    ConnectResult,
    Hub,
    PublishContext,
    PublishResult,
    RPCContext,
)

hub = Hub(
    namespaces=[
        {
            "name": "chat",
            "history_size": 100,
            "history_ttl": 3600,
            "presence": True,
            "join_leave": True,
            "force_recovery": True,
        }
    ]
)

BANNED_WORDS = {"spam"}


@hub.on_connect
async def authenticate(ctx: ConnectContext) -> ConnectResult:
    """Anyone may chat; the name comes from the connect data (``{"name": "ada"}``)."""
    name = ctx.data.get("name") if isinstance(ctx.data, dict) else None
    if not isinstance(name, str) or not 1 <= len(name) <= 32:
        raise ClientError(4001, "say who you are: connect data {'name': '...'}")
    return ConnectResult(user=name, info={"name": name})


@hub.on_publish
async def check_message(ctx: PublishContext) -> PublishResult:
    """Messages are objects with a non-empty text without banned words; the server stamps
    who sent them."""
    text = ctx.data.get("text") if isinstance(ctx.data, dict) else None
    if not isinstance(text, str) or not text.strip():
        raise ClientError(4002, "a message needs a text")
    if BANNED_WORDS & set(text.lower().split()):
        raise ClientError(4003, "message refused")
    return PublishResult({"text": text, "from": ctx.user})


@hub.rpc("whoami")
async def whoami(ctx: RPCContext) -> dict[str, Any]:
    return {"user": ctx.user, "client": ctx.client, "time": time.time()}


if __name__ == "__main__":
    hub.run()
