"""A client's tokens after connect: the ``refresh`` and ``sub_refresh`` commands, the checks
of a subscription token, the server API's ``refresh``, and the deadlines they set (kept by
the client's :class:`hubbub.dialects.centrifuge.expiry.TokenExpiry`).

A connection not refreshed in time is closed with 3005; a subscription whose token runs out
is unsubscribed with 2501, so the SDK resubscribes with a fresh token. With a refresh proxy
(``proxy_refresh_endpoint``; for subscriptions a ``proxy_sub_refresh`` namespace) the
server refreshes instead, asking the proxy when the deadline comes; the client is told
that nothing expires (ttl 0). A token for another
user (or channel) disconnects with 3500; an expired one is error 109.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, Final

from hubbub import __version__
from hubbub.auth import SubscribeClaims
from hubbub.core import messages as m
from hubbub.core.codes import Disconnects, ErrorCode
from hubbub.core.jsontext import dumps
from hubbub.dialects.centrifuge import proxying
from hubbub.dialects.centrifuge.payloads import required
from hubbub.errors import ClientError, DisconnectError, StoreError
from hubbub.proxy.bodies import SubRefreshAnswer
from hubbub.proxy.caller import ProxyFailed

log = logging.getLogger(__name__)

if TYPE_CHECKING:  # the client calls these functions with itself
    from hubbub.dialects.centrifuge.client import Client

#: Unsubscribe push of a subscription whose token expired: the SDK resubscribes (>= 2500).
SUB_EXPIRED: Final = (2501, "subscription expired")
#: The furthest expiry the server API's ``refresh`` sets (Centrifugo's cap: a year).
MAX_REFRESH_TTL: Final = 365 * 24 * 3600


async def refresh(client: Client, cid: int, request: m.Refresh) -> m.RefreshResult:
    """A fresh connection token (the same user): the connection's deadline moves; its
    ``meta`` and ``info``, when the token has them, replace the connection's (presence entries
    rewritten); when its server-side channels (``channels``/``subs``) are not the ones the
    connection token gave, the client reconnects (3010) to take the new ones (Centrifugo's
    rule)."""
    token = request.token
    if not token:
        if not client.tokens.connection_expires:
            return m.RefreshResult(client.client_id, __version__)
        raise ClientError(ErrorCode.BAD_REQUEST, "bad request: token is required")
    claims = client.node.tokens.connect(token)
    if claims.user != client.user:
        d = Disconnects.INVALID_TOKEN
        raise DisconnectError(d.code, f"{d.reason}: the token is for another user")
    wanted = set(claims.channels)
    session = client.session
    if any(not session.is_subscribed(ch) for ch in wanted) or any(
        ch not in wanted for ch in client.from_token()
    ):
        d = Disconnects.INSUFFICIENT_STATE
        raise DisconnectError(d.code, d.reason)
    if claims.expire_at is not None and claims.expire_at <= time.time():
        raise ClientError(ErrorCode.TOKEN_EXPIRED)  # (before anything of it is taken)
    if claims.meta is not None:  # as Centrifugo: a fresh token's meta replaces the old
        client.meta = claims.meta
    if claims.expire_at is None:
        client.tokens.cancel_connection()
        result = m.RefreshResult(client.client_id, __version__)
    else:
        ttl = expire_connection_at(client, claims.expire_at)
        result = m.RefreshResult(client.client_id, __version__, expires=ttl > 0, ttl=ttl)
    if claims.info is not None:  # after the deadline moved: presence is best effort
        client.session.conn_info = claims.info
        await _present_again(client)
    return result


async def sub_refresh(client: Client, cid: int, request: m.SubRefresh) -> m.SubRefreshResult:
    """A fresh subscription token for a channel the client is subscribed to."""
    channel = required(request.channel, "channel")
    if not client.session.is_subscribed(channel):
        raise ClientError(ErrorCode.BAD_REQUEST, "bad request: not subscribed")
    claims = subscription_claims(client, required(request.token, "token"), channel)
    if claims.expire_at is None:
        client.tokens.cancel_subscription(channel)
        result = m.SubRefreshResult()
    else:
        ttl = expire_subscription_at(client, channel, claims.expire_at)
        result = m.SubRefreshResult(expires=ttl > 0, ttl=ttl)
    info = claims.options.info
    if info is not None:  # as Centrifugo: the fresh token's info is the new chan info
        client.set_chan_info(channel, info)
        await _present_in(client, channel)
    return result


def subscription_claims(client: Client, token: str, channel: str) -> SubscribeClaims:
    """The claims of a subscription token for ``channel`` and the client's user."""
    claims = client.node.tokens.subscribe(token)
    if claims.channel != channel or claims.user != client.user:
        d = Disconnects.INVALID_TOKEN
        raise DisconnectError(d.code, f"{d.reason}: the token is for another channel or user")
    if claims.expire_at is not None and claims.expire_at <= time.time():
        raise ClientError(ErrorCode.TOKEN_EXPIRED)
    return claims


