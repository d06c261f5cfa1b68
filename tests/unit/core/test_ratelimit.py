"""Per-connection rate limits (hubbub.core.ratelimit): commands, bytes, sustained abuse."""

from __future__ import annotations

from dataclasses import replace

from hubbub.config import Settings
from hubbub.core.ratelimit import Limits, RateLimiter, Verdict, message_size

A, R, D = Verdict.ADMIT, Verdict.REFUSE, Verdict.DISCONNECT

#: Commands only: bytes and refusals never in the way.
COMMANDS = Limits(
    command_rate=4.0,
    command_burst=3.0,
    byte_rate=1e12,
    byte_burst=1e12,
    refusal_limit=1e9,
    refusal_rate=1e9,
)


def test_burst_then_rate() -> None:
    limiter = RateLimiter(COMMANDS, now=0.0)
    assert [limiter.admit(0.0) for _ in range(4)] == [A, A, A, R]
    assert limiter.admit(0.125) is R  # half a token
    assert limiter.admit(0.25) is A  # one token after 0.25 s at 4/s


def test_refill_stops_at_burst() -> None:
    limiter = RateLimiter(replace(COMMANDS, command_rate=1000.0, command_burst=2.0), now=0.0)
    assert limiter.admit(0.0) is A and limiter.admit(0.0) is A
    assert [limiter.admit(60.0) for _ in range(3)] == [A, A, R]


def test_a_clock_going_back_takes_nothing_away() -> None:
    limiter = RateLimiter(replace(COMMANDS, command_rate=1.0, command_burst=2.0), now=50.0)
    assert [limiter.admit(40.0) for _ in range(3)] == [A, A, R]


def test_refusals_interleaved_with_refills_still_disconnect() -> None:
    """The defect: a token every millisecond reset the old "refusals in a row" counter, so a
    flood of 15 commands per millisecond was refused forever and never disconnected."""
    limits = Limits(1000.0, 2000.0, 1e12, 1e12, refusal_limit=100.0, refusal_rate=10.0)
    limiter = RateLimiter(limits, now=0.0)
    verdicts = []
    for ms in range(1000):
        verdicts += [limiter.admit(ms / 1000) for _ in range(15)]
        if verdicts[-1] is D:
            break
    assert verdicts[-1] is D
    # The burst lasts 2000 / (15 - 1) ~ 143 ms, then ~14 refusals per ms use up the allowance
    # of 100 in ~7 ms (it refills by 0.07 meanwhile): disconnected in the 150th ms, admitted
    # commands between the refusals all along.
    assert verdicts.count(R) == 100
    assert len(verdicts) // 15 == 150
    refused = [i for i, v in enumerate(verdicts) if v is R]
    assert A in verdicts[refused[0] : refused[-1]]


def test_an_honest_burst_is_refused_but_not_disconnected() -> None:
    limits = Limits(10.0, 20.0, 1e12, 1e12, refusal_limit=5.0, refusal_rate=0.5)
    limiter = RateLimiter(limits, now=0.0)
    assert [limiter.admit(0.0) for _ in range(25)] == [A] * 20 + [R] * 5  # 5 refusals: allowed
    # It backs off; later it overshoots once more, by as much: allowance has refilled.
    assert [limiter.admit(10.0) for _ in range(25)] == [A] * 20 + [R] * 5
    assert limiter.admit(10.0) is D  # the sixth refusal within 10 s


def test_refusals_slower_than_the_drain_rate_never_disconnect() -> None:
    limits = Limits(1.0, 1.0, 1e12, 1e12, refusal_limit=3.0, refusal_rate=1.0)
    limiter = RateLimiter(limits, now=0.0)
    verdicts = []
    for second in range(1000):  # two commands a second: one admitted, one refused
        verdicts += [limiter.admit(float(second)), limiter.admit(float(second))]
    assert D not in verdicts and verdicts.count(R) == 1000


BYTES = Limits(1e9, 1e9, byte_rate=1000.0, byte_burst=2000.0, refusal_limit=3.0, refusal_rate=0.1)


def test_bytes_over_budget_are_refused_then_disconnected() -> None:
    limiter = RateLimiter(BYTES, now=0.0)
    assert limiter.admit(0.0, 1500) is A  # balance 500
    assert limiter.admit(0.0, 1500) is A  # judged before its own bytes: balance -1000
    assert limiter.admit(0.0, 10) is R  # negative: refused, still charged
    assert limiter.admit(1.0, 10) is R  # -1010 + 1000 = -10
    assert limiter.admit(1.02, 10) is A  # -10 + 20 >= 0
    assert limiter.admit(1.02, 1) is R
    assert limiter.admit(1.02, 1) is D  # the fourth refusal: the allowance of 3 is gone


def test_a_frame_larger_than_the_burst_gets_through_after_a_pause() -> None:
    limiter = RateLimiter(BYTES, now=0.0)
    assert limiter.admit(0.0, 64_000) is A
    assert limiter.admit(0.0) is R  # the rest of the frame waits: debt floors at -burst
    assert limiter.admit(1.9) is R
    assert limiter.admit(2.0) is A  # -2000 + 2 s * 1000 = 0
    assert limiter.admit(2.0, 64_000) is A


def test_pongs_are_never_refused_but_their_bytes_count() -> None:
    limiter = RateLimiter(BYTES, now=0.0)
    assert limiter.admit(0.0, 2500, commands=0) is A
    assert limiter.admit(0.0, 2500, commands=0) is A  # no refusal, no allowance taken
    assert limiter.admit(0.0) is R  # the command after it pays for its bytes
    assert limiter.allowance == 2.0


def test_limits_of_settings_and_message_size() -> None:
    settings = Settings(client_refusal_limit=50, client_refusal_window=5.0)
    limits = Limits.of(settings)
    assert (limits.command_rate, limits.command_burst) == (1000.0, 2000.0)
    assert (limits.byte_rate, limits.byte_burst) == (1024.0 * 1024, 4.0 * 1024 * 1024)
    assert (limits.refusal_limit, limits.refusal_rate) == (50.0, 10.0)
    assert message_size(b"\xff" * 3) == 3
    assert message_size("abc") == 3
    assert message_size("é€") == 5  # UTF-8 bytes, not characters
