"""The Pusher protocol's WebSocket endpoint on aiohttp: ``GET /app/{key}?protocol=7``.

Registered on the main app whatever the settings (without ``[[pusher_apps]]`` every key is
unknown: 4001). The handshake is accepted like any WebSocket (Origin check, 503 beyond
``client_connection_limit``, permessage-deflate); a refusal the Pusher protocol defines
(unknown key, protocol version, app over quota) is then a ``pusher:error`` and a close with
its code, which is how pusher-js learns whether to reconnect. Each app's connections get
their app's keepalive (:func:`policy_for`). The HTTP API (``/apps/{id}/...``) is
:mod:`hubbub.server.pusherapi`.
"""

from __future__ import annotations

from typing import Final

from aiohttp import web

from hubbub.config import Settings
from hubbub.dialects.pusher import protocol
from hubbub.dialects.pusher.protocol import ErrorCode
from hubbub.dialects.pusher.session import PONG_TIMEOUT, SHUTDOWN, SLOW, Apps, run_pusher
from hubbub.node import Node
from hubbub.pushersettings import PusherApp
from hubbub.server.policy import Policy
from hubbub.server.unidirectional import Handshakes, Served
from hubbub.server.websocket import accept

#: The policy of a connection to an unknown app (it is closed at once).
_REFUSED: Final = Policy(slow=SLOW)


def policy_for(app: PusherApp) -> Policy:
    """``app``'s connections: ``pusher:ping`` after the activity timeout of silence, 4201
    without an answer in :data:`~hubbub.dialects.pusher.session.PONG_TIMEOUT`, 4100 for a
    slow consumer, one event per frame (pusher-js parses each frame as one message)."""
    return Policy(
        ping=protocol.encode_ping(),
        no_pong=(int(ErrorCode.PONG_NOT_RECEIVED), "Pong reply not received"),
        slow=SLOW,
        idle_ping=True,
        ping_interval=float(app.activity_timeout),
        pong_timeout=PONG_TIMEOUT,
    )


def add_routes(
    app: web.Application, settings: Settings, node: Node, admission: Handshakes, served: Served
) -> None:
    """Register ``/app/{key}``."""
    apps = Apps(settings.pusher_apps)
    policies = {app.key: policy_for(app) for app in settings.pusher_apps}

    async def pusher_app(request: web.Request) -> web.StreamResponse:
        key = request.match_info["key"]
        with admission.handshake():
            conn = await accept(request, settings, policies.get(key, _REFUSED))
        with served(request, conn, SHUTDOWN):
            await run_pusher(node, apps, key, request.query, conn)
            await conn.wait_closed()
        return conn.response

    app.router.add_get("/app/{key}", pusher_app)
