"""The public face of hubbub for Python applications: a :class:`Hub` with hooks.

::

    hub = Hub(namespaces=[{"name": "chat", "history_size": 100, "history_ttl": 3600}])

    @hub.on_connect
    async def authenticate(ctx: ConnectContext) -> ConnectResult:
        return ConnectResult(user=ctx.data["name"])

    @hub.rpc("time")
    async def server_time(ctx: RPCContext) -> dict:
        return {"now": time.time()}

    hub.run()           # the same server as `hubbub serve --app module:hub`

Hooks are plain async functions. They refuse by raising :class:`hubbub.errors.ClientError`
(the client gets that error, the connection stays) or
:class:`hubbub.errors.DisconnectError` (the connection is closed with that code). Any other
exception is logged and the client gets error 100 (internal).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hubbub.config import Settings, load_settings
from hubbub.errors import HubbubError
from hubbub.hooks import (
    ConnectContext,
    ConnectHook,
    ConnectResult,
    DisconnectContext,
    DisconnectHook,
    Hooks,
    MessageContext,
    MessageHook,
    PublishContext,
    PublishHook,
    PublishResult,
    RPCContext,
    RPCHandler,
    SubscribeContext,
    SubscribeHook,
    SubscribeResult,
)

__all__ = [
    "ConnectContext",
    "ConnectHook",
    "ConnectResult",
    "DisconnectContext",
    "DisconnectHook",
    "Hooks",
    "Hub",
    "MessageContext",
    "MessageHook",
    "PublishContext",
    "PublishHook",
    "PublishResult",
    "RPCContext",
    "RPCHandler",
    "SubscribeContext",
    "SubscribeHook",
    "SubscribeResult",
]


class Hub:
    """Hooks, settings and, once running, the node. See the module docstring."""

    def __init__(self, **settings: Any) -> None:
        """``settings`` are defaults in code (any :class:`Settings` key); `hubbub serve`
        flags, HUBBUB_* variables and the TOML file override them."""
        self.defaults = settings
        self.hooks = Hooks()
        self._node: Any = None

    # -- hooks ---------------------------------------------------------------------------

    def on_connect(self, fn: ConnectHook) -> ConnectHook:
        self.hooks.on_connect = fn
        return fn

    def on_subscribe(self, fn: SubscribeHook) -> SubscribeHook:
        self.hooks.on_subscribe = fn
        return fn

    def on_publish(self, fn: PublishHook) -> PublishHook:
        self.hooks.on_publish = fn
        return fn

    def on_message(self, fn: MessageHook) -> MessageHook:
        self.hooks.on_message = fn
        return fn

    def on_disconnect(self, fn: DisconnectHook) -> DisconnectHook:
        self.hooks.on_disconnect = fn
        return fn

    def rpc(self, method: str) -> Callable[[RPCHandler], RPCHandler]:
        def register(fn: RPCHandler) -> RPCHandler:
            self.hooks.rpc[method] = fn
            return fn

        return register

    # -- running -------------------------------------------------------------------------

    def bind(self, node: Any) -> None:
        """Called by the server when it starts serving this hub."""
        self._node = node

    async def publish(
        self,
        channel: str,
        data: Any,
        *,
        tags: dict[str, str] | None = None,
        idempotency_key: str | None = None,
        delta: bool = False,
    ) -> int:
        """Publish ``data`` (any JSON value) to ``channel``; return its offset (0 without
        history) once it is stored. A retry with the same ``idempotency_key`` within the
        window returns the first offset and delivers nothing again. ``delta``: subscribers
        that negotiated delta compression get it as a delta against the previous publication
        (as every publication of a ``delta_publish`` namespace). Only while the hub is being
        served; raises StoreError when the publication could not be stored."""
        from hubbub.core.jsontext import dumps

        if self._node is None:
            raise HubbubError("the hub is not running: call hub.run() or serve it first")
        pub = await self._node.publish(
            channel, dumps(data), tags=tags, idempotency_key=idempotency_key, delta=delta
        )
        return int(pub.offset)

    def settings(self, **flags: Any) -> Settings:
        return load_settings(flags, base=self.defaults)

    def run(self, **flags: Any) -> None:
        """Serve this hub until SIGINT/SIGTERM (``flags`` as `hubbub serve`'s options)."""
        from hubbub.server.runner import run_loop, serve

        settings = self.settings(**flags)
        run_loop(settings, serve(settings, hub=self))
