"""Listening and accepting: hubbub accepts TCP connections itself, so that running out of file
descriptors pauses accepting instead of flooding the log or closing the listener.

Why not ``loop.create_server``: on EMFILE, asyncio (3.11) logs a traceback for each of up to
``backlog`` accept attempts per wake-up and schedules one retry per attempt; uvloop closes the
listening socket for good on an accept error that libuv passes up (its EMFILE trick aside). Here:

- :class:`SocketBudget`: the TCP connections of the process (every listener together) may use
  the open-file limit less a reserve for engines, files and the listening sockets themselves
  (:func:`socket_budget`). While it is spent, nothing is accepted (clients wait in the kernel's
  backlog) until a connection closes; the fd limit itself is then never what refuses a client.
- :class:`Acceptor`: on an accept error (EMFILE, ENFILE, ENOBUFS, ENOMEM, anything unexpected)
  it stops accepting for a back-off (0.1 s, doubling up to 2 s; reset by the next accepted
  connection) and logs at most one line per :data:`LOG_EVERY` seconds. The listening socket
  stays open whatever happens. With a TLS context, an accepted connection's TLS handshake
  must complete within the acceptor's ``handshake_timeout``, else the socket is closed (a
  client that connects and never speaks TLS holds nothing); a failed handshake (plain HTTP
  sent to the TLS port, an unknown CA at the client) is one DEBUG line.
The aiohttp site that listens this way is :class:`hubbub.server.edge.EdgeSite`.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import time
from collections.abc import Callable
from typing import Any, Final

try:
    import resource
except ImportError:  # pragma: no cover (not a Unix)
    resource = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

#: Of the open-file limit, the share (and the least number) kept for what is not a client
#: socket: engine connections, SQLite files, static files being sent, listening sockets.
FD_RESERVE_SHARE: Final = 0.05
FD_RESERVE_MIN: Final = 64
#: Of the socket budget, the share left to plain HTTP (health checks, the API, the 503 answers
#: to handshakes over client_connection_limit) by the default WebSocket limit.
HTTP_SHARE: Final = 0.1
#: Connections accepted per wake-up of a listening socket before other work gets a turn.
ACCEPT_BATCH: Final = 64
BACKOFF_MIN: Final = 0.1
BACKOFF_MAX: Final = 2.0
#: Seconds between two log lines about the same trouble (the lines in between are counted).
LOG_EVERY: Final = 10.0


def open_file_limit() -> int | None:
    """The process's soft RLIMIT_NOFILE; ``None`` when unlimited or unknown."""
    if resource is None:  # pragma: no cover
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY or soft <= 0 else soft


