"""Recovery and history-window decisions: pure functions over what the history store returned.

The rule that matters: never a partial replay. A client asking to recover from
``(epoch, offset)`` gets *every* publication after ``offset`` (in order), or nothing and
``recovered = False``.
"""

from __future__ import annotations

from dataclasses import dataclass

from hubbub.core.types import HistoryResult, Publication, StreamPosition


@dataclass(frozen=True, slots=True)
class Recovery:
    recovered: bool
    publications: list[Publication]
    position: StreamPosition


def is_continuous(since: StreamPosition, result: HistoryResult) -> bool:
    """True when ``result`` (read forward after ``since``) holds no gap and the same epoch."""
    if since.epoch != result.position.epoch:
        return False
    if since.offset > result.position.offset:
        return False  # the client claims a position the stream never reached
    pubs = result.publications
    if not pubs:
        return since.offset == result.position.offset
    return pubs[0].offset == since.offset + 1


def decide_recovery(
    since: StreamPosition, result: HistoryResult, max_publications: int
) -> Recovery:
    """Decide a recovery from ``result``: a forward read after ``since`` limited to
    ``max_publications + 1`` (one more than allowed, to detect too long a gap)."""
    pubs = result.publications
    ok = (
        is_continuous(since, result)
        and len(pubs) <= max_publications
        and (not pubs or pubs[-1].offset == result.position.offset)
    )
    return Recovery(ok, pubs if ok else [], result.position)
