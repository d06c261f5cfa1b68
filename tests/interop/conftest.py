"""Interop tests run the example chat hub (examples/chat_hub.py) and drive real SDKs, on each
engine: the embedded default, Redis and PostgreSQL (the client protocol must not change with
the engine)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import StartServer
from tests.support.server import ServerProcess

CHAT_APP = ("--app", "examples.chat_hub:hub")
#: The chat hub plus ``raw:`` channels whose publications are not rewritten.
VERBATIM_APP = ("--app", "tests.interop.verbatim_hub:hub")

Restart = Callable[[ServerProcess], ServerProcess]


@pytest.fixture(params=["embedded", "redis", "postgresql"])
def chat_engine(request: pytest.FixtureRequest) -> tuple[str, ...]:
    """The ``--engine`` arguments of each engine (none for the embedded one)."""
    if request.param == "embedded":
        return ()
    if request.param == "redis":
        url = request.getfixturevalue("redis_server").url
    else:
        url = request.getfixturevalue("postgres_url")
    return ("--engine", url)


@pytest.fixture
def chat_args(chat_engine: tuple[str, ...], tmp_path: Path) -> tuple[str, ...]:
    """The chat hub's arguments, its data directory included (kept over a restart)."""
    return (*CHAT_APP, *chat_engine, "--data-dir", str(tmp_path / "chat-data"))


@pytest.fixture
def chat_server(start_server: StartServer, chat_args: tuple[str, ...]) -> ServerProcess:
    return start_server(*chat_args)


@pytest.fixture
def restart_chat(start_server: StartServer, chat_args: tuple[str, ...]) -> Restart:
    """``restart_chat(server)``: stop ``server`` with SIGTERM (waiting for it to exit), then
    start the chat hub again on the same port, data directory and engine. Blocking."""

    def restart(old: ServerProcess) -> ServerProcess:
        assert old.terminate() == 0, old.stderr()
        return start_server(*chat_args, "--port", str(old.port))

    return restart


@pytest.fixture
def verbatim_server(start_server: StartServer, chat_engine: tuple[str, ...]) -> ServerProcess:
    return start_server(*VERBATIM_APP, *chat_engine)
