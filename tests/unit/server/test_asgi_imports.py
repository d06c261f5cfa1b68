"""The ASGI edge imports nothing of aiohttp: hub.asgi() and hub.running() work in a process
where aiohttp cannot be imported."""

from __future__ import annotations

import os
import subprocess
import sys

CODE = """
import sys
sys.modules["aiohttp"] = None  # any import of it now fails
from hubbub.hub import Hub
import hubbub.server.asgi, hubbub.server.asgi_stream, hubbub.server.lifecycle
Hub().asgi()
print("ok")
"""


def test_the_asgi_edge_imports_without_aiohttp() -> None:
    """hubbub.server.asgi and what it imports do without aiohttp."""
    out = subprocess.run(
        [sys.executable, "-c", CODE], capture_output=True, text=True, timeout=60, env=os.environ
    )
    assert out.stdout.strip() == "ok", out.stderr
