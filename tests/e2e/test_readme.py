"""The README as a new user reads it: its Endpoints table names every route hubbub serves,
and its `cent` example runs as written against a server."""

from __future__ import annotations

import ast
import asyncio
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
from centrifuge import Client, PublicationContext, SubscriptionEventHandler

from hubbub.config import Settings
from hubbub.node import Node
from hubbub.server.app import make_app
from tests.conftest import StartServer
from tests.support.timing import scaled

pytestmark = pytest.mark.e2e

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()
KEY = "readme-key-0123456789"


def section(start: str, end: str) -> str:
    return README[README.index(start) : README.index(end, README.index(start))]


def code_after(marker: str, lang: str) -> str:
    """The first ```lang block after ``marker``."""
    rest = README[README.index(marker) :]
    match = re.search(rf"```{lang}\n(.*?)```", rest, re.S)
    assert match is not None, f"no {lang} block after {marker!r}"
    return match.group(1)


def test_endpoints_table_names_every_route() -> None:
    """Every path the app routes (demos and the API on the main port) is in the table, its
    variable part left out (`/rooms/{room}`, `/static/hubbub.js`, `/demo/chat`)."""
    table = section("## Endpoints", "Every WebSocket endpoint:")
    settings = Settings(history="memory")
    app = make_app(settings, Node(settings))
    paths = {route.resource.canonical for route in app.router.routes() if route.resource}
    folders = re.findall(r"`(/[\w/]*/)`", table)  # "its JSON under `/admin/api/`"

    def named(path: str) -> bool:
        fixed = path.split("{", 1)[0]
        return fixed.rstrip("/") in table or any(fixed.startswith(f) for f in folders)

    assert [p for p in sorted(paths) if not named(p)] == []
    for path in ("/metrics", "/api/{method}", "/admin", "/demo/chat", "/static/hubbub.js"):
        assert f"{path}`" in table, path


def test_cent_example_runs_as_written(start_server: StartServer, tmp_path: Path) -> None:
    server = start_server("--api-key", KEY)
    code = code_after("With `cent`", "python")
    assert "http://127.0.0.1:8765/api" in code
    script = tmp_path / "cent_example.py"
    script.write_text(code.replace("http://127.0.0.1:8765", server.url))
    env = {**os.environ, "HUBBUB_API_KEY": KEY}
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env,
                         timeout=scaled(60))  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["1", "[{'text': 'hello'}]"]


def test_readme_starts_with_getting_it_then_a_fastapi_snippet() -> None:
    """The first section says how to get hubbub (make run, pip from the checkout or a wheel)
    and how to call the CLI `make run` does not put on PATH; the second is a short FastAPI
    snippet with the embedding interface (hub.running() in the lifespan, hub.asgi() mounted,
    hub.publish from a route)."""
    sections = README.split("\n## ")
    get_it, fastapi = sections[1], sections[2]
    assert get_it.startswith("Get it\n")
    for needle in ("make run", "pip install", "pip wheel", ".venv/bin/hubbub", "source .venv/bin/"):
        assert needle in get_it, needle
    assert fastapi.startswith("Inside your FastAPI app\n")
    code = code_after("## Inside your FastAPI app", "python")
    ast.parse(code)
    for needle in (
        "FastAPI(lifespan=lifespan)",
        'app.mount("/rt", hub.asgi())',
        "async with hub.running():",
        "await hub.publish(",
    ):
        assert needle in code, needle
    assert len(code.strip().splitlines()) <= 20


async def test_the_fastapi_snippet_runs_as_written(tmp_path: Path) -> None:
    """The README's FastAPI app, saved as a file and served by ``uvicorn app:app`` from an
    empty directory: an SDK subscribed through the mount gets what the route publishes, and
    SIGTERM stops the app (and hubbub with it) cleanly."""
    (tmp_path / "app.py").write_text(code_after("## Inside your FastAPI app", "python"))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUBBUB_")}
    log = (tmp_path / "uvicorn.log").open("wb")
    proc = subprocess.Popen(  # noqa: ASYNC220 (starting it does not block; waits are bounded)
        [sys.executable, "-m", "uvicorn", "app:app", "--port", str(port), "--log-level", "info"],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    got: asyncio.Queue[object] = asyncio.Queue()

    class Events(SubscriptionEventHandler):
        async def on_publication(self, ctx: PublicationContext) -> None:
            await got.put(ctx.pub.data)

    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(int(scaled(300))):
                try:
                    async with http.get(base + "/rt/health") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                assert proc.poll() is None, (tmp_path / "uvicorn.log").read_text()
                await asyncio.sleep(0.1)
            client = Client(f"ws://127.0.0.1:{port}/rt/connection/websocket")
            sub = client.new_subscription("news", events=Events())
            await client.connect()
            try:
                await sub.subscribe()
                await sub.ready(scaled(5))
                async with http.post(base + "/news", params={"text": "hi"}) as r:
                    assert r.status == 200, await r.text()
                    assert set(await r.json()) == {"offset"}
                assert await asyncio.wait_for(got.get(), scaled(5)) == {"text": "hi"}
            finally:
                await client.disconnect()
        proc.terminate()
        # uvicorn shuts down gracefully, then re-raises the signal (exit -15, as it should)
        assert proc.wait(scaled(20)) in (0, -15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
    output = (tmp_path / "uvicorn.log").read_text()
    assert "Application shutdown complete" in output, output
    assert "Traceback" not in output, output
