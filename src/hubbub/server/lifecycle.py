"""A node's life, whatever edge serves it: engines, node, demos, the hub's startup tasks.

``hubbub serve`` (:func:`hubbub.server.runner.serve`, the aiohttp edge) and ``hub.running()``
(the ASGI edge, :mod:`hubbub.server.asgi`) both go through :func:`node_running`, so a node
starts and stops the same way under either. Guarantees:

- On entry: the engines are built from the settings and the node is started (engines
  connected), the demos' publishers run when ``settings.demos`` is on, and the hub (if any) is
  bound, so ``hub.publish`` works inside the block; the outbox consumer runs when
  ``outbox_url`` is set (:mod:`hubbub.outboxconsumer`). The hub's ``@hub.on_startup``
  functions are *not* started yet: the edge calls :meth:`NodeRun.start_tasks` once it accepts
  connections.
- :meth:`NodeRun.close_connections` starts closing every connection with its shutdown code
  (1001 "going away" for raw WebSockets, 3001 "shutdown" for the channel protocol) and waits,
  at most ``timeout`` seconds, for the handler tasks the edge registered in
  :attr:`NodeRun.handlers`.
- On exit, in this order: the startup tasks are cancelled and awaited (at most
  ``cleanup_budget`` seconds), the outbox consumer and the demos stop, the node stops
  (engines closed) and the hub is unbound (``hub.publish`` raises again). Exit does not
  close the connections by itself: an edge that still has some calls
  :meth:`NodeRun.close_connections` first.
- Exit is bounded whatever hangs (:mod:`hubbub.bounded`: an engine or demo whose stop does
  not end, a task that swallows its cancellation): the demos get ``cleanup_budget`` +
  :data:`STOP_MIN` seconds, the node what is left until :attr:`NodeRun.deadline` (set by the
  edge when the shutdown began; else ``shutdown_timeout`` from the start of the exit), at
  least :data:`STOP_MIN`; what is cut off is logged as an error.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from hubbub.bounded import bounded
from hubbub.config import Settings
from hubbub.demos.runner import Demos
from hubbub.engines.factory import build_engines, outbox_store
from hubbub.hooks import Hooks
from hubbub.node import Node
from hubbub.outboxconsumer import OutboxConsumer
from hubbub.startup import StartupTasks

if TYPE_CHECKING:  # the hub enters this (Hub.running): at run time this way only
    from hubbub.hub import Hub

#: Seconds the demos' and the node's stop get at least, however much of the budget is left.
STOP_MIN: Final = 1.0


@dataclass(eq=False)
class NodeRun:
    """A started node and what serves with it (see the module docstring)."""

    settings: Settings
    node: Node
    #: The hub's hooks, with the demos' RPC methods when the demos are on.
    hooks: Hooks
    startup: StartupTasks
    #: The edge's connection handler tasks; :meth:`close_connections` waits for them.
    handlers: set[asyncio.Task[Any]] = field(default_factory=set)
    #: The loop time by which the shutdown should be over (the edge sets it when it begins).
    deadline: float | None = None

    def start_tasks(self) -> None:
        """Start the hub's startup functions (once; the edge accepts connections)."""
        self.startup.start()

    async def close_connections(self, grace: float) -> None:
        """Close every connection with its shutdown code; wait for the handlers (bounded)."""
        self.node.close_all()
        if self.handlers:
            await asyncio.wait(tuple(self.handlers), timeout=grace)


@asynccontextmanager
async def node_running(
    settings: Settings, hub: Hub | None = None, *, cleanup_budget: float
) -> AsyncIterator[NodeRun]:
    """The node of ``settings`` (serving ``hub``'s hooks) for the block; see the module."""
    broker, presence = build_engines(settings)
    node = Node(settings, broker=broker, presence=presence, outbox=outbox_store(settings, broker))
    hooks = hub.hooks if hub is not None else Hooks()
    demos = Demos(node) if settings.demos else None
    if demos is not None:
        hooks = demos.with_rpc(hooks)
    run = NodeRun(settings, node, hooks, StartupTasks(hooks.on_startup))
    outbox = OutboxConsumer(node, settings) if settings.outbox_url else None
    if hub is not None:
        hub.bind(node)
    try:
        await node.start()
        if demos is not None:
            demos.start()
        if outbox is not None:
            outbox.start()
        yield run
    finally:
        loop = asyncio.get_running_loop()
        if run.deadline is None:
            run.deadline = loop.time() + settings.shutdown_timeout
        # Each step runs even when the host cancels the exit during an earlier one (the
        # cancellation goes on once the node is stopped and the hub unbound).
        try:
            try:
                await run.startup.stop(cleanup_budget)
            finally:
                try:
                    if outbox is not None:
                        await outbox.stop(cleanup_budget + STOP_MIN)
                finally:
                    if demos is not None:
                        await bounded(demos.stop(), cleanup_budget + STOP_MIN, "stopping the demos")
        finally:
            try:
                left = run.deadline - loop.time()
                await bounded(node.stop(), max(STOP_MIN, left), "stopping the engines")
            finally:
                if hub is not None:
                    hub.bind(None)
