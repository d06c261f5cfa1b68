"""A webhook backend for the tests: an aiohttp.web app in the test's process, on a free port.

:class:`PusherReceiver` is a Pusher app's backend, checking with the ``pusher`` library.

Scriptable: ``mode`` is what the next requests get (``ok``: 200; ``fail``: 500; ``slow``: an
answer later than hubbub's timeout); :meth:`down` stops listening (connections refused) and
:meth:`up` listens again on the same port. Every request's signature is checked with
``hubbub.webhooks.verify`` (a bad one is answered 401 and counted); accepted events are kept
by id, so a retried event counts once in :attr:`events` (and once more in ``repeats``).
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections import Counter
from typing import Any

from aiohttp import web

from hubbub.webhooks import verify
from tests.support.timing import scaled

SECRET = "webhook-secret-for-the-tests-0123456789"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Receiver:
    def __init__(self, secret: str = SECRET) -> None:
        self.secret = secret
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.mode = "ok"
        self.slow_seconds = 3.0
        #: Accepted events by id, in arrival order.
        self.events: dict[str, dict[str, Any]] = {}
        self.repeats: Counter[str] = Counter()
        self.requests = 0
        self.answers: Counter[int] = Counter()
        self.bad_signatures = 0
        self.batch_sizes: list[int] = []
        #: The headers of the last request.
        self.headers: dict[str, str] = {}
        self._runner: web.AppRunner | None = None

    async def _hook(self, request: web.Request) -> web.Response:
        self.requests += 1
        self.headers = dict(request.headers)
        body = await request.read()
        if not verify(body, request.headers.get("X-Hubbub-Signature"), self.secret):
            self.bad_signatures += 1
            return self._answer(401)
        if self.mode == "fail":
            return self._answer(500)
        if self.mode == "slow":
            await asyncio.sleep(self.slow_seconds)
            return self._answer(200)
        batch = json.loads(body)
        assert isinstance(batch, list) and batch
        self.batch_sizes.append(len(batch))
        for event in batch:
            if event["id"] in self.events:
                self.repeats[event["id"]] += 1
            else:
                self.events[event["id"]] = event
        return self._answer(200)

    def _answer(self, status: int) -> web.Response:
        self.answers[status] += 1
        return web.Response(status=status)

    async def up(self) -> None:
        if self._runner is not None:
            return
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", self.port, reuse_address=True)
        await site.start()
        self._runner = runner

    async def down(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def of_type(self, kind: str, **fields: Any) -> list[dict[str, Any]]:
        """The accepted events of ``kind`` whose fields have the values given."""
        return [
            e
            for e in self.events.values()
            if e["type"] == kind and all(e.get(k) == v for k, v in fields.items())
        ]

    def config(self, **extra: Any) -> str:
        """TOML for a hubbub that sends its webhooks here (quick retries for the tests)."""
        lines = [
            f'webhook_url = "{self.url}"',
            f'webhook_secret = "{self.secret}"',
            "webhook_max_backoff = 0.3",
            "webhook_timeout = 1.0",
        ]
        lines += [f"{key} = {json.dumps(value)}" for key, value in extra.items()]
        return "\n".join(lines) + "\n"


#: The Pusher app of :class:`PusherReceiver` (id, key, secret).
PUSHER_APP = ("4711", "hooks-app-key", "hooks-app-secret-0123456789")


class PusherReceiver:
    """A Pusher app's webhook backend: every request is checked with the ``pusher`` PyPI
    library's ``validate_webhook`` (key, signature, and ``time_ms`` within its 300 s); one
    it refuses is answered 401 and counted in ``bad_signatures``. ``fail_first`` requests
    are answered 500 after ``fail_delay`` seconds (checked all the same). Every request is
    kept in ``requests`` (its headers, its body parsed, whether it validated); the events of
    the accepted ones in ``events``, in arrival order (Pusher events have no id: a retried
    batch that was accepted once would come twice)."""

    def __init__(self, app: tuple[str, str, str] = PUSHER_APP) -> None:
        import pusher

        self.app_id, self.key, self.secret = app
        self.client = pusher.Pusher(app_id=self.app_id, key=self.key, secret=self.secret)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/pusher-hook"
        self.fail_first = 0
        self.fail_delay = 0.0
        self.requests: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        self.bad_signatures = 0
        self._runner: web.AppRunner | None = None

    async def _hook(self, request: web.Request) -> web.Response:
        raw = await request.read()
        valid = self.client.validate_webhook(
            request.headers.get("X-Pusher-Key", ""),
            request.headers.get("X-Pusher-Signature", ""),
            raw,
        )
        self.requests.append(
            {"headers": dict(request.headers), "body": json.loads(raw), "valid": valid is not None}
        )
        if valid is None:
            self.bad_signatures += 1
            return web.Response(status=401)
        if self.fail_first > 0:
            self.fail_first -= 1
            await asyncio.sleep(self.fail_delay)
            return web.Response(status=500)
        self.events.extend(valid["events"])
        return web.Response(status=200)

    async def up(self) -> None:
        if self._runner is not None:
            return
        app = web.Application()
        app.router.add_post("/pusher-hook", self._hook)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port, reuse_address=True).start()
        self._runner = runner

    async def down(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def of_type(self, kind: str, **fields: Any) -> list[dict[str, Any]]:
        """The accepted events named ``kind`` whose fields have the values given."""
        return [
            e
            for e in self.events
            if e["name"] == kind and all(e.get(k) == v for k, v in fields.items())
        ]

    def app_config(self, **extra: Any) -> str:
        """A ``[[pusher_apps]]`` entry (TOML) of this app, its webhooks sent here."""
        lines = [
            "[[pusher_apps]]",
            f'id = "{self.app_id}"',
            f'key = "{self.key}"',
            f'secret = "{self.secret}"',
            f'webhook_url = "{self.url}"',
        ]
        lines += [f"{key} = {json.dumps(value)}" for key, value in extra.items()]
        return "\n".join(lines) + "\n"


class ThreadedReceiver:
    """A :class:`Receiver` (or a :class:`PusherReceiver`) in a thread with its own event loop,
    so that one receiver serves a module's tests (each runs in its own loop): the matrix's
    deployments send their webhooks here. Its events are read through :meth:`of_type`, a copy
    taken in the receiver's loop."""

    def __init__(self, receiver: Receiver | PusherReceiver | None = None) -> None:
        self.receiver = receiver if receiver is not None else Receiver()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def start(self) -> ThreadedReceiver:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.receiver.up(), self._loop).result(scaled(10))
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.receiver.down(), self._loop).result(scaled(10))
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(scaled(10))
        self._loop.close()

    def config(self) -> str:
        assert isinstance(self.receiver, Receiver)
        return self.receiver.config()

    def of_type(self, kind: str, **fields: Any) -> list[dict[str, Any]]:
        async def copy() -> list[dict[str, Any]]:
            return self.receiver.of_type(kind, **fields)

        return asyncio.run_coroutine_threadsafe(copy(), self._loop).result(scaled(10))

    @property
    def bad_signatures(self) -> int:
        return self.receiver.bad_signatures


class EndlessBodyReceiver:
    """A raw asyncio server that answers every POST ``200 OK`` with ``Content-Length:
    1000000`` and then never ends the body: nothing more (``trickle`` None) or one byte every
    ``trickle`` seconds. The events of each request are counted by id in :attr:`seen`."""

    ANSWER: bytes = b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n"

    def __init__(self, trickle: float | None = None) -> None:
        self.trickle = trickle
        self.seen: Counter[str] = Counter()
        self.requests = 0
        self.url = ""
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def up(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/hook"

    async def down(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in self._writers:
                writer.close()
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:  # (a request per round: the client may reuse the connection)
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                body = await reader.readexactly(length)
                self.requests += 1
                self.seen.update(event["id"] for event in json.loads(body))
                writer.write(self.ANSWER)
                await writer.drain()
                if self.trickle is None:
                    await reader.read()  # (until the client hangs up)
                    return
                while True:
                    await asyncio.sleep(self.trickle)
                    writer.write(b" ")
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            return
        finally:
            self._writers.discard(writer)
            writer.close()