def socket_budget(open_files: int | None) -> int | None:
    """TCP connections a process with this open-file limit keeps open at most: the limit less
    a reserve of :data:`FD_RESERVE_SHARE` (at least :data:`FD_RESERVE_MIN`, at most half)."""
    if open_files is None:
        return None
    reserve = min(max(FD_RESERVE_MIN, int(open_files * FD_RESERVE_SHARE)), open_files // 2)
    return max(1, open_files - reserve)


def default_connection_limit(open_files: int | None) -> int | None:
    """``client_connection_limit`` when none is configured: the socket budget less
    :data:`HTTP_SHARE` of it, so that a node full of WebSockets still answers HTTP."""
    budget = socket_budget(open_files)
    if budget is None:
        return None
    return max(1, budget - int(budget * HTTP_SHARE))


class LogThrottle:
    """Logs at most one line per ``every`` seconds; lines left out are counted in the next."""

    __slots__ = ("_every", "_logger", "_next", "_skipped")

    def __init__(self, logger: logging.Logger, every: float = LOG_EVERY) -> None:
        self._logger = logger
        self._every = every
        self._next = 0.0
        self._skipped = 0

    def warning(self, message: str, *args: object) -> None:
        now = time.monotonic()
        if now < self._next:
            self._skipped += 1
            return
        self._next = now + self._every
        if self._skipped:
            message += " (%d more since the last report)"
            args = (*args, self._skipped)
            self._skipped = 0
        self._logger.warning(message, *args)


class SocketBudget:
    """Open TCP connections of the process against a maximum (``None``: no maximum): a
    connection counts from its accept until its :class:`Release` is called."""

    __slots__ = ("_waiters", "maximum", "open")

    def __init__(self, maximum: int | None) -> None:
        self.maximum = maximum
        self.open = 0
        self._waiters: list[Callable[[], None]] = []

    @property
    def spent(self) -> bool:
        return self.maximum is not None and self.open >= self.maximum

    def take(self) -> Release:
        self.open += 1
        return Release(self)

    def _give_back(self) -> None:
        self.open -= 1
        if self._waiters and not self.spent:
            waiters, self._waiters = self._waiters, []
            for callback in waiters:
                callback()

    def when_free(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (once) when a connection closes while the budget is spent."""
        self._waiters.append(callback)

    def forget(self, callback: Callable[[], None]) -> None:
        self._waiters = [w for w in self._waiters if w != callback]


class Release:
    """Gives one connection's place in a :class:`SocketBudget` back; calls after the first
    do nothing (the connection's protocol calls it when the connection is lost, the acceptor
    when the connection could not be set up)."""

    __slots__ = ("_budget",)

    def __init__(self, budget: SocketBudget) -> None:
        self._budget: SocketBudget | None = budget

    def __call__(self) -> None:
        budget, self._budget = self._budget, None
        if budget is not None:
            budget._give_back()


async def bind(host: str, port: int, *, reuse_port: bool, backlog: int) -> list[socket.socket]:
    """Listening, non-blocking sockets for every address ``host`` resolves to (as
    ``loop.create_server`` makes them: SO_REUSEADDR, IPv6 sockets IPv6 only)."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    sockets: list[socket.socket] = []
    seen: set[tuple[int, Any]] = set()
    try:
        for family, kind, proto, _, address in infos:
            if (family, address) in seen:
                continue
            seen.add((family, address))
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(backlog)
            sock.setblocking(False)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


#: Makes the protocol of an accepted connection; it must call the release it is given when its
#: connection is lost.
ProtocolFactory = Callable[[Release], asyncio.Protocol]


class Acceptor(asyncio.AbstractServer):
    """Accepts connections on ``sockets`` and hands each to a protocol from ``factory``; see
    the module docstring for what it does when the budget is spent or accepting fails."""

    def __init__(
        self,
        sockets: list[socket.socket],
        factory: ProtocolFactory,
        budget: SocketBudget,
        *,
        tls: ssl.SSLContext | None = None,
        handshake_timeout: float = 60.0,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._tls = tls
        self._handshake_timeout = handshake_timeout
        self._sockets = sockets
        self._factory = factory
        self._budget = budget
        self._reading = False
        self._closed = False
        self._waiting_budget = False
        self._backoff = BACKOFF_MIN
        self._retry: asyncio.TimerHandle | None = None
        self._connecting: set[asyncio.Task[None]] = set()
        self._throttle = LogThrottle(log)

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        return tuple(self._sockets)

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def is_serving(self) -> bool:
        return not self._closed

    async def start_serving(self) -> None:
        self._read(True)

    async def serve_forever(self) -> None:
        raise NotImplementedError("an Acceptor serves once started; close() ends it")

    def close(self) -> None:
        """Stop accepting and close the listening sockets (accepted connections stay)."""
        if self._closed:
            return
        self._read(False)
        self._closed = True
        if self._retry is not None:
            self._retry.cancel()
        self._budget.forget(self._resume)
        for sock in self._sockets:
            sock.close()

    async def wait_closed(self) -> None:
        return None

    def _read(self, on: bool) -> None:
        if on == self._reading or self._closed:
            return
        self._reading = on
        for sock in self._sockets:
            if on:
                self._loop.add_reader(sock.fileno(), self._on_readable, sock)
            else:
                self._loop.remove_reader(sock.fileno())

    def _resume(self) -> None:
        self._retry = None
        self._waiting_budget = False
        self._read(True)

    def _on_readable(self, sock: socket.socket) -> None:
        budget = self._budget
        for _ in range(ACCEPT_BATCH):
            if budget.spent:
                self._wait_for_budget()
                return
            try:
                conn, _ = sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue
            except OSError as exc:
                self._back_off(exc)
                return
            self._backoff = BACKOFF_MIN
            self._start(conn)

    def _wait_for_budget(self) -> None:
        self._read(False)
        if not self._waiting_budget:
            self._waiting_budget = True
            self._budget.when_free(self._resume)
        self._throttle.warning(
            "not accepting connections: %d of %d sockets in use (open-file limit %s)",
            self._budget.open,
            self._budget.maximum,
            open_file_limit(),
        )

    def _back_off(self, exc: OSError) -> None:
        self._read(False)
        delay = self._backoff
        self._backoff = min(BACKOFF_MAX, delay * 2)
        self._throttle.warning(
            "accepting paused for %.1fs: %s (%d sockets open)", delay, exc, self._budget.open
        )
        if self._retry is None:
            self._retry = self._loop.call_later(delay, self._resume)

    def _start(self, conn: socket.socket) -> None:
        conn.setblocking(False)
        release = self._budget.take()
        try:
            protocol = self._factory(release)
        except Exception:
            log.exception("could not serve an accepted connection")
            release()
            conn.close()
            return
        task = self._loop.create_task(self._connect(conn, protocol, release))
        self._connecting.add(task)
        task.add_done_callback(self._connecting.discard)

    async def _connect(
        self, conn: socket.socket, protocol: asyncio.Protocol, release: Release
    ) -> None:
        try:
            # On failure the loop closes the transport (and with it the socket) itself.
            if self._tls is None:
                await self._loop.connect_accepted_socket(lambda: protocol, conn)
            else:
                await self._loop.connect_accepted_socket(
                    lambda: protocol,
                    conn,
                    ssl=self._tls,
                    ssl_handshake_timeout=self._handshake_timeout,
                )
        except BaseException as exc:
            release()  # (again when the protocol is lost, if it was connected: a no-op)
            if not isinstance(exc, OSError):  # ssl.SSLError and the handshake timeout are
                raise
            log.debug("accepted connection lost before it was served: %s", exc)
