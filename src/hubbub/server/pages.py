"""Demo pages and the admin dashboard (HTML from ``static/``) and the admin's JSON endpoints.

``/admin`` and ``/admin/api/*`` need HTTP Basic auth with ``admin_password`` (any user name).
Without a password they are refused, unless ``admin_insecure`` is set (``make run`` sets it):
then only requests from this machine get in: a loopback client address, a loopback Host (a
DNS-rebinding page has its own name there) and no proxy headers (Forwarded, X-Forwarded-For,
X-Real-IP) unless the peer is one of the ``trusted_proxies``, whose forwarded address is then
the client's (:mod:`hubbub.server.remote`). A bare proxy that adds none of them and sends the
upstream's address as Host cannot be told from a local browser, which is why the setting is
off by default and genconfig writes a password. Admin API calls must carry
``X-Hubbub-Admin: 1``: a header a cross-site form cannot send, so another web page cannot make
the browser call them.
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
from hubbub.core import jsontext as protocol
from hubbub.core.channels import NAMESPACE_SEPARATOR
from hubbub.errors import ClientError, StoreError
from hubbub.node import Node
from hubbub.server.remote import client_named, client_of, via_trusted_proxy
from hubbub.server.samples import Samples
from hubbub.server.static import STATIC_DIR

PAGES_NODE: Final = web.AppKey("pages_node", Node)
PAGES_SETTINGS: Final = web.AppKey("pages_settings", Settings)
PAGES_SAMPLES: Final = web.AppKey("pages_samples", Samples)
DEMOS: Final = ("chat", "monitor", "game", "echo")
#: What the admin page may call through /admin/api/{method}.
ADMIN_METHODS: Final = (
    "publish", "disconnect", "connections", "presence", "presence_stats", "history",
    "channels", "info",
)  # fmt: skip


def _loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address, no port) is this machine's loopback."""
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _host_name(host_header: str) -> str:
    """The host of a ``Host`` header value, without its port."""
    if host_header.startswith("["):
        end = host_header.find("]")
        rest = host_header[end + 1 :] if end > 0 else ""
        if end < 0 or (rest and not rest.startswith(":")):
            return host_header  # not an IPv6 literal with an optional port
        return host_header[1:end]
    return host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header


#: Headers a reverse proxy adds; a request carrying one did not come from this machine.
FORWARDING_HEADERS: Final = ("Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Real-IP")


def _check_insecure(request: web.Request) -> None:
    """``admin_insecure``: open without a password, but only to a browser on this machine:
    the client address is a loopback one, the Host header a loopback name (a DNS-rebinding
    page has its own name there), and no untrusted proxy forwarded it. Through one of the
    ``trusted_proxies`` the address it forwards (X-Forwarded-For, X-Real-IP) is the client's,
    so a remote user behind a local nginx is not local; a trusted proxy that names the
    client only in ``Forwarded`` (not read) is refused."""
    refusal = None
    client = client_of(request)
    headers = request.headers
    trusted = via_trusted_proxy(request)
    if not _loopback(client):
        refusal = f"the client {client} is not on this machine"
    elif not _loopback(_host_name(headers.get("Host", ""))):
        refusal = f"Host {headers.get('Host', '')!r} is not a loopback name"
    elif not trusted and any(name in headers for name in FORWARDING_HEADERS):
        refusal = "the request came through a proxy that is not in trusted_proxies"
    elif trusted and "Forwarded" in headers and not client_named(headers):
        refusal = "the proxy named the client only in a Forwarded header"
    if refusal is not None:
        raise web.HTTPForbidden(
            text=f"admin_insecure serves /admin only to this machine directly: {refusal}; "
            "set admin_password to use it from elsewhere\n"
        )


def _check_admin(request: web.Request) -> None:
    """``admin_password`` (HTTP Basic) is required, unless ``admin_insecure`` opens the
    dashboard to direct requests from this machine (see :func:`_check_insecure`)."""
    settings = request.app[PAGES_SETTINGS]
    if settings.admin_password is None:
        if settings.admin_insecure:
            _check_insecure(request)
            return
        raise web.HTTPForbidden(
            text="the admin dashboard needs admin_password (or, to try it on this machine "
            "only, admin_insecure = true / --admin-insecure)\n"
        )
    scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
    password = ""
    if scheme.lower() == "basic":
        try:
            password = base64.b64decode(encoded).decode().partition(":")[2]
        except (binascii.Error, ValueError):  # (non-ASCII text: ValueError)
            password = ""
    given = password.encode("utf-8", "surrogateescape")
    if not hmac.compare_digest(given, settings.admin_password.encode()):
        raise web.HTTPUnauthorized(
            text="admin password required\n", headers={"WWW-Authenticate": 'Basic realm="hubbub"'}
        )


def stats(node: Node) -> dict[str, object]:
    """Counters for the dashboard; rates are derived by the page from successive totals.
    ``users`` counts distinct user ids (a token's ``sub`` or an ``on_connect`` hook's user),
    ``anonymous`` the channel-protocol clients without one (the demos' named chat users are
    such: a display name is conn info, not a user id)."""
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
        "anonymous": len(node.clients_of("")),
        "channels": len(node.channels()),
        "subscriptions": node.subscription_count(),
        "publications": node.publications,
        "deliveries": node.deliveries,
        "namespaces": namespaces,
    }


async def demo_page(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC_DIR / "demo" / f"{request.match_info['name']}.html")


async def admin_page(request: web.Request) -> web.FileResponse:
    _check_admin(request)
    return web.FileResponse(STATIC_DIR / "admin.html")


async def admin_stats(request: web.Request) -> web.Response:
    _check_admin(request)
    return web.json_response(stats(request.app[PAGES_NODE]))


async def admin_samples(request: web.Request) -> web.Response:
    """The last five minutes of totals, one a second (see :mod:`hubbub.server.samples`)."""
    _check_admin(request)
    return web.json_response({"samples": request.app[PAGES_SAMPLES].recent()})


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
    samples = app[PAGES_SAMPLES] = Samples(node)
    app.on_startup.append(samples.start)
    app.on_cleanup.append(samples.stop)
    if settings.demos:
        app.router.add_get("/demo/{name:" + "|".join(DEMOS) + "}", demo_page)
    app.router.add_get("/admin", admin_page)
    app.router.add_get("/admin/api/stats", admin_stats)
    app.router.add_get("/admin/api/samples", admin_samples)
    app.router.add_post("/admin/api/{method}", admin_call)
