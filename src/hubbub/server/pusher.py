"""The Pusher protocol's WebSocket endpoint on aiohttp: ``GET /app/{key}?protocol=7``.

Registered on the main app whatever the settings (without ``[[pusher_apps]]`` every key is
unknown: 4001). The handshake is accepted like any WebSocket (Origin check, 503 beyond
``client_connection_limit``, permessage-deflate); a refusal the Pusher protocol defines
(unknown key, protocol version, app over quota) is then a ``pusher:error`` and a close with
its code, which is how pusher-js learns whether to reconnect. Each app's connections get
their app's keepalive (:func:`hubbub.server.policy.pusher_policy`). The HTTP API
(``/apps/{id}/...``) is :mod:`hubbub.server.pusherapi`.
"""

from __future__ import annotations

from aiohttp import web

from hubbub.config import Settings
from hubbub.dialects.pusher.session import SHUTDOWN, Apps, run_pusher
from hubbub.node import Node
from hubbub.server.policy import PUSHER_REFUSED, pusher_policy
from hubbub.server.unidirectional import Handshakes, Served
from hubbub.server.websocket import accept


def add_routes(
    app: web.Application, settings: Settings, node: Node, admission: Handshakes, served: Served
) -> None:
    """Register ``/app/{key}``."""
    apps = Apps(settings.pusher_apps)
    policies = {app.key: pusher_policy(app) for app in settings.pusher_apps}

    async def pusher_app(request: web.Request) -> web.StreamResponse:
        key = request.match_info["key"]
        with admission.handshake():
            conn = await accept(request, settings, policies.get(key, PUSHER_REFUSED))
        with served(request, conn, SHUTDOWN):
            await run_pusher(node, apps, key, request.query, conn)
            await conn.wait_closed()
        return conn.response

    app.router.add_get("/app/{key}", pusher_app)
