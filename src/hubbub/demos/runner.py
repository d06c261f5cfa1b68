"""Starting and stopping the demo publishers; lending the demos' RPC handlers to the hooks."""

from __future__ import annotations

from dataclasses import replace

from hubbub.auth import invalid
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
        says, or anonymous). That hook is no token scheme of the application's: a token it
        sees was not verified (no token keys are configured), so it refuses it as a server
        without the hook would (3500), never taking the client as anonymous."""
        on_connect = hooks.on_connect or self._display_name
        return replace(hooks, rpc={**self.game.rpc_handlers(), **hooks.rpc}, on_connect=on_connect)

    async def _display_name(self, ctx: ConnectContext) -> ConnectResult | None:
        if ctx.token and not self.node.tokens.enabled:
            raise invalid("no token keys are configured")
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
