"""Whether a client may subscribe to a channel, and with what: the subscription token, the
namespace's flags, the subscribe proxy, then the ``on_subscribe`` hook.

In this order (as Centrifugo decides, plus hubbub's hook at the end):

1. A subscription token, when the client sends one, decides alone: valid for this channel
   and user, it grants the subscription with its options (info, data, override, expiry);
   the subscribe proxy is not asked.
2. Without a token, in a namespace with ``proxy_subscribe``, the subscribe proxy decides
   instead of the ``allow_subscribe_*`` flags (private ``$`` channels still need a token;
   user-limited ``#`` channels still admit only their users, without the proxy): its
   ``error`` or ``disconnect`` refuses, its ``result`` gives the chan info, the data of the
   subscribe reply, an override of the namespace's options and an ``expire_at`` (one not in
   the future is error 110 "expired", as in Centrifugo).
3. Otherwise the flags decide (:func:`hubbub.core.channels.may_subscribe`).
4. Then ``on_subscribe`` (when registered) may still refuse, and its chan info and data
   replace what the token or the proxy gave.

An expiring subscription is unsubscribed (2501) at its ``expire_at`` unless refreshed: by
the client (``sub_refresh`` with a fresh token) or, in a namespace with
``proxy_sub_refresh``, by the server asking the sub refresh proxy
(:func:`hubbub.dialects.centrifuge.tokens.expire_subscription_at`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hubbub.auth import SubscribeClaims
from hubbub.claims import SubscribeOptions
from hubbub.config import ChannelOptions
from hubbub.core import messages as m
from hubbub.core.channels import PRIVATE_PREFIX, USER_BOUNDARY, may_subscribe
from hubbub.core.codes import ErrorCode
from hubbub.dialects.centrifuge import proxying, tokens
from hubbub.dialects.centrifuge.payloads import call_hook, for_hooks, hook_data, info_text
from hubbub.errors import ClientError
from hubbub.hooks import SubscribeContext

if TYPE_CHECKING:
    from hubbub.dialects.centrifuge.client import Client


@dataclass(frozen=True, slots=True)
class Permit:
    """A subscription allowed: its own options (the namespace's, as a token or the proxy
    override them), the data of its reply, when it expires (None: never)."""

    options: ChannelOptions
    data: m.Data | None
    expire_at: float | None


def proxy_url(client: Client, channel: str, options: ChannelOptions) -> str | None:
    """The subscribe proxy that decides about ``channel`` for a client without a token."""
    if channel.startswith(PRIVATE_PREFIX) or USER_BOUNDARY in channel:
        return None
    return proxying.endpoint(client.node.settings, options, "subscribe")


def token_claims(
    client: Client, channel: str, options: ChannelOptions, token: str
) -> SubscribeClaims | None:
    """The subscription token's claims (None without a token); 103 when the client may not
    subscribe without one and no subscribe proxy decides (steps 1 to 3, the proxy not asked
    yet)."""
    claims = tokens.subscription_claims(client, token, channel) if token else None
    proxied = proxy_url(client, channel, options) is not None
    if claims is None and not proxied and not may_subscribe(channel, options, client.user):
        raise ClientError(ErrorCode.PERMISSION_DENIED)
    return claims


async def permit(
    client: Client,
    channel: str,
    options: ChannelOptions,
    request: m.Subscribe,
    claims: SubscribeClaims | None,
) -> Permit:
    """What the token, or the subscribe proxy, then the hook say (the module docstring)."""
    data: m.Data | None = None
    own = options  # this subscription's: the namespace's, or as its token overrides
    expire_at: float | None = None
    if claims is not None:
        own = client._granted(channel, options, claims.options)
        data, expire_at = claims.options.data, claims.expire_at
    elif (url := proxy_url(client, channel, options)) is not None:
        answer = await proxying.subscribe(client, url, channel, request)
        if answer.expire_at is not None and answer.expire_at <= time.time():
            raise ClientError(ErrorCode.EXPIRED)  # as Centrifugo: 110, not a token's 109
        own = client._granted(
            channel, options, SubscribeOptions(answer.info, None, answer.override)
        )
        data, expire_at = answer.data, answer.expire_at
    if client.hooks.on_subscribe is not None:
        ctx = SubscribeContext(
            client=client.client_id,
            user=client.user,
            channel=channel,
            data=for_hooks(request.data),
            token=request.token,
            meta=client.meta,
        )
        result = await call_hook(client.hooks.on_subscribe, ctx)
        if result is not None:
            chan_info = info_text(result.info)
            if chan_info is not None:
                client.set_chan_info(channel, chan_info)
            if result.data is not None:
                data = hook_data(result.data, binary=client.wire.binary)
    return Permit(own, data, expire_at)
