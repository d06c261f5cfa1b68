"""The app backend of the Pusher interop tests: what a Laravel or Rails app would serve beside
hubbub, as a small aiohttp server on 127.0.0.1.

- ``POST /pusher/auth`` and ``/broadcasting/auth`` (pusher-js' and Laravel Echo's default
  paths): channel authorization signed with :func:`hubbub.pusher.authorize_channel` (the
  public module an app's backend uses). The user is the request's ``user`` parameter (form
  or query; a real app would read its session): presence members are ``{"user_id": user,
  "user_info": {"name": user}}``. ``private-forbidden-*`` channels are refused with 403 (the
  app says no); ``private-badsig-*`` ones get an authorization signed with a wrong secret
  (hubbub must say no).
- ``POST /pusher/user-auth`` and ``/broadcasting/user-auth``: user authentication for
  ``pusher.signin()`` (:func:`hubbub.pusher.authenticate_user`).
- ``POST /trigger``: what the app's server side sends, with the ``pusher`` PyPI library
  (``host``, ``port``, ``ssl=False`` and the encryption master key, unchanged otherwise):
  ``{"channels": [...], "event", "data", "socket_id"?}`` or ``{"user", "event", "data"}``
  (``send_to_user``). The JS drivers call it when they are ready for an event, so a scenario
  needs no back-and-forth with the test.
- ``GET /``: an empty page, and ``GET /js/...``: pusher-js' web build and Laravel Echo's IIFE
  build from tests/interop/js/node_modules, so a browser loads them from here (never a CDN).

Every request is recorded in :attr:`Backend.requests` (path and form) for the tests to check
what the SDKs sent.
"""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from typing import Any, Final

import pusher
from aiohttp import web

from hubbub.pusher import authenticate_user, authorize_channel, parse_master_key

APP_ID: Final = "123456"
KEY: Final = "hubbub-test-key"
SECRET: Final = "hubbub-test-secret-0123456789"
#: The second app: its channels live in the namespace ``shared`` with Centrifugo clients'.
SHARED_APP_ID: Final = "654321"
SHARED_KEY: Final = "hubbub-shared-key"
SHARED_SECRET: Final = "hubbub-shared-secret-0123456789"
SHARED_NAMESPACE: Final = "shared"
#: The encryption master key of the app's backend (hubbub never sees it).
MASTER_KEY_BASE64: Final = base64.b64encode(bytes(range(32))).decode()
MASTER_KEY: Final = parse_master_key(MASTER_KEY_BASE64)
#: The server API key (the Centrifugo side's backend).
API_KEY: Final = "hubbub-test-api-key-0123456789"

JS_MODULES: Final = Path(__file__).with_name("js") / "node_modules"
#: What ``GET /js/NAME`` serves.
SCRIPTS: Final = {
    "pusher.js": JS_MODULES / "pusher-js" / "dist" / "web" / "pusher-with-encryption.js",
    "echo.js": JS_MODULES / "laravel-echo" / "dist" / "echo.iife.js",
}
PAGE: Final = "<!doctype html><html><head><meta charset='utf-8'><title>pusher interop</title>"


def server_config(*, engine: str | None = None) -> str:
    """hubbub's TOML config: the two apps, the ``shared`` namespace, the API key."""
    lines = [f'api_key = "{API_KEY}"']
    if engine is not None:
        lines.append(f'engine = "{engine}"')
    lines += [
        "",
        "[[namespaces]]",
        f'name = "{SHARED_NAMESPACE}"',
        "",
        "[[pusher_apps]]",
        f'id = "{APP_ID}"',
        f'key = "{KEY}"',
        f'secret = "{SECRET}"',
        "client_events = true",
        "",
        "[[pusher_apps]]",
        f'id = "{SHARED_APP_ID}"',
        f'key = "{SHARED_KEY}"',
        f'secret = "{SHARED_SECRET}"',
        f'namespace = "{SHARED_NAMESPACE}"',
        "client_events = true",
    ]
    return "\n".join(lines) + "\n"