def expire_connection_at(client: Client, expire_at: float) -> int:
    """Close the connection (3005) at ``expire_at`` (plus ``client_expired_close_delay``, for
    the SDK's refresh sent when the ttl runs out) unless a refresh moves it; the TTL. With a
    refresh proxy the server refreshes instead (:func:`_proxy_refresh` at ``expire_at``) and
    the TTL is 0: the client is told its connection does not expire. An ``expire_at`` more
    than :data:`MAX_REFRESH_TTL` ahead (a token's, a proxy's) is taken as that far, as
    Centrifugo caps it (a TTL the protocol's 32 bits hold)."""
    expire_at = min(expire_at, time.time() + MAX_REFRESH_TTL)
    if client.node.settings.proxy_refresh_endpoint is not None:
        client.tokens.connection_at(expire_at, lambda: _spawn(_proxy_refresh(client)))
        return 0
    d = Disconnects.EXPIRED
    transport = client.transport
    grace = client.node.settings.client_expired_close_delay
    return client.tokens.connection_at(expire_at, lambda: transport.close(d.code, d.reason), grace)


def expire_subscription_at(client: Client, channel: str, expire_at: float) -> int:
    """Unsubscribe ``channel`` (2501, the SDK resubscribes with a fresh token) at
    ``expire_at`` (plus ``client_expired_sub_close_delay``) unless a sub_refresh moves it;
    the TTL. Capped at :data:`MAX_REFRESH_TTL` ahead, as :func:`expire_connection_at`."""
    expire_at = min(expire_at, time.time() + MAX_REFRESH_TTL)
    url = _sub_refresh_url(client, channel)
    if url is not None:  # the server refreshes, asking the proxy; the client is told ttl 0
        refresh = lambda: _spawn(_proxy_sub_refresh(client, channel, url))  # noqa: E731
        client.tokens.subscription_at(channel, expire_at, refresh)
        return 0
    loop = asyncio.get_running_loop()
    return client.tokens.subscription_at(
        channel,
        expire_at,
        lambda: loop.create_task(client.server_unsubscribe(channel, *SUB_EXPIRED)),
        client.node.settings.client_expired_sub_close_delay,
    )


def _sub_refresh_url(client: Client, channel: str) -> str | None:
    try:
        options = client.subscription_options(channel)
    except ClientError:
        return None
    return proxying.endpoint(client.node.settings, options, "sub_refresh")


#: Seconds until a refresh proxy that could not be asked is asked again (as Centrifugo).
PROXY_RETRY: Final = 60.0
#: The refreshes running (held so that they are not collected while they wait).
_RUNNING: set[asyncio.Task[None]] = set()


def _spawn(refreshing: Coroutine[Any, Any, None]) -> None:
    task = asyncio.get_running_loop().create_task(refreshing)
    _RUNNING.add(task)
    task.add_done_callback(_RUNNING.discard)


