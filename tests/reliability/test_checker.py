"""The delivery checker finds what it is there to find."""

from __future__ import annotations

from tests.reliability.checker import DeliveryChecker


def checker_with(*received: tuple[str, int, int]) -> DeliveryChecker:
    checker = DeliveryChecker()
    for seq in range(3):
        checker.published("p", seq, acked=True)
    checker.published("p", 3, acked=False)
    checker.subscriber("s")
    checker.received_all("s", received)
    return checker


def test_everything_once_in_order_is_clean() -> None:
    report = checker_with(("p", 0, 1), ("p", 1, 2), ("p", 2, 3)).report(contiguous_offsets=True)
    assert report.clean and report.delivered == 3


def test_unacknowledged_may_arrive_or_not() -> None:
    assert checker_with(("p", 0, 1), ("p", 1, 2), ("p", 2, 3), ("p", 3, 4)).report().clean


def test_loss_duplicate_reorder_and_gap_are_counted() -> None:
    report = checker_with(("p", 0, 1), ("p", 2, 3), ("p", 1, 2), ("p", 2, 3)).report(
        contiguous_offsets=True
    )
    assert (report.lost, report.duplicated, report.reordered) == (0, 1, 2)
    assert report.gaps == 2  # 1->3 and 3->2
    lost = checker_with(("p", 0, 1), ("p", 2, 3)).report(contiguous_offsets=True)
    assert (lost.lost, lost.gaps) == (1, 1)


def test_a_late_subscriber_is_owed_only_what_came_after_it() -> None:
    checker = DeliveryChecker()
    for seq in range(4):
        checker.published("p", seq, acked=True)
    checker.subscriber("late", owed_from={"p": 2})
    checker.received_all("late", [("p", 2, 3), ("p", 3, 4)])
    assert checker.report().clean
    checker.subscriber("later", owed_from={"p": 2})
    checker.received_all("later", [("p", 3, 4)])
    assert checker.report().lost == 1


def test_owed_from_can_be_set_after_the_first_receptions() -> None:
    checker = DeliveryChecker()
    for seq in range(4):
        checker.published("p", seq, acked=True)
    checker.subscriber("s")
    checker.received("s", "p", 2, 3)
    checker.owed_from("s", "p", 2)
    assert checker.report().lost == 1  # seq 3
