"""The deployment matrix: every scenario of ``tests/matrix/`` runs on every row of
:data:`DEPLOYMENTS` (engine x history store x topology).

A new engine or topology joins the matrix by adding a row; a new wire (dialect) joins by
adding its scenarios to ``test_matrix.py``. Each deployment is started once per module (its
servers shared by the scenarios, which use channels and users of their own) and stopped at the
end. Rows that need Redis or PostgreSQL skip without them, and fail under ``CI=true``.
"""

from __future__ import annotations

import asyncio
import itertools
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from hubbub.auth import mint
from tests.support.proxy_backend import Backend
from tests.support.server import ServerProcess
from tests.support.timing import scaled
from tests.support.webhook_receiver import ThreadedReceiver

KEY = "matrix-api-key-0123456789"
SECRET = "m" * 40
CONFIG = f"""
presence_ttl = 3
token_hmac_secret = "{SECRET}"
write_buffer_limit = 65536
client_command_rate = 100000
client_command_burst = 100000
client_expired_close_delay = 0
"""
#: Namespaces, after the top-level keys (the fixture adds some of those).
NAMESPACES = """
[[namespaces]]
name = "delta"
allowed_delta_types = ["fossil"]
history_size = 20
history_ttl = 60
force_recovery = true

[[namespaces]]
name = "deltapub"
allowed_delta_types = ["fossil"]
delta_publish = true

[[namespaces]]
name = "tagged"
history_size = 100
history_ttl = 300
allow_tags_filter = true

[[namespaces]]
name = "uni"
history_size = 100
history_ttl = 300
force_recovery = true

[[namespaces]]
name = "cached"
history_size = 100
history_ttl = 300
force_recovery = true
force_recovery_mode = "cache"

[[namespaces]]
name = "pshared"
history_size = 100
history_ttl = 300
presence = true

[[pusher_apps]]
id = "100200"
key = "matrix-pusher"
secret = "matrix-pusher-secret-0123456789"
client_events = true

[[pusher_apps]]
id = "100300"
key = "matrix-pusher-shared"
secret = "matrix-pusher-shared-secret-0123"
namespace = "pshared"
"""
#: The Pusher apps of every deployment: (id, key, secret); the second shares its channels with
#: Centrifugo clients as namespace ``pshared``.
PUSHER_APP = ("100200", "matrix-pusher", "matrix-pusher-secret-0123456789")
PUSHER_SHARED = ("100300", "matrix-pusher-shared", "matrix-pusher-shared-secret-0123")


def proxied_namespace(backend: Backend) -> str:
    """The ``proxied`` namespace: subscribes and publishes decided by the HTTP proxy's
    scripted backend (the namespace's own endpoints: nothing else goes to the proxy)."""
    return f"""
[[namespaces]]
name = "proxied"
proxy_subscribe = true
proxy_publish = true
proxy_subscribe_endpoint = "{backend.url("subscribe")}"
proxy_publish_endpoint = "{backend.url("publish")}"
presence = true
"""


@pytest.fixture(scope="module")
def proxy_backend() -> Iterator[Backend]:
    """The HTTP proxy's backend, one per module (tests/support/proxy_backend.py)."""
    backend = Backend().start()
    yield backend
    backend.stop()


@pytest.fixture(scope="module")
def webhook_receiver() -> Iterator[ThreadedReceiver]:
    """The receiver every deployment sends its webhooks to, one per module
    (tests/support/webhook_receiver.py; scenarios pick their events by user and channel)."""
    receiver = ThreadedReceiver().start()
    yield receiver
    receiver.stop()


@dataclass(frozen=True)
class Row:
    """One deployment: ``engine`` memory | redis | pgengine; ``history`` (memory engine only)
    memory | sqlite | postgres; ``nodes`` separate processes; ``workers`` per process;
    ``edge`` hubbub (``hubbub serve``) | asgi (``hub.asgi()`` under uvicorn,
    tests/support/asgi_serve.py); ``write_delay`` (seconds) the servers hold output for."""

    name: str
    engine: str = "memory"
    history: str = "sqlite"
    nodes: int = 1
    workers: int = 1
    edge: str = "hubbub"
    write_delay: float = 0.0