async def _proxy_refresh(client: Client) -> None:
    """The connection's ``expire_at`` came: the refresh proxy says whether it lives on.
    ``expired`` (or no ``result``, or no new ``expire_at``) closes it with 3005, its
    ``disconnect`` with that code; a new ``expire_at`` is the next deadline (its ``info``
    and ``meta`` replace the connection's); a backend that cannot be asked (down, slow,
    malformed) is asked again in :data:`PROXY_RETRY` seconds, the connection kept; its
    ``error`` closes it as expired (Centrifugo reads no error from a refresh)."""
    if not client.connected:
        return
    d = Disconnects.EXPIRED
    try:
        answer = await proxying.refresh(client)
    except ProxyFailed:
        client.tokens.connection_at(
            time.time() + PROXY_RETRY, lambda: _spawn(_proxy_refresh(client))
        )
        return
    except DisconnectError as exc:
        client.transport.close(exc.code, exc.reason)
        return
    except ClientError:
        client.transport.close(d.code, d.reason)
        return
    if not client.connected:
        return
    now = time.time()
    if answer.expired or answer.expire_at is None or answer.expire_at <= now:
        client.transport.close(d.code, d.reason)
        return
    expire_connection_at(client, answer.expire_at)
    if answer.meta is not None:
        client.meta = answer.meta
    if answer.info is not None:
        client.session.conn_info = answer.info
        await _present_again(client)


async def _proxy_sub_refresh(client: Client, channel: str, url: str) -> None:
    """A subscription's ``expire_at`` came: the sub refresh proxy says whether it lives on,
    as :func:`_proxy_refresh` for a connection, but an expired subscription (``expired``, no
    ``result``, an ``expire_at`` past, an ``error``) is unsubscribed (2501: the SDK
    subscribes again, which asks the subscribe proxy again), and a ``result`` without
    ``expire_at`` lets it live on without expiry (Centrifugo's rule, unlike a connection's
    refresh)."""
    if not client.session.is_subscribed(channel):
        return
    try:
        answer = await proxying.sub_refresh(client, url, channel)
    except ProxyFailed:
        retry = lambda: _spawn(_proxy_sub_refresh(client, channel, url))  # noqa: E731
        client.tokens.subscription_at(channel, time.time() + PROXY_RETRY, retry)
        return
    except DisconnectError as exc:
        client.transport.close(exc.code, exc.reason)
        return
    except ClientError:
        answer = SubRefreshAnswer(expired=True)
    if not client.session.is_subscribed(channel):
        return
    if answer.expired or (answer.expire_at is not None and answer.expire_at <= time.time()):
        await client.server_unsubscribe(channel, *SUB_EXPIRED)
        return
    if answer.expire_at is None:
        client.tokens.cancel_subscription(channel)
    else:
        expire_subscription_at(client, channel, answer.expire_at)
    if answer.info is not None:
        client.set_chan_info(channel, answer.info)
        await _present_in(client, channel)


async def server_refresh(client: Client, expired: bool, expire_at: int, info: object) -> None:
    """The server API's ``refresh`` on one connection, as Centrifugo does it: ``expired`` (or
    an ``expire_at`` not in the future) closes it with 3005 at once; a future ``expire_at``
    (capped at a year) becomes its deadline, 0 makes it never expire; either way a refresh push
    tells the client (``expires``, ``ttl``), and a refresh command with a new token moves the
    deadline again. ``info`` (not None) replaces the conn info: later presence entries (its
    entries now, on every channel with presence), joins and publications carry it."""
    if not client.connected:
        return
    d = Disconnects.EXPIRED
    now = time.time()
    if expired or 0 < expire_at <= now:
        client.transport.close(d.code, d.reason)
        return
    if expire_at:
        ttl = expire_connection_at(client, expire_at)
        push = m.Refreshed(expires=ttl > 0, ttl=ttl)  # (0: the refresh proxy refreshes)
    else:
        client.tokens.cancel_connection()
        push = m.Refreshed(expires=False)
    if info is not None:
        client.session.conn_info = dumps(info)
    client.transport.post(client.wire.push(push))
    if info is not None:
        await _present_again(client)


async def _present_again(client: Client) -> None:
    """Enter presence again, with the new conn info, in every subscribed channel keeping it."""
    for channel in tuple(client.session.subs):
        if client.session.is_subscribed(channel):
            await _present_in(client, channel)


async def _present_in(client: Client, channel: str) -> None:
    """Enter ``channel``'s presence again with the client's info, if the subscription keeps
    presence; best effort: an engine failure is logged (the periodic refresh carries the
    entry later), the command it belongs to has done its work."""
    try:
        if client.subscription_options(channel).presence:
            await client.node.presence_add(channel, client.info(channel))
    except ClientError:
        return  # (the namespace is gone)
    except StoreError as exc:
        log.warning("%s: presence of %s not rewritten: %s", client.client_id, channel, exc)
