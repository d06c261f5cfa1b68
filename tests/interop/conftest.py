"""Interop tests run the example chat hub (examples/chat_hub.py) and drive real SDKs."""

from __future__ import annotations

import pytest

from tests.conftest import StartServer
from tests.support.server import ServerProcess


@pytest.fixture
def chat_server(start_server: StartServer) -> ServerProcess:
    return start_server("--app", "examples.chat_hub:hub")
