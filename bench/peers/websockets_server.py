"""Baseline: a plain ``websockets`` server (uvloop) using ``websockets.broadcast``.

Same message convention as aiohttp_server.py.

    python websockets_server.py PORT
"""

from __future__ import annotations

import asyncio
import sys

import uvloop
from websockets.asyncio.server import ServerConnection, broadcast, serve

clients: set[ServerConnection] = set()
rooms: dict[str, set[ServerConnection]] = {}


async def handler(ws: ServerConnection) -> None:
    clients.add(ws)
    joined: list[str] = []
    try:
        async for data in ws:
            if not isinstance(data, str):
                continue
            head = data[:1]
            if head == "E":
                await ws.send(data)
            elif head == "S":
                rooms.setdefault(data[1:], set()).add(ws)
                joined.append(data[1:])
                await ws.send("ok")
            elif head == "R":
                room, _, body = data[1:].partition(" ")
                broadcast(rooms.get(room, ()), body)
            else:
                broadcast(clients, data)
    except Exception:
        pass
    finally:
        clients.discard(ws)
        for room in joined:
            rooms[room].discard(ws)


async def main() -> None:
    async with serve(handler, "127.0.0.1", int(sys.argv[1]), compression=None,
                     max_size=1 << 20, ping_interval=None):  # fmt: skip
        await asyncio.Future()


if __name__ == "__main__":
    uvloop.run(main())
