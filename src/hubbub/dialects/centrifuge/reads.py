"""Reading a channel's presence and history, shared by the client protocol and the server API,
and the subscribe result (position, recovery) read from the stream.

Each function returns the protocol's typed result (:mod:`hubbub.core.messages`); permissions
are the caller's business. A channel without presence (or history) in its options gets error
108; a stream position out of range (offset negative or from 2**63) gets 107.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from hubbub.config import ChannelOptions
from hubbub.core import messages as m
from hubbub.core.channels import allowed
from hubbub.core.codes import ErrorCode
from hubbub.core.recovery import decide_recovery, is_continuous
from hubbub.core.tagsfilter import Filter
from hubbub.core.types import Publication, StreamPosition
from hubbub.errors import ClientError
from hubbub.node import Node

#: Subscribe flag (SubscribeRequest.flag): reject with 112 instead of recovered=false.
FLAG_REJECT_UNRECOVERED: Final = 2
#: Most publications one history call returns.
HISTORY_MAX_LIMIT: Final = 1000
#: Stream offsets are 64-bit signed integers in every store: 0 <= offset < 2**63.
OFFSET_END: Final = 2**63


def check_offset(offset: int) -> int:
    """A stream offset sent by a client (a history ``since``, a subscribe's recovery
    position): error 107 unless it is in ``[0, 2**63)``."""
    if not 0 <= offset < OFFSET_END:
        raise ClientError(ErrorCode.BAD_REQUEST, "bad request: offset is out of range")
    return offset


async def presence(node: Node, channel: str) -> m.PresenceResult:
    if not node.options(channel).presence:
        raise ClientError(ErrorCode.NOT_AVAILABLE, "not available: no presence in this channel")
    return m.PresenceResult(await node.presence.presence(channel))


async def presence_stats(node: Node, channel: str) -> m.PresenceStatsResult:
    if not node.options(channel).presence:
        raise ClientError(ErrorCode.NOT_AVAILABLE, "not available: no presence in this channel")
    clients, users = await node.presence.stats(channel)
    return m.PresenceStatsResult(clients, users)


async def history(node: Node, request: m.History) -> m.HistoryResult:
    """``limit`` (0: position only; capped), ``since`` (112 when it cannot be continued; an
    empty epoch means the current one), ``reverse``."""
    channel = request.channel
    if not node.options(channel).history_enabled:
        raise ClientError(ErrorCode.NOT_AVAILABLE, "not available: no history in this channel")
    limit = request.limit
    if limit < 0 or limit > HISTORY_MAX_LIMIT:
        limit = HISTORY_MAX_LIMIT
    reverse = request.reverse
    since = None
    if request.since is not None:
        since = StreamPosition(check_offset(request.since.offset), request.since.epoch)
    result = await node.broker.history(
        channel,
        since_offset=since.offset if since is not None else None,
        limit=limit,
        reverse=reverse,
    )
    if since is not None:
        if not since.epoch:
            since = StreamPosition(since.offset, result.position.epoch)
        if since.epoch != result.position.epoch or (
            not reverse and limit and not is_continuous(since, result)
        ):
            raise ClientError(ErrorCode.UNRECOVERABLE_POSITION)
    pos = result.position
    return m.HistoryResult(tuple(result.publications), pos.epoch, pos.offset)


async def subscribe_result(
    node: Node,
    options: ChannelOptions,
    request: m.Subscribe,
    data: m.Data | None,
    user: str,
) -> tuple[m.SubscribeResult, int]:
    """The subscribe result for ``request`` (a subscribe request, or a connect's ``subs``
    entry) by a client of ``user``, and the offset live delivery continues after.

    A history channel gives a position (``positioned``) to recoverable subscriptions (the
    namespace forces recovery, or the client asks for it and may read the history or the
    namespace has ``allow_recovery``) and to positioned ones (``force_positioning``, or the
    client asks and may read the history or the namespace has ``allow_positioning``).
    Recovery in stream mode replays every missed publication or none (112 instead of
    ``recovered: false`` when the request's flag asks for it); in cache mode it gives the
    channel's latest publication (:func:`_cache_recovery`). Publications the request's tags
    filter refuses are left out of what is recovered.
    """
    channel = request.channel
    may_read = allowed(options, "history", user)
    recoverable = options.force_recovery or (
        (request.recoverable or request.recover) and (options.allow_recovery or may_read)
    )
    positioned = (
        recoverable
        or options.force_positioning
        or (request.positioned and (options.allow_positioning or may_read))
    )
    if not (options.history_enabled and positioned):
        return m.SubscribeResult(data=data), 0
    cache = options.force_recovery_mode == "cache"
    if recoverable and cache and (request.recover or options.auto_cache_recover):
        return await _cache_recovery(node, request, data)
    broker, limit = node.broker, node.settings.recovery_max_publications
    if recoverable and request.recover:
        since = StreamPosition(check_offset(request.offset), request.epoch)
        history = await broker.history(
            channel, since_offset=since.offset, limit=limit + 1, reverse=False
        )
        decision = decide_recovery(since, history, limit)
        if not decision.recovered and request.flag & FLAG_REJECT_UNRECOVERED:
            raise ClientError(ErrorCode.UNRECOVERABLE_POSITION)
        position = decision.position
        result = m.SubscribeResult(
            recoverable=True,
            positioned=True,
            epoch=position.epoch,
            offset=position.offset,
            publications=_passing(decision.publications, request.tags_filter),
            was_recovering=True,
            recovered=decision.recovered,
            data=data,
        )
    else:
        position = await broker.position(channel)
        result = m.SubscribeResult(
            recoverable=recoverable,
            positioned=True,
            epoch=position.epoch,
            offset=position.offset,
            data=data,
        )
    return result, position.offset


def _passing(pubs: Iterable[Publication], tags_filter: Filter | None) -> tuple[Publication, ...]:
    if tags_filter is None:
        return tuple(pubs)
    return tuple(pub for pub in pubs if tags_filter.matches(pub.tags))


async def _cache_recovery(
    node: Node, request: m.Subscribe, data: m.Data | None
) -> tuple[m.SubscribeResult, int]:
    """Cache mode (Centrifugo's): the channel's latest publication (the latest its tags filter
    lets through), unless the client is at the top already; ``recovered`` unless the stream is
    empty and the client was not at its (empty) top."""
    tags_filter = request.tags_filter
    limit = 1 if tags_filter is None else node.settings.recovery_max_publications
    history = await node.broker.history(
        request.channel, since_offset=None, limit=limit, reverse=True
    )
    top = history.position
    at_top = 0 < request.offset == top.offset and request.epoch == top.epoch
    latest = next(iter(_passing(history.publications, tags_filter)), None)
    publications: tuple[Publication, ...]
    if latest is None:
        recovered, publications = at_top, ()
    else:
        recovered = history.publications[0].offset == top.offset
        publications = (latest,) if recovered and not at_top else ()
    result = m.SubscribeResult(
        recoverable=True,
        positioned=True,
        epoch=top.epoch,
        offset=top.offset,
        publications=publications,
        was_recovering=True,
        recovered=recovered,
        data=data,
    )
    return result, top.offset
