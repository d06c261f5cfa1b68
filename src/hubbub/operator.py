"""What the operator's commands do (the ``hubbub`` CLI is a thin layer over this module)."""

from __future__ import annotations

import asyncio
import json
import re
import secrets
from collections.abc import Callable
from typing import Any

import aiohttp

from hubbub.errors import HubbubError

_DURATION = re.compile(r"^(\d+)([smhd]?)$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> int:
    """``90``, ``90s``, ``15m``, ``1h``, ``7d`` -> seconds."""
    match = _DURATION.match(text.strip())
    if match is None:
        raise HubbubError(f"{text!r} is not a duration: use e.g. 3600, 90s, 15m, 1h or 7d")
    return int(match.group(1)) * _UNITS[match.group(2)]


def parse_data(text: str) -> Any:
    """The command line's DATA: JSON when it parses, else the text as a JSON string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def genconfig() -> str:
    """A commented production configuration with freshly generated secrets."""
    api_key = secrets.token_urlsafe(32)
    hmac_secret = secrets.token_urlsafe(48)
    admin_password = secrets.token_urlsafe(18)
    return f'''# hubbub configuration written by `hubbub genconfig`.
# Check it with `hubbub checkconfig hubbub.toml`; serve with `hubbub serve --config hubbub.toml`.
# Every key can also be given as HUBBUB_<KEY> in the environment or as --<key> on the
# command line; those win over this file.

# Where to listen. Behind a reverse proxy keep 127.0.0.1; to listen on every interface use
# "0.0.0.0" (and mind TLS: terminate it in the proxy, or give tls_cert and tls_key below).
host = "127.0.0.1"
port = 8765

# Behind a reverse proxy (deploy/nginx/hubbub.conf): the proxy's own address, so that hubbub
# believes the client address it forwards (X-Forwarded-For, X-Real-IP) for hooks, logs and
# the admin's local check. Only proxies belong here, never networks clients connect from:
# from anyone else those headers are ignored. Empty (the default): nobody is believed.
# trusted_proxies = ["127.0.0.1/32"]

# TLS served by hubbub itself (https:// and wss://, TLS 1.2 or later; the API port too):
# tls_cert = "/etc/hubbub/fullchain.pem"
# tls_key = "/etc/hubbub/privkey.pem"

# One log line per HTTP request and per WebSocket or stream session (logger hubbub.access;
# token values in query strings are left out):
# access_log = true

# Directory for hubbub's own files: the SQLite history (hubbub.db) unless `history` says
# otherwise (memory, sqlite:///PATH or postgresql://USER:PASSWORD@HOST:5432/DB).
data_dir = "data"
# history = "postgresql://hubbub@127.0.0.1:5432/hubbub"

# Key of the server API (POST /api/{{method}} with X-API-Key). Keep it secret.
api_key = "{api_key}"
# Serve the server API on an internal port only (not on the public one):
# api_port = 9000

# Clients authenticate with JWTs signed by your backend (`hubbub token` mints some for tests).
token_hmac_secret = "{hmac_secret}"
# Or with public keys: token_rsa_public_key = "rsa.pem", token_ecdsa_public_key = "ec.pem",
# token_jwks_file = "jwks.json"; and require claims: token_audience, token_issuer.

# Password of the /admin dashboard (HTTP Basic, any user name). Without one /admin is refused:
# behind a reverse proxy every request looks local, so being on 127.0.0.1 proves nothing.
admin_password = "{admin_password}"

# No anonymous connections: every client needs a connection token (or an on_connect hook).
allow_anonymous = false

# Browsers may open WebSockets (and the unidirectional HTTP streams) only from these
# origins (the defence against cross-site WebSocket hijacking; requests without Origin, i.e.
# not from browsers, are let in).
allowed_origins = ["https://app.example.com"]

# Centrifugo's unidirectional transports for clients with no SDK (EventSource, fetch):
# /connection/uni_sse, /connection/uni_http_stream, /connection/uni_websocket. Turn off
# what you do not use:
# uni_sse = false
# uni_http_stream = false
# uni_websocket = false

# Limits.
max_message_size = 65536
client_channel_limit = 128
client_user_connection_limit = 16
client_command_rate = 100
client_command_burst = 200

# Channels without a namespace: no history, no presence, clients may subscribe but not
# publish (publish from your backend through the server API).
[channel]
allow_publish_for_client = false
allow_publish_for_anonymous = false
allow_subscribe_for_anonymous = false
allow_history_for_anonymous = false
allow_presence_for_anonymous = false

# A namespace: channels named chat:<something>.
[[namespaces]]
name = "chat"
history_size = 100
history_ttl = 86400
force_recovery = true
presence = true
join_leave = true
allow_subscribe_for_anonymous = false
allow_publish_for_anonymous = false
allow_history_for_anonymous = false
allow_presence_for_anonymous = false
'''


async def api_call(url: str, api_key: str, method: str, params: dict[str, Any]) -> Any:
    """Call the server API of the server at ``url``; return the result or raise."""
    endpoint = url.rstrip("/") + f"/api/{method}"
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.post(endpoint, json=params, headers={"X-API-Key": api_key}) as resp,
        ):
            body = await resp.json(content_type=None)
    except (aiohttp.ClientError, ValueError, OSError) as exc:
        raise HubbubError(f"{endpoint}: {exc}") from None
    if not isinstance(body, dict):
        raise HubbubError(f"{endpoint}: unexpected reply {body!r}")
    if "error" in body:
        err = body["error"]
        raise HubbubError(f"{endpoint}: error {err.get('code')}: {err.get('message')}")
    return body.get("result")


def websocket_url(url: str) -> str:
    base = url.rstrip("/")
    if base.startswith("http"):
        base = "ws" + base[len("http") :]
    return base + "/connection/websocket"


async def subscribe(
    url: str,
    channels: list[str],
    *,
    token: str = "",
    count: int | None = None,
    emit: Callable[[str], None] = print,
) -> None:
    """Print publications of ``channels`` as JSON lines until ``count`` were printed (or
    forever). centrifuge-python reconnects and recovers missed publications by itself; it is
    an optional dependency (HubbubError naming ``pip install 'hubbub[cli]'`` without it)."""
    try:
        from centrifuge import Client, PublicationContext, SubscriptionEventHandler
    except ImportError as exc:
        if (exc.name or "").split(".")[0] != "centrifuge":
            raise
        raise HubbubError(
            "hubbub subscribe needs centrifuge-python, which is not installed: "
            "pip install 'hubbub[cli]'"
        ) from None

    done = asyncio.Event()
    printed = 0

    class Printer(SubscriptionEventHandler):  # type: ignore[misc]  # untyped SDK
        def __init__(self, channel: str) -> None:
            self.channel = channel

        async def on_publication(self, ctx: PublicationContext) -> None:
            nonlocal printed
            line = {"channel": self.channel, "offset": ctx.pub.offset, "data": ctx.pub.data}
            emit(json.dumps(line, separators=(",", ":")))
            printed += 1
            if count is not None and printed >= count:
                done.set()

    client = Client(websocket_url(url), token=token, max_reconnect_delay=5.0)
    for channel in channels:
        sub = client.new_subscription(channel, Printer(channel))
        await sub.subscribe()
    await client.connect()
    try:
        await done.wait()
    finally:
        await client.disconnect()