class Backend:
    """The app backend for one hubbub server (``port``): ``async with Backend(port) as b``,
    then ``b.url``."""

    def __init__(self, hubbub_port: int, *, key: str = KEY, secret: str = SECRET) -> None:
        self.key = key
        self.secret = secret
        self.app_id = APP_ID if key == KEY else SHARED_APP_ID
        self.pusher = pusher.Pusher(
            app_id=self.app_id,
            key=key,
            secret=secret,
            host="127.0.0.1",
            port=hubbub_port,
            ssl=False,
            timeout=10,
            encryption_master_key_base64=MASTER_KEY_BASE64,
        )
        self.requests: list[dict[str, Any]] = []
        self.url = ""
        app = web.Application()
        for prefix in ("/pusher", "/broadcasting"):
            app.router.add_post(f"{prefix}/auth", self._channel_auth)
            app.router.add_post(f"{prefix}/user-auth", self._user_auth)
        app.router.add_post("/trigger", self._trigger)
        app.router.add_get("/", self._page)
        app.router.add_get("/js/{name}", self._script)
        self._runner = web.AppRunner(app, access_log=None)

    async def __aenter__(self) -> Backend:
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._runner.cleanup()

    async def _form(self, request: web.Request) -> dict[str, str]:
        form = {k: str(v) for k, v in (await request.post()).items()}
        form.setdefault("user", request.query.get("user", "anonymous"))
        self.requests.append({"path": request.path, "form": form})
        return form

    async def _channel_auth(self, request: web.Request) -> web.Response:
        form = await self._form(request)
        channel, socket_id, user = form["channel_name"], form["socket_id"], form["user"]
        if channel.startswith("private-forbidden-"):
            return web.json_response({"error": "not for you"}, status=403)
        secret = self.secret
        if channel.startswith("private-badsig-"):
            secret = "not-the-app-secret-0123456789"
        body = authorize_channel(
            self.key,
            secret,
            socket_id,
            channel,
            presence={"user_id": user, "user_info": {"name": user}}
            if channel.startswith("presence-")
            else None,
            master_key=MASTER_KEY if channel.startswith("private-encrypted-") else None,
        )
        return web.json_response(body)

    async def _user_auth(self, request: web.Request) -> web.Response:
        form = await self._form(request)
        user = {"id": form["user"], "user_info": {"name": form["user"]}}
        return web.json_response(authenticate_user(self.key, self.secret, form["socket_id"], user))

    async def _trigger(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append({"path": request.path, "json": body})
        try:
            result = await self.trigger(body)
        except Exception as exc:  # the driver reports it as the scenario's failure
            return web.json_response({"error": f"{type(exc).__name__}: {exc}"}, status=500)
        return web.json_response({"result": result})

    async def trigger(self, body: dict[str, Any]) -> Any:
        """Send what ``POST /trigger`` asks with the ``pusher`` library (blocking calls, in a
        thread)."""
        if "user" in body:
            return await asyncio.to_thread(
                self.pusher.send_to_user, body["user"], body["event"], body["data"]
            )
        return await asyncio.to_thread(
            self.pusher.trigger,
            body["channels"],
            body["event"],
            body["data"],
            body.get("socket_id"),
        )

    async def _page(self, request: web.Request) -> web.Response:
        return web.Response(text=PAGE, content_type="text/html")

    async def _script(self, request: web.Request) -> web.StreamResponse:
        path = SCRIPTS.get(request.match_info["name"])
        if path is None:
            raise web.HTTPNotFound()
        return web.FileResponse(path, headers={"Content-Type": "text/javascript"})


def jsonl(text: str) -> list[dict[str, Any]]:
    """The JSON objects of a driver's output, one a line (other lines ignored)."""
    out = []
    for line in text.splitlines():
        if line.startswith("{"):
            out.append(json.loads(line))
    return out
