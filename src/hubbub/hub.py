"""The public face of hubbub for Python applications: a :class:`Hub` with hooks.

::

    from hubbub import ConnectContext, ConnectResult, Hub, RPCContext

    hub = Hub(namespaces=[{"name": "chat", "history_size": 100, "history_ttl": 3600}])

    @hub.on_connect
    async def authenticate(ctx: ConnectContext) -> ConnectResult:
        name = ctx.data.get("name") if isinstance(ctx.data, dict) else None  # data may be None
        return ConnectResult(user=name or "")

    @hub.rpc("time")
    async def server_time(ctx: RPCContext) -> dict:
        return {"now": time.time()}

    @hub.on_startup
    async def clock() -> None:        # a background task for as long as the server runs
        while True:
            await hub.publish("chat:clock", {"now": time.time()})
            await asyncio.sleep(1)

    hub.run()           # the same server as `hubbub serve --app module:hub`

Hooks are plain async functions; what each one is given and may return is in
:mod:`hubbub.hooks`. They refuse by raising :class:`hubbub.ClientError` (the client gets that
error, the connection stays) or :class:`hubbub.DisconnectError` (the connection is closed
with that code). Any other exception is logged and the client gets error 100 (internal).
Registering a hook again replaces the first one (``on_startup`` and ``rpc`` methods of
other names add up).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hubbub import logs
from hubbub.config import Settings, load_settings
from hubbub.core.codes import ErrorCode
from hubbub.engines.base import MAX_IDEMPOTENCY_KEY
from hubbub.errors import ClientError, ConfigError, HubbubError
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
    StartupHook,
    SubscribeContext,
    SubscribeHook,
    SubscribeResult,
)

if TYPE_CHECKING:  # the ASGI edge imports nothing of the hub at run time
    from hubbub.server.asgi import ASGIApp

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
    "StartupHook",
    "SubscribeContext",
    "SubscribeHook",
    "SubscribeResult",
]


#: The text log line format of ``hubbub serve`` (and :meth:`Hub.run`): :mod:`hubbub.logs`.
LOG_FORMAT = logs.LOG_FORMAT


class Hub:
    """Hooks, settings and, once running, the node. See the module docstring."""

    def __init__(self, **settings: Any) -> None:
        """``settings`` are defaults in code: any key of the configuration (``port=9000``,
        ``namespaces=[{"name": "chat", ...}]``, ``allow_anonymous=False``: the README's
        Configuration table). `hubbub serve` flags, HUBBUB_* variables and the TOML file
        override them; a bad key or value is refused when the hub is served
        (:class:`hubbub.ConfigError`)."""
        self.defaults = settings
        self.hooks = Hooks()
        self._node: Any = None
        #: The running node of :meth:`running` (a ``hubbub.server.lifecycle.NodeRun``), which
        #: the ASGI app of :meth:`asgi` serves; None while not running.
        self.node_run: Any = None

    # -- hooks ---------------------------------------------------------------------------

    def on_connect(self, fn: ConnectHook) -> ConnectHook:
        """Decorator: ``fn(ctx: ConnectContext)`` decides who a connecting client is
        (returns :class:`ConnectResult` or None), or refuses it by raising."""
        self.hooks.on_connect = fn
        return fn

    def on_subscribe(self, fn: SubscribeHook) -> SubscribeHook:
        """Decorator: ``fn(ctx: SubscribeContext)`` is asked about each client subscription
        the channel's options allow (returns :class:`SubscribeResult` or None), or refuses
        it by raising (e.g. ``ClientError(103)``)."""
        self.hooks.on_subscribe = fn
        return fn

    def on_publish(self, fn: PublishHook) -> PublishHook:
        """Decorator: ``fn(ctx: PublishContext)`` sees each client publication before it is
        stored; returns :class:`PublishResult` to change its data, None to keep it, or
        refuses it by raising."""
        self.hooks.on_publish = fn
        return fn

    def on_message(self, fn: MessageHook) -> MessageHook:
        """Decorator: ``fn(ctx: MessageContext)`` gets each client ``send`` (a message to
        the server with no reply)."""
        self.hooks.on_message = fn
        return fn

    def on_disconnect(self, fn: DisconnectHook) -> DisconnectHook:
        """Decorator: ``fn(ctx: DisconnectContext)`` is told when a connection has ended."""
        self.hooks.on_disconnect = fn
        return fn

    def rpc(self, method: str) -> Callable[[RPCHandler], RPCHandler]:
        """Decorator: ``fn(ctx: RPCContext)`` answers the clients' RPC calls of ``method``;
        what it returns (a JSON value, or None) is the reply's data."""

        def register(fn: RPCHandler) -> RPCHandler:
            self.hooks.rpc[method] = fn
            return fn

        return register

    def on_startup(self, fn: StartupHook) -> StartupHook:
        """Decorator: ``fn()`` (no arguments, async) is run as a background task once the
        server is up (``hub.publish`` works), and cancelled at shutdown; for publishers
        inside the application. Several may be registered; each gets its own task. What the
        task may rely on: :mod:`hubbub.startup`."""
        self.hooks.on_startup.append(fn)
        return fn

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
        window returns the first offset and delivers nothing again. ``tags`` (str to str)
        travel with the publication (subscribers may filter on them). ``delta``:
        subscribers that negotiated delta compression get it as a delta against the
        previous publication (as every publication of a ``delta_publish`` namespace).

        Only while the hub is being served (from hooks, startup functions, or other tasks of
        the serving loop); raises :class:`hubbub.HubbubError` before, a
        :class:`hubbub.ClientError` for a bad channel name (107) or an unknown namespace
        (102) or an ``idempotency_key`` longer than 255 characters (107), and
        :class:`hubbub.StoreError` when the publication could not be stored."""
        from hubbub.core.jsontext import dumps

        if self._node is None:
            raise HubbubError("the hub is not running: call hub.run() or serve it first")
        if idempotency_key is not None and len(idempotency_key) > MAX_IDEMPOTENCY_KEY:
            raise ClientError(
                ErrorCode.BAD_REQUEST,
                f"bad request: idempotency_key is longer than {MAX_IDEMPOTENCY_KEY} characters",
            )
        pub = await self._node.publish(
            channel, dumps(data), tags=tags, idempotency_key=idempotency_key, delta=delta
        )
        return int(pub.offset)

    @asynccontextmanager
    async def running(self, config: str | Path | None = None, **flags: Any) -> AsyncIterator[None]:
        """``async with hub.running():`` serves this hub's node for the block, in the running
        event loop, without listening anywhere: for an application that serves
        :meth:`asgi` (or only publishes) from its own server, entered in its lifespan.

        ``config`` and ``flags`` are those of :meth:`settings`. On entry the node starts as
        with `hubbub serve --app` (engines, demos if on, the ``@hub.on_startup`` tasks) and
        ``hub.publish`` works; on exit every connection of :meth:`asgi` still open is closed
        with its shutdown code (1001, 3001 for the channel protocol; their handlers awaited
        within ``shutdown_timeout``), the startup tasks are cancelled and the engines closed.
        Raises :class:`hubbub.ConfigError` for bad settings and :class:`hubbub.HubbubError`
        when the hub is already running."""
        from hubbub.server.lifecycle import node_running
        from hubbub.server.runner import CLEANUP_SHARE

        if self.node_run is not None or self._node is not None:
            raise HubbubError("the hub is already running")
        settings = self.settings(config, **flags)
        budget = settings.shutdown_timeout * CLEANUP_SHARE
        async with node_running(settings, self, cleanup_budget=budget) as run:
            self.node_run = run
            try:
                run.start_tasks()
                yield
            finally:
                self.node_run = None
                run.deadline = asyncio.get_running_loop().time() + settings.shutdown_timeout
                await run.close_connections(settings.shutdown_timeout - budget)

    def asgi(self, config: str | Path | None = None, **flags: Any) -> ASGIApp:
        """An ASGI 3 application serving this hub's endpoints (those of `hubbub serve`:
        echo at its root, ``/rooms/*``, ``/connection/...``, ``/api/*``, ``/health``), to
        mount in Starlette or FastAPI (``app.mount("/rt", hub.asgi())``) or to run alone
        (``uvicorn module:app``). Served alone it starts and stops the node on the ASGI
        lifespan events with ``config`` and ``flags`` (as :meth:`running`); mounted, the host
        enters :meth:`running` in its own lifespan. While the node is not running, requests
        get 503 and WebSockets are closed with 1013. The ASGI server's own access log
        (uvicorn's, hypercorn's) gets a filter that writes secret query values (a stream
        client's ``cf_connect`` token, ``?token=``) as ``REDACTED``
        (:mod:`hubbub.server.hostlogs`). See docs/embedding.md."""
        from hubbub.server.asgi import HubASGI
        from hubbub.server.hostlogs import redact_host_access_logs

        redact_host_access_logs()
        return HubASGI(self, config, flags)

    def settings(self, config: str | Path | None = None, **flags: Any) -> Settings:
        """The settings this hub is served with: ``flags`` over HUBBUB_* variables over the
        TOML file (``config``, else ``$HUBBUB_CONFIG``, else ``./hubbub.toml`` if it exists)
        over the hub's own defaults over hubbub's. Raises :class:`hubbub.ConfigError`."""
        path = Path(config) if config is not None else None
        return load_settings(flags, config_file=path, base=self.defaults)

    def run(self, config: str | Path | None = None, **flags: Any) -> None:
        """Serve this hub until SIGINT/SIGTERM, in this process (it owns the event loop:
        call it from a script's ``__main__``, not from async code).

        ``flags`` are `hubbub serve`'s options by their setting names, any configuration
        key: ``hub.run(port=9000, host="0.0.0.0", log_level="debug", api_key=...)``; they
        win over the environment (HUBBUB_*), the TOML file ``config`` (a path; else
        ``$HUBBUB_CONFIG``, else ``./hubbub.toml`` if present) and the hub's defaults.
        Logging goes to stderr at ``log_level`` in ``log_format`` (text or json) as with
        `hubbub serve` (unless the application configured logging first,
        :mod:`hubbub.logs`); the ready line is printed on stdout.
        ``workers`` above 1 is refused: run ``hubbub serve --app module:hub --workers N``.
        Raises :class:`hubbub.ConfigError` for bad settings and :class:`hubbub.ListenError`
        when the port cannot be bound."""
        from hubbub.server.runner import run_loop, serve

        settings = self.settings(config, **flags)
        if settings.workers > 1:
            raise ConfigError(
                [
                    f"workers: hub.run() serves one process; for {settings.workers} run "
                    "hubbub serve --app module:hub --workers N"
                ]
            )
        logs.configure(settings.log_level, settings.log_format)
        run_loop(settings, serve(settings, hub=self))
