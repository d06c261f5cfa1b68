"""Python hooks next to the HTTP proxy (``--app tests.support.proxy_app:hub``), for the
order tests/e2e/test_proxy.py checks: each acts on its marked user, channel or method only."""

from __future__ import annotations

from typing import Any

from hubbub import (
    ConnectContext,
    ConnectResult,
    Hub,
    PublishContext,
    PublishResult,
    RPCContext,
    SubscribeContext,
    SubscribeResult,
)

hub = Hub()


@hub.on_connect
async def on_connect(ctx: ConnectContext) -> ConnectResult | None:
    if ctx.user != "hooked":
        return None  # what the connect proxy said stands
    return ConnectResult(user=ctx.user, data={"hook_saw": ctx.user, "meta": ctx.meta})


@hub.on_subscribe
async def on_subscribe(ctx: SubscribeContext) -> SubscribeResult | None:
    if ctx.channel != "px:hooked":
        return None
    return SubscribeResult(data={"hook_saw": ctx.user, "meta": ctx.meta})


@hub.on_publish
async def on_publish(ctx: PublishContext) -> PublishResult | None:
    if ctx.channel != "px:hooked":
        return None
    return PublishResult(data={"hook": ctx.data})


@hub.rpc("py")
async def py(ctx: RPCContext) -> Any:
    return {"from": "python"}
