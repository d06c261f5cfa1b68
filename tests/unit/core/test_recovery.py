"""Recovery decisions: all missed publications or nothing."""

from __future__ import annotations

from hubbub.core.recovery import decide_recovery, is_continuous
from hubbub.core.types import HistoryResult, Publication, StreamPosition


def result(offsets: list[int], top: int, epoch: str = "e") -> HistoryResult:
    return HistoryResult([Publication("1", offset=o) for o in offsets], StreamPosition(top, epoch))


def test_nothing_missed_is_recovered() -> None:
    d = decide_recovery(StreamPosition(5, "e"), result([], 5), 10)
    assert (d.recovered, d.publications) == (True, [])


def test_all_missed_are_returned_in_order() -> None:
    d = decide_recovery(StreamPosition(5, "e"), result([6, 7, 8], 8), 10)
    assert d.recovered
    assert [p.offset for p in d.publications] == [6, 7, 8]


def test_gap_epoch_change_and_too_many_give_nothing() -> None:
    since = StreamPosition(5, "e")
    assert not decide_recovery(since, result([7, 8], 8), 10).recovered  # 6 was trimmed
    assert not decide_recovery(since, result([6], 6, epoch="new"), 10).recovered
    too_many = decide_recovery(since, result([6, 7, 8, 9], 9), 3)
    assert (too_many.recovered, too_many.publications) == (False, [])
    assert not decide_recovery(StreamPosition(9, "e"), result([], 5), 10).recovered  # future


def test_partial_read_is_not_recovered() -> None:
    """The read stopped before the top (limit reached): never a partial replay."""
    assert not decide_recovery(StreamPosition(5, "e"), result([6, 7], 9), 2).recovered
    assert is_continuous(StreamPosition(5, "e"), result([6, 7], 9))
