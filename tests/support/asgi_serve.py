"""``hubbub serve``'s command line, served as ``hub.asgi()`` by uvicorn: for the matrix's
"asgi" rows and the bench, so that they start an ASGI-served hubbub exactly as they start
``hubbub serve``, and read the same ready line.

    python -m tests.support.asgi_serve [--port 0] [--config F] [--api-key K] [--engine URL]
        [--history URL] [--data-dir D] [--app module:hub]

The hub's node is started by the ASGI lifespan (the app served alone); the ready line
``hubbub (asgi) listening on http://127.0.0.1:PORT`` is printed once uvicorn accepts
connections. SIGTERM/SIGINT stop uvicorn, which runs the lifespan's shutdown.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import socket
import sys
from typing import Any

import uvicorn

from hubbub.hub import LOG_FORMAT, Hub


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--config")
    parser.add_argument("--app")
    for flag in ("--api-key", "--engine", "--history", "--data-dir"):
        parser.add_argument(flag)
    args = parser.parse_args()
    flags: dict[str, Any] = {
        name: value
        for name in ("api_key", "engine", "history", "data_dir")
        if (value := getattr(args, name)) is not None
    }
    if args.app:
        module, _, attr = args.app.partition(":")
        hub = getattr(importlib.import_module(module), attr or "hub")
    else:
        hub = Hub()
    assert isinstance(hub, Hub)
    # hubbub's log on stderr, as `hubbub serve` writes it (the matrix reads it)
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT, stream=sys.stderr)
    main = serve(hub.asgi(args.config, **flags), args.host, args.port)
    try:  # the loop uvicorn's own command line picks (and hubbub serve's): uvloop if there
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)


async def serve(app: Any, host: str, port: int) -> None:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    config = uvicorn.Config(
        app,
        lifespan="on",
        log_level="warning",
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started and not task.done():  # noqa: ASYNC110 (uvicorn gives a flag)
        await asyncio.sleep(0.02)
    if server.started:
        print(f"hubbub (asgi) listening on http://{host}:{sock.getsockname()[1]}", flush=True)
    await task


if __name__ == "__main__":
    main()
