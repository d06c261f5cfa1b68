"""Baseline: a plain aiohttp WebSocket server (uvloop), as a developer would write it.

A text message starting with ``E`` is echoed; ``S<room>`` joins a room; ``R<room> <body>`` is
sent to that room's members; anything else is broadcast to every connection. Sends are
awaited one connection after another (aiohttp's API).

    python aiohttp_server.py PORT
"""

from __future__ import annotations

import contextlib
import sys

import uvloop
from aiohttp import WSMsgType, web

clients: set[web.WebSocketResponse] = set()
rooms: dict[str, set[web.WebSocketResponse]] = {}


async def handler(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(compress=False, max_msg_size=1 << 20)
    await ws.prepare(request)
    clients.add(ws)
    joined: list[str] = []
    try:
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            data = msg.data
            head = data[:1]
            if head == "E":
                await ws.send_str(data)
            elif head == "S":
                rooms.setdefault(data[1:], set()).add(ws)
                joined.append(data[1:])
                await ws.send_str("ok")
            elif head == "R":
                room, _, body = data[1:].partition(" ")
                for member in tuple(rooms.get(room, ())):
                    with contextlib.suppress(ConnectionError):
                        await member.send_str(body)
            else:
                for member in tuple(clients):
                    with contextlib.suppress(ConnectionError):
                        await member.send_str(data)
    finally:
        clients.discard(ws)
        for room in joined:
            rooms[room].discard(ws)
    return ws


def main() -> None:
    app = web.Application()
    app.router.add_get("/", handler)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None,
                loop=uvloop.new_event_loop())  # fmt: skip


if __name__ == "__main__":
    main()
