"""The hub the hubbub.js tests run against: an ``echo`` RPC and no other hook, so that
everything else is the server's default behaviour (no on_message hook: a ``send`` is
answered with 3508)."""

from __future__ import annotations

from typing import Any

from hubbub.hooks import RPCContext
from hubbub.hub import Hub

hub = Hub()


@hub.rpc("echo")
async def echo(ctx: RPCContext) -> dict[str, Any]:
    """The call's data and who made it."""
    return {"data": ctx.data, "user": ctx.user}
