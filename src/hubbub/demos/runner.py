"""Starting and stopping the demo publishers; lending the demos' RPC handlers to the hooks."""

from __future__ import annotations

from dataclasses import replace

from hubbub.core.codes import ErrorCode
from hubbub.demos.game import Game
from hubbub.demos.monitor import MonitorPublisher
from hubbub.errors import ClientError
from hubbub.hooks import ConnectContext, ConnectResult, Hooks
from hubbub.node import Node


class Demos:
    def __init__(self, node: Node) -> None:
        self.node = node
        self.monitor = MonitorPublisher(node)
        self.game = Game(node)

    def with_rpc(self, hooks: Hooks) -> Hooks:
        """``hooks`` plus the demos' RPC methods (the application's own names win), and, when
        the application has no on_connect hook, one that shows a display name: connect data
        ``{"name": "..."}`` becomes the connection's info (the user id stays what the token
        says, or anonymous)."""
        on_connect = hooks.on_connect or self._display_name
        return replace(hooks, rpc={**self.game.rpc_handlers(), **hooks.rpc}, on_connect=on_connect)

    async def _display_name(self, ctx: ConnectContext) -> ConnectResult | None:
        if not ctx.user and not self.node.settings.allow_anonymous:
            raise ClientError(ErrorCode.UNAUTHORIZED, "unauthorized: a connection token is needed")
        name = ctx.data.get("name") if isinstance(ctx.data, dict) else None
        if not isinstance(name, str) or not name.strip():
            return None
        return ConnectResult(user=ctx.user, info={"name": name.strip()[:32]})

    def start(self) -> None:
        self.monitor.start()
        self.game.start()

    async def stop(self) -> None:
        await self.monitor.stop()
        await self.game.stop()
