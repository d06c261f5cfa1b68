"""Who a connecting client is: the first half of ``connect``.

The connection token (when token keys are configured, or no ``on_connect`` hook decides),
or, for a client without a token, the connect proxy (``proxy_connect_endpoint``:
:mod:`.proxying`), and then the ``on_connect`` hook (which sees the token's or the proxy's
user and meta as ``ctx.user`` and ``ctx.meta``) say who the client is, what it may carry
(conn info, meta) and which channels the server subscribes it to; the node's limits may
still refuse it.
:func:`admit` answers with an :class:`Admission` and changes nothing: the client
(:meth:`hubbub.dialects.centrifuge.client.Client._connect`) then subscribes the channels and
replies. Refusals: a bad token disconnects (3500), an expired one is error 109 (a connect
proxy's ``expire_at`` not ahead 110), no token where one is needed 101, a user over
``client_user_connection_limit`` disconnects (3504), a token's or the connect proxy's
server-side channel in no namespace is 102, more of the proxy's channels than
``client_channel_limit`` disconnect (3505, as in Centrifugo; checked before any is looked
at); a hook's mistakes are 100.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hubbub.claims import SubscribeOptions
from hubbub.core import messages as m
from hubbub.core.codes import Disconnects, ErrorCode
from hubbub.dialects.centrifuge import proxying
from hubbub.dialects.centrifuge.headers import emulated_headers
from hubbub.dialects.centrifuge.payloads import (
    call_hook,
    for_hooks,
    hook_data,
    hook_meta,
    info_text,
    is_unicode,
)
from hubbub.errors import ClientError, DisconnectError
from hubbub.hooks import ConnectContext

if TYPE_CHECKING:
    from hubbub.dialects.centrifuge.client import Client

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Admission:
    """What :func:`admit` decided. ``conn_info`` is JSON text; ``channels``: the server-side
    subscriptions, ``from_token`` those of them the token named; ``granted``: the token's
    options per server-side channel (its ``subs``); ``expire_at``: when the connection
    expires (None: never); ``forwarded``: the headers of its proxy requests."""

    user: str = ""
    conn_info: str | None = None
    data: m.Data | None = None
    channels: list[str] = field(default_factory=list)
    granted: Mapping[str, SubscribeOptions] = field(default_factory=dict)
    meta: dict[str, Any] | None = None
    expire_at: float | None = None
    from_token: frozenset[str] = frozenset()
    forwarded: Mapping[str, str] = field(default_factory=dict)


async def admit(client: Client, request: m.Connect) -> Admission:
    """Who connects with ``request`` (see the module docstring)."""
    node, hooks = client.node, client.hooks
    token = request.token
    emulated = emulated_headers(request.headers, node.settings.max_handshake_header_bytes)
    admitted = Admission()
    # Without token keys, an on_connect hook gets the token as it is (the app's own scheme).
    verify = token and (node.tokens.enabled or hooks.on_connect is None)
    claims = node.tokens.connect(token) if verify else None
    if claims is not None:
        admitted = Admission(
            claims.user,
            claims.info,
            None,
            list(claims.channels),
            claims.subs,
            claims.meta,
            claims.expire_at,
            frozenset(claims.channels),
        )
        if not is_unicode(admitted.user):
            d = Disconnects.INVALID_TOKEN
            raise DisconnectError(d.code, f"{d.reason}: sub is not valid Unicode")
        for channel in admitted.channels:  # as Centrifugo: in no namespace 102 (misnamed 107)
            node.options(channel)
    forwarded = proxying.forwarded(client, emulated)
    proxied = not token and node.settings.proxy_connect_endpoint is not None
    if proxied:
        admitted = await _ask_proxy(client, request, forwarded)
    admitted.forwarded = forwarded
    if hooks.on_connect is not None:
        ctx = ConnectContext(
            client=client.client_id,
            token=token,
            data=for_hooks(request.data),
            name=request.name,
            version=request.version,
            headers=dict(client.headers),  # a plain dict, made once per connect
            user=admitted.user,
            meta=admitted.meta,
            emulated_headers=emulated,
            address=client.address,
        )
        result = await call_hook(hooks.on_connect, ctx)
        if result is not None:
            user = str(result.user)
            if not is_unicode(user):
                log.error("on_connect returned a user id that is not valid Unicode")
                raise ClientError(ErrorCode.INTERNAL)
            admitted.user = user
            admitted.conn_info = info_text(result.info)
            if result.data is not None:
                admitted.data = hook_data(result.data, binary=client.wire.binary)
            admitted.channels = list(dict.fromkeys(admitted.channels + list(result.channels)))
            # A channel the hook names too is the server's, not only the token's (a refresh
            # token without it must not reconnect the client for it).
            admitted.from_token -= set(result.channels)
            if result.meta is not None:
                admitted.meta = hook_meta(result.meta)
    elif claims is None and not proxied and not node.settings.allow_anonymous:
        raise ClientError(ErrorCode.UNAUTHORIZED, "unauthorized: a connection token is needed")
    limit = node.settings.client_user_connection_limit
    if limit and admitted.user and len(node.clients_of(admitted.user)) >= limit:
        d = Disconnects.CONNECTION_LIMIT
        raise DisconnectError(d.code, d.reason)
    if admitted.expire_at is not None and admitted.expire_at <= time.time():
        # as Centrifugo: an expired token is 109, a proxy's expire_at not ahead 110
        raise ClientError(ErrorCode.EXPIRED if proxied else ErrorCode.TOKEN_EXPIRED)
    return admitted


async def _ask_proxy(client: Client, request: m.Connect, forwarded: Mapping[str, str]) -> Admission:
    """The connect proxy's admission of a client without a token: its user, info, data,
    meta, expiry and server-side channels (``channels`` and ``subs``); without a ``result``
    the client is anonymous where ``allow_anonymous`` lets it be, else refused (101)."""
    answer = await proxying.connect(client, request, forwarded)
    if answer is None:
        if not client.node.settings.allow_anonymous and client.hooks.on_connect is None:
            raise ClientError(ErrorCode.UNAUTHORIZED)
        return Admission()
    if not is_unicode(answer.user):
        log.error("the connect proxy returned a user id that is not valid Unicode")
        raise ClientError(ErrorCode.INTERNAL)
    limit = client.session.channel_limit
    if len(answer.channels) > limit:
        log.error(
            "the connect proxy named %d channels, over client_channel_limit (%d)",
            len(answer.channels),
            limit,
        )
        d = Disconnects.CHANNEL_LIMIT
        raise DisconnectError(d.code, d.reason)
    for channel in answer.channels:
        try:
            client.node.options(channel)
        except ClientError:  # as Centrifugo: a channel in no namespace is 102
            log.warning("the connect proxy named %r, a channel in no namespace", channel)
            raise ClientError(ErrorCode.UNKNOWN_CHANNEL) from None
    return Admission(
        answer.user,
        answer.info,
        answer.data,
        list(answer.channels),
        answer.subs,
        answer.meta,
        answer.expire_at,
    )


def resubscription(channel: str, entry: m.Subscribe | None) -> m.Subscribe:
    """The subscribe request of a server-side ``channel``: the SDK's entry for it in the
    connect's ``subs`` gives the position to recover from, and nothing else of it."""
    if entry is None:
        return m.Subscribe(channel)
    return m.Subscribe(
        channel,
        recover=entry.recover,
        epoch=entry.epoch,
        offset=entry.offset,
        recoverable=entry.recoverable,
        positioned=entry.positioned,
    )
