"""Demo pages and the admin dashboard (HTML from ``static/``) and the admin's JSON endpoints.

``/admin`` and ``/admin/api/*`` need HTTP Basic auth with ``admin_password`` (any user name).
Without a password they are open only while hubbub listens on a loopback address, the default
for trying it locally. Admin API calls must carry ``X-Hubbub-Admin: 1``: a header a cross-site
form cannot send, so another web page cannot make the browser call them.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import time
from typing import Final

from aiohttp import web

from hubbub import __version__
from hubbub.api import METHODS
from hubbub.config import Settings
from hubbub.core import protocol
from hubbub.core.channels import NAMESPACE_SEPARATOR
from hubbub.errors import ClientError, StoreError
from hubbub.node import Node

PAGES_NODE: Final = web.AppKey("pages_node", Node)
PAGES_SETTINGS: Final = web.AppKey("pages_settings", Settings)
DEMOS: Final = ("chat", "monitor", "game", "echo")
#: What the admin page may call through /admin/api/{method}.
ADMIN_METHODS: Final = (
    "publish", "disconnect", "presence", "presence_stats", "history", "channels", "info",
)  # fmt: skip


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_admin(request: web.Request) -> None:
    settings = request.app[PAGES_SETTINGS]
    if settings.admin_password is None:
        if _loopback(settings.host):
            return
        raise web.HTTPForbidden(
            text="the admin dashboard needs admin_password when hubbub listens beyond loopback\n"
        )
    scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
    password = ""
    if scheme.lower() == "basic":
        try:
            password = base64.b64decode(encoded).decode().partition(":")[2]
        except (binascii.Error, UnicodeDecodeError):
            password = ""
    if not hmac.compare_digest(password.encode(), settings.admin_password.encode()):
        raise web.HTTPUnauthorized(
            text="admin password required\n", headers={"WWW-Authenticate": 'Basic realm="hubbub"'}
        )


def stats(node: Node) -> dict[str, object]:
    """Counters for the dashboard; rates are derived by the page from successive totals."""
    namespaces: dict[str, dict[str, int]] = {}
    for channel in node.channels():
        namespace, sep, _ = channel.partition(NAMESPACE_SEPARATOR)
        entry = namespaces.setdefault(
            namespace if sep else "(none)", {"channels": 0, "subscribers": 0}
        )
        entry["channels"] += 1
        entry["subscribers"] += node.subscriber_count(channel)
    return {
        "time": time.time(),
        "version": __version__,
        "uptime": int(time.time() - node.started_at),
        "connections": node.connection_count,
        "clients": node.client_count,
        "users": node.user_count,
        "channels": len(node.channels()),
        "subscriptions": node.subscription_count(),
        "publications": node.publications,
        "deliveries": node.deliveries,
        "namespaces": namespaces,
    }


async def demo_page(request: web.Request) -> web.FileResponse:
    from hubbub.server.app import STATIC_DIR

    return web.FileResponse(STATIC_DIR / "demo" / f"{request.match_info['name']}.html")


async def admin_page(request: web.Request) -> web.FileResponse:
    from hubbub.server.app import STATIC_DIR

    _check_admin(request)
    return web.FileResponse(STATIC_DIR / "admin.html")


async def admin_stats(request: web.Request) -> web.Response:
    _check_admin(request)
    return web.json_response(stats(request.app[PAGES_NODE]))


async def admin_call(request: web.Request) -> web.Response:
    _check_admin(request)
    if request.headers.get("X-Hubbub-Admin") != "1":
        raise web.HTTPForbidden(text="admin calls need the X-Hubbub-Admin: 1 header\n")
    name = request.match_info["method"]
    if name not in ADMIN_METHODS:
        raise web.HTTPNotFound(text=f"no admin method {name}\n")
    try:
        params = protocol.loads(await request.read())
    except ValueError as exc:
        raise web.HTTPBadRequest(text=f"the body is {exc}\n") from None
    if not isinstance(params, dict):
        raise web.HTTPBadRequest(text="the body must be a JSON object\n")
    try:
        result = await METHODS[name](request.app[PAGES_NODE], params)
    except ClientError as exc:
        return web.json_response({"error": {"code": exc.code, "message": exc.message}})
    except StoreError:
        return web.json_response({"error": {"code": 100, "message": "internal server error"}})
    return web.Response(text=f'{{"result":{result}}}', content_type="application/json")


def add_routes(app: web.Application, settings: Settings, node: Node) -> None:
    app[PAGES_NODE] = node
    app[PAGES_SETTINGS] = settings
    if settings.demos:
        app.router.add_get("/demo/{name:" + "|".join(DEMOS) + "}", demo_page)
    app.router.add_get("/admin", admin_page)
    app.router.add_get("/admin/api/stats", admin_stats)
    app.router.add_post("/admin/api/{method}", admin_call)
