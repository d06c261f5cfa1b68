"""The hub `make bench` serves: an ``echo`` RPC (the round-trip scenario), nothing else.

hubbub serve --app bench.hub_app:hub --config ...
"""

from __future__ import annotations

from typing import Any

from hubbub.hub import Hub, RPCContext

hub = Hub()


@hub.rpc("echo")
async def echo(ctx: RPCContext) -> Any:
    return ctx.data
