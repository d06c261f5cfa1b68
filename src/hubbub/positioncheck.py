"""The periodic position check: a publication lost between the engine and this node is found
even when nothing follows it.

A gap in the offsets a node is handed shows with the next publication
(:meth:`hubbub.node.Node.handle_publication`); when the lost one was the last for a while,
nothing shows it. So, as Centrifugo's ``channel_position_check_delay`` does, every ``delay``
seconds each channel that has positioned subscribers and was handed nothing for a whole
period has its stream top read from the engine; if the top is past the newest offset handed
over (still so after a short grace, for a publication that is on its way), the subscribers that
did not reach it resubscribe with recovery (:meth:`Node.lagging`).

One engine read per quiet positioned channel per period, per node (not per subscriber). Only
cluster engines lose publications on the way; the node runs the check only with them.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Final

from hubbub.errors import StoreError
from hubbub.periodic import every

if TYPE_CHECKING:
    from hubbub.node import Node

log = logging.getLogger(__name__)

#: Seconds a stream top that is ahead is given to arrive before it counts as lost.
GRACE: Final = 1.0


async def check_positions_forever(node: Node, delay: float) -> None:
    """Run the check every ``delay`` seconds until cancelled (a round that fails is logged
    and the next one comes after a back-off: :func:`hubbub.periodic.every`)."""
    before: dict[str, int] = {}

    async def step() -> None:
        nonlocal before
        before = await check_positions(node, before)

    await every(delay, step, "position check")


async def check_positions(
    node: Node, before: dict[str, int], grace: float = GRACE
) -> dict[str, int]:
    """One round: ``before`` is the previous round's newest offsets per channel; returns this
    round's. Channels whose offset did not move since then are checked."""
    now = {channel: node.last_offset(channel) for channel in node.channels()}
    behind: list[tuple[str, int]] = []
    for channel, last in now.items():
        if before.get(channel) != last or not node.has_positioned(channel):
            continue
        try:
            position = await node.broker.position(channel)
        except StoreError as exc:
            log.info("position check of %s postponed: %s", channel, exc)
            continue
        if position.offset > node.last_offset(channel):
            behind.append((channel, position.offset))
    if behind:
        await asyncio.sleep(grace)
        for channel, top in behind:
            node.lagging(channel, top)
    return now
