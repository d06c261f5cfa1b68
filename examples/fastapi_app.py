"""hubbub inside a FastAPI application: the hub's endpoints under /rt, its node started and
stopped by the application's lifespan, and a route that publishes.

Run it with ``uvicorn examples.fastapi_app:app``; clients connect to
``ws://127.0.0.1:8000/rt/connection/websocket`` and subscribe to ``news:updates``, and
``curl -X POST 'http://127.0.0.1:8000/announce?text=hello'`` reaches them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from hubbub import Hub

hub = Hub(namespaces=[{"name": "news", "history_size": 10, "history_ttl": 300}])


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with hub.running():  # engines, timers, startup tasks; closed at shutdown
        yield


app = FastAPI(lifespan=lifespan)
app.mount("/rt", hub.asgi())  # /rt/connection/websocket, /rt/api/..., /rt/health


@app.post("/announce")
async def announce(text: str) -> dict[str, int]:
    offset = await hub.publish("news:updates", {"text": text})
    return {"offset": offset}
