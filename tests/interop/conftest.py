"""Interop tests run the example chat hub (examples/chat_hub.py) and drive real SDKs, on each
engine: the embedded default, Redis and PostgreSQL (the client protocol must not change with
the engine)."""

from __future__ import annotations

import pytest

from tests.conftest import StartServer
from tests.support.server import ServerProcess


@pytest.fixture(params=["embedded", "redis", "postgresql"])
def chat_server(request: pytest.FixtureRequest, start_server: StartServer) -> ServerProcess:
    if request.param == "embedded":
        return start_server("--app", "examples.chat_hub:hub")
    if request.param == "redis":
        url = request.getfixturevalue("redis_server").url
    else:
        url = request.getfixturevalue("postgres_url")
    return start_server("--app", "examples.chat_hub:hub", "--engine", url)
