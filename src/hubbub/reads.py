"""Reading a channel's presence and history, shared by the client protocol and the server API,
and the subscribe result (position, recovery) read from the stream.

Each function returns the protocol's result object as JSON text; permissions are the caller's
business. A channel without presence (or history) in its options gets error 108; a stream
position out of range (offset negative or from 2**63) gets 107.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from hubbub.config import ChannelOptions
from hubbub.core import protocol as p
from hubbub.core.codes import ErrorCode
from hubbub.core.recovery import decide_recovery, is_continuous
from hubbub.core.types import StreamPosition
from hubbub.errors import ClientError
from hubbub.node import Node

#: Subscribe flag (SubscribeRequest.flag): reject with 112 instead of recovered=false.
FLAG_REJECT_UNRECOVERED: Final = 2
#: Most publications one history call returns.
HISTORY_MAX_LIMIT: Final = 1000
#: Stream offsets are 64-bit signed integers in every store: 0 <= offset < 2**63.
OFFSET_END: Final = 2**63


def since_offset(params: Mapping[str, Any]) -> int:
    """The ``offset`` of a stream position sent by a client (a history ``since``, a
    subscribe's recovery position): error 107 unless it is an integer in ``[0, 2**63)``."""
    offset = p.optional_int(params, "offset")
    if not 0 <= offset < OFFSET_END:
        raise ClientError(ErrorCode.BAD_REQUEST, "bad request: offset is out of range")
    return offset


async def presence(node: Node, channel: str) -> str:
    if not node.options(channel).presence:
        raise ClientError(ErrorCode.NOT_AVAILABLE, "not available: no presence in this channel")
    entries = await node.presence.presence(channel)
    body = ",".join(f"{p.dumps(cid)}:{info.to_json()}" for cid, info in entries.items())
    return f'{{"presence":{{{body}}}}}'


async def presence_stats(node: Node, channel: str) -> str:
    if not node.options(channel).presence:
        raise ClientError(ErrorCode.NOT_AVAILABLE, "not available: no presence in this channel")
    clients, users = await node.presence.stats(channel)
    return f'{{"num_clients":{clients},"num_users":{users}}}'


async def history(node: Node, channel: str, params: Mapping[str, Any]) -> str:
    """``params``: ``limit`` (0: position only; capped), ``since`` ``{offset, epoch}`` (112 when
    it cannot be continued; an empty epoch means the current one), ``reverse``."""
    if not node.options(channel).history_enabled:
        raise ClientError(ErrorCode.NOT_AVAILABLE, "not available: no history in this channel")
    limit = p.optional_int(params, "limit")
    if limit < 0 or limit > HISTORY_MAX_LIMIT:
        limit = HISTORY_MAX_LIMIT
    reverse = p.optional_bool(params, "reverse")
    since_raw = params.get("since")
    since = None
    if since_raw is not None:
        if not isinstance(since_raw, dict):
            raise ClientError(ErrorCode.BAD_REQUEST, "bad request: since must be an object")
        since = StreamPosition(since_offset(since_raw), p.optional_str(since_raw, "epoch"))
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
    pubs = ",".join(pub.to_json() for pub in result.publications)
    pos = result.position
    return f'{{"publications":[{pubs}],"epoch":{p.dumps(pos.epoch)},"offset":{pos.offset}}}'


async def subscribe_result(
    node: Node, channel: str, options: ChannelOptions, params: Mapping[str, Any], data: Any
) -> tuple[str, int]:
    """The subscribe result (JSON text) for ``params`` (a subscribe request, or a connect's
    ``subs`` entry), and the offset live delivery continues after.

    A history channel gives a position when the namespace forces recovery or the client asks
    for one (recoverable, positioned, or recover); recovery replays every missed publication
    or none (112 instead of ``recovered: false`` when the request's flag asks for it).
    """
    result: dict[str, Any] = {}
    pubs_json: list[str] = []
    top = 0
    recover = p.optional_bool(params, "recover")
    recoverable = options.force_recovery or p.optional_bool(params, "recoverable") or recover
    if options.history_enabled and (recoverable or p.optional_bool(params, "positioned")):
        broker, limit = node.broker, node.settings.recovery_max_publications
        if recover:
            since = StreamPosition(since_offset(params), p.optional_str(params, "epoch"))
            history = await broker.history(
                channel, since_offset=since.offset, limit=limit + 1, reverse=False
            )
            decision = decide_recovery(since, history, limit)
            reject = p.optional_int(params, "flag") & FLAG_REJECT_UNRECOVERED
            if not decision.recovered and reject:
                raise ClientError(ErrorCode.UNRECOVERABLE_POSITION)
            position = decision.position
            pubs_json = [pub.to_json() for pub in decision.publications]
            result.update(was_recovering=True, recovered=decision.recovered)
        else:
            position = await broker.position(channel)
        top = position.offset
        result.update(recoverable=recoverable, positioned=True, epoch=position.epoch)
        if position.offset:
            result["offset"] = position.offset
    if data is not None:
        result["data"] = data
    text = p.dumps(result)
    if pubs_json:  # paste the publications' JSON in as it is
        text = text[:-1] + ',"publications":[' + ",".join(pubs_json) + "]}"
    return text, top
