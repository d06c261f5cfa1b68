"""Baseline: python-socketio on aiohttp (uvloop).

Events: ``echo`` (returns to the sender), ``join`` (enter a room), ``room`` ([room, body] to
the room), ``pub`` (to everyone).

    python socketio_server.py PORT
"""

from __future__ import annotations

import sys

import socketio
import uvloop
from aiohttp import web

sio = socketio.AsyncServer(async_mode="aiohttp", cors_allowed_origins="*",
                           max_http_buffer_size=1 << 20)  # fmt: skip


@sio.on("echo")
async def echo(sid: str, data: str) -> None:
    await sio.emit("echo", data, to=sid)


@sio.on("join")
async def join(sid: str, room: str) -> None:
    await sio.enter_room(sid, room)
    await sio.emit("ok", room, to=sid)


@sio.on("room")
async def room(sid: str, data: list[str]) -> None:
    await sio.emit("m", data[1], room=data[0])


@sio.on("pub")
async def pub(sid: str, data: str) -> None:
    await sio.emit("m", data)


def main() -> None:
    app = web.Application()
    sio.attach(app)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None,
                loop=uvloop.new_event_loop())  # fmt: skip


if __name__ == "__main__":
    main()
