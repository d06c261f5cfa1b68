"""HTTP edge of the Pusher HTTP API: the ``/apps/{app_id}/...`` routes of ``[[pusher_apps]]``.

Mounted on the main application when ``pusher_apps`` is not empty (:func:`add_routes`).
Every request is signed with its app's secret (:func:`.signing.verify_api_request`), so the
routes are safe on the public port, where the Pusher server libraries expect them (they
talk to one host); they are not on the ``api_port`` application.

Routes (:mod:`hubbub.dialects.pusher.api` does the work):

- ``POST /apps/{app_id}/events``, ``POST /apps/{app_id}/batch_events``
- ``GET /apps/{app_id}/channels``, ``GET /apps/{app_id}/channels/{channel_name}``,
  ``GET /apps/{app_id}/channels/{channel_name}/users``
- ``POST /apps/{app_id}/users/{user_id}/terminate_connections``, and
  ``POST /users/{user_id}/terminate_connections`` (what the ``pusher`` PyPI library posts
  and signs): the app is the one whose key the ``auth_key`` query parameter names.

Each request, in this order: the app (an unknown ``app_id``: 404; on the route without one,
an ``auth_key`` no app has: 401); the body, bounded before it is read (``Content-Length``
over the route's bound, or more bytes than it arriving: 413; not all there within
``handshake_timeout``: 408, the connection closed); the signature over the method, the path
as the client sent it (percent-decoded) and the raw query (401 as the verifier says; a query
key given twice: 400); then the body or query is parsed (400, 413 for event data over
10 KiB) and the method runs (an engine failure: 503). A route asked with another method:
405. Success: 200 with a JSON body; every refusal: the status with a one-line ``text/plain``
message, as Pusher's API answers, never a traceback.

Body bounds: an event's data is at most 10 KiB of UTF-8, which JSON may escape to six bytes
a byte; with 100 channel names of 200 characters and an escaped event name,
:data:`EVENTS_BODY_LIMIT` holds any valid ``/events`` body, ten times a one-channel event
(:data:`BATCH_BODY_LIMIT`) any valid ``/batch_events`` body; GET requests take no body.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Final

from aiohttp import web

from hubbub.config import Settings
from hubbub.dialects.pusher import api, httpapi
from hubbub.dialects.pusher.errors import ApiError
from hubbub.dialects.pusher.protocol import MAX_CHANNEL_NAME, MAX_EVENT_DATA, MAX_EVENT_NAME
from hubbub.dialects.pusher.signing import VerifiedQuery, parse_query, verify_api_request
from hubbub.errors import ClientError, StoreError
from hubbub.node import Node
from hubbub.pushersettings import PusherApp
from hubbub.server.remote import client_of

log = logging.getLogger(__name__)

#: JSON escapes a byte to at most six (``\\u0000``).
_ESCAPED: Final = 6
#: Room for the keys, ``socket_id``, ``info`` and punctuation of one event.
_EVENT_OVERHEAD: Final = 2048
#: The largest ``POST /events`` body read.
EVENTS_BODY_LIMIT: Final = (
    _ESCAPED * (MAX_EVENT_DATA + MAX_EVENT_NAME)
    + httpapi.MAX_TRIGGER_CHANNELS * (MAX_CHANNEL_NAME + 3)
    + _EVENT_OVERHEAD
)
#: The largest ``POST /batch_events`` body read.
BATCH_BODY_LIMIT: Final = httpapi.MAX_BATCH_EVENTS * (
    _ESCAPED * (MAX_EVENT_DATA + MAX_EVENT_NAME) + MAX_CHANNEL_NAME + _EVENT_OVERHEAD
)
#: The largest ``terminate_connections`` body read (the libraries send ``{}``).
TERMINATE_BODY_LIMIT: Final = 1024

PUSHER_NODE: Final = web.AppKey("pusher_node", Node)
PUSHER_SETTINGS: Final = web.AppKey("pusher_settings", Settings)
PUSHER_APPS: Final = web.AppKey("pusher_apps", dict[str, PusherApp])
PUSHER_KEYS: Final = web.AppKey("pusher_keys", dict[str, PusherApp])

#: A route's work once the request is verified: (node, app, verified query, body, match).
Work = Callable[[Node, PusherApp, VerifiedQuery, bytes, Mapping[str, str]], Awaitable[str]]


def _refusal(status: int, message: str) -> web.Response:
    return web.Response(status=status, text=message + "\n", content_type="text/plain")


class _Refused(Exception):
    """A request refused before its work: the response to send."""

    def __init__(self, response: web.Response) -> None:
        self.response = response


def _app_of(request: web.Request) -> PusherApp:
    app_id = request.match_info.get("app_id")
    if app_id is not None:
        found = request.app[PUSHER_APPS].get(app_id)
        if found is None:
            raise _Refused(_refusal(404, f"Unknown app id {app_id!r}"))
        return found
    try:
        key = parse_query(request.rel_url.raw_query_string).get("auth_key", "")
    except ApiError as exc:
        raise _Refused(_refusal(exc.status, exc.message)) from None
    found = request.app[PUSHER_KEYS].get(key)
    if found is None:
        raise _Refused(_refusal(401, "Unknown auth_key"))
    return found


async def _body(request: web.Request, limit: int) -> bytes:
    """At most ``limit`` bytes of body; more (announced or sent): 413."""
    too_large = _Refused(_refusal(413, f"Request body larger than {limit} bytes"))
    length = request.content_length
    if length is not None and length > limit:
        raise too_large
    if not request.body_exists:
        return b""
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(request.app[PUSHER_SETTINGS].handshake_timeout):
            while chunk := await request.content.read(limit + 1 - size):
                chunks.append(chunk)
                size += len(chunk)
                if size > limit:
                    raise too_large
    except TimeoutError:
        refusal = _refusal(408, "The request body did not come in time")
        refusal.force_close()
        raise _Refused(refusal) from None
    except ConnectionError:
        raise _Refused(_refusal(400, "The request body was cut off")) from None
    return b"".join(chunks)


async def _serve(request: web.Request, limit: int, work: Work) -> web.Response:
    try:
        app = _app_of(request)
        body = await _body(request, limit)
    except _Refused as refused:
        return refused.response
    try:
        verified = verify_api_request(
            app.key,
            app.secret,
            request.method,
            request.path,
            request.rel_url.raw_query_string,
            body,
            time.time(),
        )
        result = await work(request.app[PUSHER_NODE], app, verified, body, request.match_info)
    except ApiError as exc:
        log.info(
            "pusher API %s %s from %s: %d %s",
            request.method,
            request.path,
            client_of(request),
            exc.status,
            exc.message,
        )
        return _refusal(exc.status, exc.message)
    except ClientError as exc:
        return _refusal(400, exc.message)
    except StoreError as exc:
        log.warning("pusher API %s %s: %s", request.method, request.path, exc)
        return _refusal(503, "The engine is unavailable; try again")
    return web.Response(text=result, content_type="application/json")


# -- the routes' work ------------------------------------------------------------------


async def _events(
    node: Node, app: PusherApp, query: VerifiedQuery, body: bytes, match: Mapping[str, str]
) -> str:
    return await api.trigger(node, app, httpapi.parse_trigger(body))


async def _batch_events(
    node: Node, app: PusherApp, query: VerifiedQuery, body: bytes, match: Mapping[str, str]
) -> str:
    return await api.batch(node, app, httpapi.parse_batch(body))


async def _channels(
    node: Node, app: PusherApp, query: VerifiedQuery, body: bytes, match: Mapping[str, str]
) -> str:
    return await api.channels(node, app, httpapi.parse_channels_query(query.params))


async def _channel(
    node: Node, app: PusherApp, query: VerifiedQuery, body: bytes, match: Mapping[str, str]
) -> str:
    parsed = httpapi.parse_channel_query(match["channel_name"], query.params)
    return await api.channel(node, app, parsed)


async def _users(
    node: Node, app: PusherApp, query: VerifiedQuery, body: bytes, match: Mapping[str, str]
) -> str:
    return await api.users(node, app, httpapi.check_users_channel(match["channel_name"]))


async def _terminate(
    node: Node, app: PusherApp, query: VerifiedQuery, body: bytes, match: Mapping[str, str]
) -> str:
    return await api.terminate_connections(node, app, httpapi.check_user_id(match["user_id"]))


def _handler(limit: int, work: Work) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handle(request: web.Request) -> web.Response:
        return await _serve(request, limit, work)

    return handle


def add_routes(app: web.Application, settings: Settings, node: Node) -> None:
    """Mount the HTTP API of ``settings.pusher_apps`` (nothing when there is none)."""
    if not settings.pusher_apps:
        return
    app[PUSHER_NODE] = node
    app[PUSHER_SETTINGS] = settings
    app[PUSHER_APPS] = {a.id: a for a in settings.pusher_apps}
    app[PUSHER_KEYS] = {a.key: a for a in settings.pusher_apps}
    add = app.router
    add.add_post("/apps/{app_id}/events", _handler(EVENTS_BODY_LIMIT, _events))
    add.add_post("/apps/{app_id}/batch_events", _handler(BATCH_BODY_LIMIT, _batch_events))
    add.add_get("/apps/{app_id}/channels", _handler(0, _channels))
    add.add_get("/apps/{app_id}/channels/{channel_name}", _handler(0, _channel))
    add.add_get("/apps/{app_id}/channels/{channel_name}/users", _handler(0, _users))
    terminate = _handler(TERMINATE_BODY_LIMIT, _terminate)
    add.add_post("/apps/{app_id}/users/{user_id}/terminate_connections", terminate)
    add.add_post("/users/{user_id}/terminate_connections", terminate)
