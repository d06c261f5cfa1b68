"""Running the server as a process: listen, report readiness, shut down gracefully.

On SIGINT or SIGTERM: stop accepting connections, close every WebSocket with 1001
"going away", wait for the handlers to finish, and return, all within
``settings.shutdown_timeout`` seconds (stragglers are cut off when it runs out).

Every step of the shutdown has a deadline, so the process exits whatever hangs: a
listener's clean-up gets aiohttp's share plus :data:`LISTENER_STOP_MIN`, the engines' stop
what is left of ``shutdown_timeout`` (at least ``lifecycle.STOP_MIN`` seconds,
:mod:`hubbub.server.lifecycle`), and either is cut off, with an error logged, when it takes
longer; :func:`run_loop`
then gives the tasks still running :data:`LEFTOVER_GRACE` seconds after their
cancellation and closes the loop without them (asyncio.run would wait for ever for a task
that ignores its cancellation). So ``hubbub serve`` exits at most about
``shutdown_timeout`` + ``lifecycle.STOP_MIN`` + :data:`LEFTOVER_GRACE` seconds after the
signal.

Connections are accepted by :mod:`hubbub.server.listener` (a socket budget below the open-file
limit, back-off on accept errors) and served by :mod:`hubbub.server.edge` (handshake timeout,
header size limit); both ports share one budget.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import ssl
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Final, TypeVar

from aiohttp import web

from hubbub import __version__
from hubbub.bounded import bounded, stop_tasks
from hubbub.config import Settings
from hubbub.errors import ConfigError, ListenError
from hubbub.server.app import HANDLERS_KEY, make_api_app, make_app
from hubbub.server.edge import EdgeRunner, EdgeSite
from hubbub.server.lifecycle import NodeRun, node_running
from hubbub.server.listener import SocketBudget, open_file_limit, socket_budget
from hubbub.server.tls import server_context

if TYPE_CHECKING:  # the hub runs the server (Hub.run): at run time this way only
    from hubbub.hub import Hub

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Of the shutdown budget, the share kept for aiohttp's own clean-up after the close handshakes.
CLEANUP_SHARE: Final = 0.2
#: Seconds a listener's clean-up gets beyond aiohttp's own wait.
LISTENER_STOP_MIN: Final = 1.0
#: Seconds the tasks still running when the server has stopped get after their cancellation.
LEFTOVER_GRACE: Final = 0.5


#: The cyclic GC's thresholds for a process that is a hubbub server (Python's default is
#: 700, 10, 10). Every connection is a few dozen long-lived objects, so the default young
#: collections come every few connections and the older ones rescan them all; measured
#: (bench, 10,000 connections): connect+subscribe 2.2k/s -> 3.5k/s. Garbage in cycles is
#: collected after at most 10,000 allocations instead of 700.
GC_THRESHOLDS: Final = (10_000, 50, 100)


def run_loop(settings: Settings, main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` to completion on the event loop ``settings.event_loop`` asks for: uvloop
    when it is installed (``auto``) or required (``uvloop``), else asyncio's own. For the
    entry points that own the process (``hubbub serve``, ``Hub.run``): it also sets
    :data:`GC_THRESHOLDS`."""
    gc.set_threshold(*GC_THRESHOLDS)
    choice = settings.event_loop
    new_loop: Callable[[], asyncio.AbstractEventLoop] = asyncio.new_event_loop
    if choice != "asyncio":
        try:
            import uvloop
        except ImportError:
            if choice == "uvloop":
                main.close()
                raise ConfigError(
                    ["event_loop: uvloop is not installed (pip install 'hubbub[fast]')"]
                ) from None
        else:
            new_loop = uvloop.new_event_loop
    return _run(main, new_loop())


