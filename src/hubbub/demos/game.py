"""Multiplayer demo: movers in a shared arena, server-authoritative.

Clients call RPC ``demo.game.join`` (name) -> their id and the full state, then
``demo.game.input`` with a direction while keys are held; ``demo.game.ping`` measures the round
trip. A tick loop at :data:`TICK_HZ` moves every player and publishes only what changed to
``game:arena`` (``{"tick", "players": {id: [x, y, color, name]}, "gone": [ids]}``). Players
without input for :data:`IDLE_SECONDS` leave the arena. A tick that fails is logged and the
loop goes on (:func:`hubbub.periodic.every`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import Any, Final

from hubbub.bounded import stop_tasks
from hubbub.core.codes import ErrorCode
from hubbub.core.jsontext import dumps
from hubbub.errors import ClientError, HubbubError
from hubbub.hooks import RPCContext
from hubbub.node import Node
from hubbub.periodic import every

CHANNEL: Final = "game:arena"
#: Seconds the loop gets to end once cancelled (the lifecycle bounds the demos' whole stop).
STOP_TIMEOUT: Final = 0.5
TICK_HZ: Final = 20
SIZE: Final = 100.0  # the arena is SIZE x SIZE
SPEED: Final = 40.0  # units per second
IDLE_SECONDS: Final = 30.0
COLORS: Final = ["#e4572e", "#29335c", "#f3a712", "#669bbc", "#a8c686", "#8e44ad", "#16a085"]


@dataclass
class Player:
    name: str
    color: str
    x: float
    y: float
    dx: float = 0.0
    dy: float = 0.0
    seen: float = 0.0

    def view(self) -> list[Any]:
        return [round(self.x, 1), round(self.y, 1), self.color, self.name]


class Game:
    def __init__(self, node: Node) -> None:
        self.node = node
        self.players: dict[str, Player] = {}
        self.tick = 0
        self._dirty: set[str] = set()
        self._gone: list[str] = []
        self._task: asyncio.Task[None] | None = None
        self._last = 0.0  # monotonic time of the previous tick

    def rpc_handlers(self) -> dict[str, Any]:
        return {
            "demo.game.join": self.join,
            "demo.game.input": self.input,
            "demo.game.ping": self.ping,
        }

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Cancel the loop (again while it carries on: a publish can lose a cancellation,
        :mod:`hubbub.bounded`), at most :data:`STOP_TIMEOUT` seconds."""
        if self._task is not None:
            await stop_tasks([self._task], STOP_TIMEOUT, "game demo")
            self._task = None

    def state(self) -> dict[str, Any]:
        return {"tick": self.tick, "players": {pid: p.view() for pid, p in self.players.items()}}

    async def join(self, ctx: RPCContext) -> dict[str, Any]:
        data = ctx.data if isinstance(ctx.data, dict) else {}
        name = str(data.get("name") or "player")[:16]
        index = len(self.players) + self.tick
        player = Player(name, COLORS[index % len(COLORS)], 10 + (index * 17) % 80, 50.0)
        player.seen = time.monotonic()
        self.players[ctx.client] = player
        self._dirty.add(ctx.client)
        return {"id": ctx.client, "state": self.state(), "size": SIZE, "tick_hz": TICK_HZ}

    async def input(self, ctx: RPCContext) -> dict[str, Any]:
        player = self.players.get(ctx.client)
        if player is None:
            raise ClientError(ErrorCode.BAD_REQUEST, "bad request: join the game first")
        data = ctx.data if isinstance(ctx.data, dict) else {}
        try:
            dx, dy = float(data.get("dx", 0)), float(data.get("dy", 0))
        except (TypeError, ValueError):
            raise ClientError(ErrorCode.BAD_REQUEST, "bad request: dx and dy are numbers") from None
        player.dx, player.dy = max(-1.0, min(1.0, dx)), max(-1.0, min(1.0, dy))
        player.seen = time.monotonic()
        return {"tick": self.tick}

    async def ping(self, ctx: RPCContext) -> dict[str, Any]:
        return {"tick": self.tick, "time": time.time()}

    def step(self, dt: float, now: float) -> dict[str, Any] | None:
        """Advance the world by ``dt``; the delta to publish, if anything changed."""
        self.tick += 1
        for pid, p in list(self.players.items()):
            if now - p.seen > IDLE_SECONDS:
                del self.players[pid]
                self._gone.append(pid)
                continue
            if p.dx or p.dy:
                p.x = min(SIZE, max(0.0, p.x + p.dx * SPEED * dt))
                p.y = min(SIZE, max(0.0, p.y + p.dy * SPEED * dt))
                self._dirty.add(pid)
        if not self._dirty and not self._gone:
            return None
        delta = {
            "tick": self.tick,
            "players": {
                pid: self.players[pid].view() for pid in self._dirty if pid in self.players
            },
            "gone": self._gone,
        }
        self._dirty, self._gone = set(), []
        return delta

    async def _run(self) -> None:
        self._last = time.monotonic()
        await every(1.0 / TICK_HZ, self.tick_once, "game demo tick")

    async def tick_once(self) -> None:
        """Advance the world to now and publish what changed."""
        now = time.monotonic()
        delta = self.step(now - self._last, now)
        self._last = now
        if delta is not None:
            with contextlib.suppress(HubbubError):
                await self.node.publish(CHANNEL, dumps(delta))
