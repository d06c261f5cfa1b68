"""The docs' code runs as written: the getting-started clients against a real server, and the
token endpoint recipe's tokens accepted by a server with the same secret (a connection, and a
private channel with a subscription token)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import make_mocked_request
from centrifuge import Client, ClientEventHandler

from tests.conftest import StartServer
from tests.support.sdk import SDK_GARBAGE
from tests.support.timing import scaled

pytestmark = [
    pytest.mark.e2e,
    *SDK_GARBAGE,  # centrifuge-python in this process (tests/support/sdk.py)
]

DOCS = Path(__file__).resolve().parents[2] / "docs"
SECRET = "docs-example-secret-0123456789abcdef"


def block_after(page: str, marker: str, lang: str = "python") -> str:
    """The first ```lang block after ``marker`` in ``docs/page``."""
    text = (DOCS / page).read_text("utf-8")
    match = re.search(rf"```{lang}\n(.*?)```", text[text.index(marker) :], re.S)
    assert match is not None, f"no {lang} block after {marker!r} in {page}"
    return match.group(1)


def run_script(code: str, tmp_path: Path) -> str:
    script = tmp_path / "example.py"
    script.write_text(code)
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=scaled(60))  # fmt: skip
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_getting_started_clients_run(start_server: StartServer, tmp_path: Path) -> None:
    """The echo client (aiohttp) and the centrifuge-python subscriber of getting-started.md,
    pointed at a server, print what the page says."""
    server = start_server()
    echo = block_after("getting-started.md", "From Python, with aiohttp")
    assert "ws://127.0.0.1:8765/" in echo
    out = run_script(echo.replace("ws://127.0.0.1:8765", server.ws), tmp_path)
    assert out.splitlines() == ["Hello, Server!"]

    sdk = block_after("getting-started.md", "With centrifuge-python")
    assert "ws://127.0.0.1:8765/connection/websocket" in sdk
    out = run_script(sdk.replace("ws://127.0.0.1:8765", server.ws), tmp_path)
    assert out.splitlines() == ["news: {'text': 'hello'}"]


def recipe(marker: str) -> dict[str, Any]:
    """The token recipe's code block after ``marker``, executed with the secret set."""
    code = block_after("recipes/token-endpoint.md", marker)
    namespace: dict[str, Any] = {"__name__": "token_recipe"}
    old = os.environ.get("HUBBUB_TOKEN_HMAC_SECRET")
    os.environ["HUBBUB_TOKEN_HMAC_SECRET"] = SECRET
    try:
        exec(compile(code, "token-endpoint.md", "exec"), namespace)
    finally:
        if old is None:
            del os.environ["HUBBUB_TOKEN_HMAC_SECRET"]
        else:
            os.environ["HUBBUB_TOKEN_HMAC_SECRET"] = old
    return namespace


async def test_the_token_recipes_tokens_are_accepted(start_server: StartServer) -> None:
    """A connection token from the FastAPI route connects as its user; a subscription token
    from it opens the user's private channel; the route refuses another user's channel and
    an unauthenticated caller."""
    from fastapi import HTTPException

    fastapi_recipe = recipe("## With FastAPI")
    server = start_server(
        "--token-hmac-secret",
        SECRET,
        "--no-allow-anonymous",
        config='[[namespaces]]\nname = "user"\npresence = true\n',
    )
    with pytest.raises(HTTPException) as refused:
        fastapi_recipe["current_user"](None)
    assert refused.value.status_code == 401
    with pytest.raises(HTTPException) as refused:
        await fastapi_recipe["subscription_token"](channel="$user:bob", user="ada")
    assert refused.value.status_code == 403

    token = (await fastapi_recipe["connection_token"](user="ada"))["token"]
    sub_token = (await fastapi_recipe["subscription_token"](channel="$user:ada", user="ada"))[
        "token"
    ]
    client = Client(f"{server.ws}/connection/websocket", token=token, events=ClientEventHandler())
    try:
        await client.connect()
        await client.ready(scaled(10))
        sub = client.new_subscription("$user:ada", token=sub_token)
        await sub.subscribe()
        await sub.ready(scaled(10))
        result = await asyncio.wait_for(sub.presence(), scaled(10))
        assert [c.user for c in result.clients.values()] == ["ada"]
    finally:
        await client.disconnect()


async def test_the_aiohttp_token_route(start_server: StartServer) -> None:
    """The aiohttp variant refuses a caller without a user and mints a token that connects."""
    from aiohttp import web

    aiohttp_recipe = recipe("## With aiohttp")
    with pytest.raises(web.HTTPUnauthorized):
        await aiohttp_recipe["connection_token"](make_mocked_request("GET", "/token"))
    request = make_mocked_request("GET", "/token")
    request[aiohttp_recipe["USER"]] = "ada"
    reply = await aiohttp_recipe["connection_token"](request)
    token = json.loads(reply.body)["token"]
    server = start_server("--token-hmac-secret", SECRET, "--no-allow-anonymous")
    client = Client(f"{server.ws}/connection/websocket", token=token, events=ClientEventHandler())
    try:
        await client.connect()
        await client.ready(scaled(10))
    finally:
        await client.disconnect()