def _run(main: Coroutine[Any, Any, T], loop: asyncio.AbstractEventLoop) -> T:
    """asyncio.run on ``loop``, except that the tasks left when ``main`` returns get
    :data:`LEFTOVER_GRACE` seconds to end once cancelled, not for ever."""
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(main)
    finally:
        try:
            leftover = asyncio.all_tasks(loop)
            if leftover:
                loop.run_until_complete(stop_tasks(leftover, LEFTOVER_GRACE, "leftover task"))
            loop.run_until_complete(
                bounded(loop.shutdown_asyncgens(), LEFTOVER_GRACE, "closing async generators")
            )
            loop.run_until_complete(
                bounded(loop.shutdown_default_executor(), LEFTOVER_GRACE, "the default executor")
            )
        finally:
            asyncio.set_event_loop(None)
            loop.close()


def listen_url(host: str, port: int, *, tls: bool = False) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"{'https' if tls else 'http'}://{shown}:{port}"


async def serve(
    settings: Settings,
    *,
    hub: Hub | None = None,
    on_ready: Callable[[str], None] = print,
    stop: asyncio.Event | None = None,
    reuse_port: bool = False,
) -> None:
    """Serve until SIGINT/SIGTERM (or until ``stop`` is set), then shut down gracefully.

    ``on_ready`` receives the line ``hubbub X listening on http://H:P`` (``https://`` with
    TLS) once connections are
    accepted (with the real port when ``settings.port`` is 0), after the hub's startup
    functions were started (:mod:`hubbub.startup`); they are cancelled at shutdown once the
    connections are closed, before the engines stop.
    """
    tls = server_context(settings)  # bad TLS files: a ConfigError before anything starts
    loop = asyncio.get_running_loop()
    stop = stop or asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    cleanup_budget = settings.shutdown_timeout * CLEANUP_SHARE
    try:
        async with node_running(settings, hub, cleanup_budget=cleanup_budget) as run:
            await _serve_node(run, on_ready, stop, reuse_port, cleanup_budget, tls)
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
    log.info("stopped")


async def _serve_node(
    run: NodeRun,
    on_ready: Callable[[str], None],
    stop: asyncio.Event,
    reuse_port: bool,
    cleanup_budget: float,
    tls: ssl.SSLContext | None,
) -> None:
    """The aiohttp edge over a started node, until ``stop`` is set; its sockets are closed
    when this returns (the node is stopped after, by :func:`node_running`)."""
    settings, node = run.settings, run.node
    app = make_app(settings, node, run.hooks)
    run.handlers = app[HANDLERS_KEY]
    sockets = SocketBudget(socket_budget(open_file_limit()))
    runner = EdgeRunner(app, settings, sockets, shutdown_timeout=cleanup_budget)
    await runner.setup()
    cleanups: list[web.AppRunner] = []
    try:
        site = EdgeSite(runner, settings.host, settings.port, reuse_port=reuse_port, tls=tls)
        try:
            await site.start()
        except OSError as exc:
            raise ListenError(settings.host, settings.port, exc) from None
        port = runner.addresses[0][1]
        api_line = None
        if settings.api_port is not None:
            api_runner = EdgeRunner(make_api_app(settings, node), settings, sockets)
            await api_runner.setup()
            cleanups.append(api_runner)
            api_site = EdgeSite(
                api_runner, settings.host, settings.api_port, reuse_port=reuse_port, tls=tls
            )
            try:
                await api_site.start()
            except OSError as exc:
                raise ListenError(settings.host, settings.api_port, exc) from None
            api_port = api_runner.addresses[0][1]
            api_url = listen_url(settings.host, api_port, tls=tls is not None)
            api_line = f"hubbub server API at {api_url}/api"
        run.start_tasks()
        url = listen_url(settings.host, port, tls=tls is not None)
        on_ready(f"hubbub {__version__} listening on {url}")
        log.info("listening on %s", url, extra={"version": __version__, "pid": os.getpid()})
        if api_line is not None:
            on_ready(api_line)
        await stop.wait()
        run.deadline = asyncio.get_running_loop().time() + settings.shutdown_timeout
        log.info("shutting down: closing %d connections", node.connection_count)
        await site.stop()
        await run.close_connections(settings.shutdown_timeout - cleanup_budget)
    finally:
        step = cleanup_budget + LISTENER_STOP_MIN  # (aiohttp's own wait is cleanup_budget)
        for extra in (*cleanups, runner):
            await bounded(extra.cleanup(), step, "closing a listener")
