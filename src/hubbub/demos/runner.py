"""Starting and stopping the demo publishers; lending the demos' RPC handlers to the hooks."""

from __future__ import annotations

from dataclasses import replace

from hubbub.demos.game import Game
from hubbub.demos.monitor import MonitorPublisher
from hubbub.hub import Hooks
from hubbub.node import Node


class Demos:
    def __init__(self, node: Node) -> None:
        self.monitor = MonitorPublisher(node)
        self.game = Game(node)

    def with_rpc(self, hooks: Hooks) -> Hooks:
        """``hooks`` plus the demos' RPC methods (the application's own names win)."""
        return replace(hooks, rpc={**self.game.rpc_handlers(), **hooks.rpc})

    def start(self) -> None:
        self.monitor.start()
        self.game.start()

    async def stop(self) -> None:
        await self.monitor.stop()
        await self.game.stop()