DEPLOYMENTS = (
    Row("memory", history="memory"),
    Row("sqlite"),
    Row("pg-history", history="postgres"),
    Row("sqlite-write-delay", write_delay=0.02),
    Row("redis-2nodes", engine="redis", nodes=2),
    Row("redis-workers2", engine="redis", workers=2),
    Row("pgengine-2nodes", engine="pgengine", nodes=2),
    Row("pgengine-workers2", engine="pgengine", workers=2),
    Row("asgi-memory", history="memory", edge="asgi"),
    Row("asgi-redis-2nodes", engine="redis", nodes=2, edge="asgi"),
)
#: How each edge is started (None: ``hubbub serve``).
EDGE_COMMANDS: dict[str, list[str] | None] = {
    "hubbub": None,
    "asgi": [sys.executable, "-m", "tests.support.asgi_serve"],
}

_names = itertools.count(1)


def unique(prefix: str) -> str:
    """A channel, room or user name no other scenario uses."""
    return f"{prefix}{next(_names)}"


@dataclass
class Deployment:
    row: Row
    servers: list[ServerProcess]
    #: The cluster engine's URL and key prefix (Redis), for scenarios that reach into it.
    engine_url: str | None = None
    prefix: str = "hubbub"

    @property
    def clustered(self) -> bool:
        return self.row.engine != "memory"

    def node(self, i: int) -> ServerProcess:
        """The ``i``-th node, round robin (every node of the deployment gets used)."""
        return self.servers[i % len(self.servers)]

    def ws(self, i: int, path: str) -> str:
        return self.node(i).ws + path

    async def api(self, method: str, params: dict[str, Any], node: int = 0) -> Any:
        """Call the server API on ``node``; the result (asserting there is no error)."""
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                f"{self.node(node).url}/api/{method}", json=params, headers={"X-API-Key": KEY}
            ) as resp,
        ):
            body = await resp.json()
        assert "error" not in body, body
        return body["result"]

    async def wait_subscribers(self, channel: str, count: int) -> None:
        """Until the cluster counts ``count`` subscribers of ``channel`` (every node asked)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + scaled(15)
        while True:
            seen = []
            for i in range(len(self.servers)):
                result = await self.api("channels", {"pattern": channel}, node=i)
                seen.append(result["channels"].get(channel, {}).get("num_clients", 0))
            if all(n == count for n in seen):
                return
            if loop.time() > deadline:
                raise AssertionError(f"{channel}: subscribers {seen}, expected {count}")
            await asyncio.sleep(0.1)


def token(user: str) -> str:
    return mint(SECRET, user)


@pytest.fixture(scope="module", params=DEPLOYMENTS, ids=[r.name for r in DEPLOYMENTS])
def deployment(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    row: Row = request.param
    tmp: Path = tmp_path_factory.mktemp(row.name)
    config = CONFIG
    args = ["--api-key", KEY, "--config", str(tmp / "hubbub.toml")]
    engine_url, prefix = None, "hubbub"
    if row.edge == "asgi":
        pytest.importorskip("uvicorn", reason="a dev dependency: pip install -e '.[dev]'")
    if row.engine == "redis":
        from tests.conftest import need_binary
        from tests.support.redis import RedisServer

        redis = request.getfixturevalue("redis_session")
        assert isinstance(redis, RedisServer)
        need_binary("redis-server")
        engine_url, prefix = redis.url, unique("m")
        args += ["--engine", redis.url]
        config += f'engine_prefix = "{prefix}"\n'  # the session's Redis is shared
    elif row.engine == "pgengine":
        postgres = request.getfixturevalue("postgres")
        engine_url = postgres.create_database(unique("matrix"))
        args += ["--engine", engine_url]
    elif row.history == "postgres":
        postgres = request.getfixturevalue("postgres")
        args += ["--history", postgres.create_database(unique("matrix"))]
    elif row.history == "memory":
        args += ["--history", "memory"]
    if row.workers > 1:
        args += ["--workers", str(row.workers)]
    if row.write_delay:
        config += f"write_delay = {row.write_delay}\n"
    backend = request.getfixturevalue("proxy_backend")
    config += request.getfixturevalue("webhook_receiver").config()
    (tmp / "hubbub.toml").write_text(config + NAMESPACES + proxied_namespace(backend))
    servers: list[ServerProcess] = []
    try:
        for i in range(row.nodes):
            node_args = [*args, "--data-dir", str(tmp / f"data-{i}")]
            log = tmp / f"server-{i}.log"
            command = EDGE_COMMANDS[row.edge]
            servers.append(ServerProcess(node_args, None, log, command=command))
        yield Deployment(row, servers, engine_url, prefix)
    finally:
        for server in servers:
            try:
                server.terminate()
            finally:
                server.kill()
