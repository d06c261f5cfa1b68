"""Fossil deltas (core/fossil.py): the format, round trips, the UTF-8 guarantee, refusals, and
centrifuge-python's own decoder on what hubbub makes (centrifuge-js's: tests/interop)."""

from __future__ import annotations

import json
import random
import time

import pytest
from centrifuge.fossil import apply_delta as sdk_apply
from hypothesis import given, settings
from hypothesis import strategies as st

from hubbub.core.fossil import DeltaError, apply, checksum, create, number


def reference_checksum(data: bytes) -> int:
    """The format's checksum, spelled out: big-endian words, the last one zero-padded."""
    padded = data + b"\0" * (-len(data) % 4)
    words = [int.from_bytes(padded[i : i + 4], "big") for i in range(0, len(padded), 4)]
    return sum(words) % 2**32


def doc(changed: int = -1, value: float = 99.5) -> bytes:
    """A JSON document of about 4 KiB; item ``changed`` gets another price."""
    items = [
        {"id": i, "name": f"item {i}", "price": value if i == changed else i * 1.5, "tags": ["a"]}
        for i in range(64)
    ]
    return json.dumps({"items": items}).encode()


def test_numbers_are_base_64_most_significant_digit_first() -> None:
    assert [number(n) for n in (0, 9, 10, 35, 36, 37, 62, 63)] == [
        b"0",
        b"9",
        b"A",
        b"Z",
        b"_",
        b"a",
        b"z",
        b"~",
    ]
    assert number(64) == b"10"
    assert number(64 * 64 - 1) == b"~~"
    assert number(4096 + 2 * 64 + 3) == b"123"


@pytest.mark.parametrize("data", [b"", b"a", b"ab", b"abc", b"abcd", b"abcde", bytes(range(256))])
def test_the_checksum_sums_big_endian_words(data: bytes) -> None:
    assert checksum(data) == reference_checksum(data)
    assert checksum(b"\xff" * 4096) == (0xFFFFFFFF * 1024) % 2**32


def test_a_hand_written_delta_applies() -> None:
    """Copy, insert, copy, as the format describes them."""
    source = b"hello world, hello moon"
    target = b"hello there world, hello moon"
    body = b"6@0,6:there H@6,"  # H: 17
    delta = number(len(target)) + b"\n" + body + number(checksum(target)) + b";"
    assert apply(source, delta) == target
    assert bytes(sdk_apply(source, delta)) == target


def test_a_small_change_in_a_4k_json_document_is_a_small_delta() -> None:
    source, target = doc(), doc(changed=31)
    delta = create(source, target)
    assert apply(source, delta) == target
    assert len(delta) < 40, delta  # two copies and the changed bytes
    assert delta.count(b"@") == 2


@pytest.mark.parametrize(
    ("source", "target"),
    [
        (b"", b""),
        (b"", b"new"),
        (b"old", b""),
        (b"same text, long enough to copy", b"same text, long enough to copy"),
        (b"short", b"short"),
        (b"x" * 100, b"x" * 100 + b"y"),
        (b"y" + b"x" * 100, b"x" * 100),
        (b"abc" * 50, b"cba" * 50),
        (bytes(range(256)) * 4, bytes(reversed(range(256))) * 4),
        (doc(), doc()[::-1]),
        (doc(3), doc(60)),
    ],
)
def test_round_trips(source: bytes, target: bytes) -> None:
    delta = create(source, target)
    assert apply(source, delta) == target
    assert bytes(sdk_apply(source, delta)) == target


def test_an_identical_target_is_one_copy() -> None:
    source = doc()
    delta = create(source, source)
    assert delta == number(len(source)) + b"\n" + number(len(source)) + b"@0," + (
        number(checksum(source)) + b";"
    )


def test_unrelated_data_is_inserted_in_bounded_time() -> None:
    """Random data found nowhere in the source: one insert; the search gives up after
    max_misses positions rather than trying every one."""
    rng = random.Random(5)
    source, target = rng.randbytes(50_000), rng.randbytes(50_000)
    delta = create(source, target, max_misses=1000)
    assert apply(source, delta) == target
    assert len(delta) <= len(target) + 20
    started = time.perf_counter()
    create(source, target, max_misses=1000)
    assert time.perf_counter() - started < 0.5


def test_the_search_stops_after_max_misses() -> None:
    """A copy beyond the budget is not found; one before it is."""
    rng = random.Random(6)
    noise, common = rng.randbytes(3000), rng.randbytes(500)
    source = common + rng.randbytes(3000)
    target = rng.randbytes(1) + noise + common + rng.randbytes(1)
    assert len(create(source, target)) < len(target) - 400  # the common part is a copy
    assert len(create(source, target, max_misses=100)) > len(target)  # all inserted
    assert apply(source, create(source, target, max_misses=100)) == target


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("é", "ü"),  # C3 A9 -> C3 BC: the same first byte
        ("é", "©"),  # C3 A9 -> C2 A9: the same last byte
        ("€", "₤"),  # E2 82 AC -> E2 82 A4
        ("𝄞", "𝄢"),  # F0 9D 84 9E -> F0 9D 84 A2
        ("ü", "u"),
    ],
)
def test_copies_keep_utf8_characters_whole(old: str, new: str) -> None:
    """Characters that share bytes with what replaces them: the delta is UTF-8 text itself
    (the copies around the change never cut a character)."""
    text = "€uro ünïcödé 𝄞 clef, " * 20
    source = text.encode()
    for target in (
        text.replace(old, new).encode(),
        text.replace(old, new, 1).encode(),
        (text[:200] + new + text[200:]).encode(),
    ):
        delta = create(source, target)
        delta.decode("utf-8")  # whole characters only
        assert apply(source, delta) == target


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400), st.binary(max_size=400))
def test_any_bytes_round_trip(source: bytes, target: bytes) -> None:
    delta = create(source, target)
    assert apply(source, delta) == target
    assert bytes(sdk_apply(source, delta)) == target


@st.composite
def edited(draw: st.DrawFn, alphabet: st.SearchStrategy[str]) -> tuple[bytes, bytes]:
    """A text and the same text with a few edits (what delta compression is for)."""
    text = draw(st.text(alphabet, max_size=300))
    out = text
    for _ in range(draw(st.integers(0, 4))):
        at = draw(st.integers(0, len(out)))
        cut = draw(st.integers(0, 8))
        out = out[:at] + draw(st.text(alphabet, max_size=8)) + out[at + cut :]
    return text.encode(), out.encode()


@settings(max_examples=300, deadline=None)
@given(edited(st.sampled_from('ab{}":,éü©€₤𝄞𝄢 \n')))
def test_edited_texts_round_trip_as_utf8_deltas(pair: tuple[bytes, bytes]) -> None:
    source, target = pair
    delta = create(source, target)
    delta.decode("utf-8")
    assert apply(source, delta) == target
    assert bytes(sdk_apply(source, delta)) == target


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200), st.text(max_size=200))
def test_any_texts_give_utf8_deltas(a: str, b: str) -> None:
    """Whatever the characters (surrogates excepted: not UTF-8)."""
    source = a.encode("utf-8", "replace")
    target = b.encode("utf-8", "replace")
    delta = create(source, target)
    delta.decode("utf-8")
    assert apply(source, delta) == target


def delta_of(target_size: int, body: bytes, target: bytes | None = None) -> bytes:
    check = checksum(target) if target is not None else 0
    return number(target_size) + b"\n" + body + number(check) + b";"


@pytest.mark.parametrize(
    ("delta", "message"),
    [
        (b"", "a number was expected"),
        (b"5", "the delta is unterminated"),
        (b"5;", "not followed by a newline"),
        (b"5\n", "a number was expected"),
        (b"5\n5", "unterminated"),
        (b"5\n5@", "a number was expected"),
        (b"5\n5@0;", "not followed by a comma"),
        (b"5\n5@9,0;", "past the end of the source"),
        (b"5\n9:abcde", "past the end of the delta"),
        (b"5\n6@0,0;", "more than the target length"),
        (b"5\n3@0,3@0,0;", "more than the target length"),
        (b"5\n3@0,0;", "less than the target length"),
        (b"5\n5@0,0;", "the checksum does not match"),
        (b"5\n5#0,", "unknown operator"),
        (b"5\n" + b"1" * 12 + b"@0,", "too long"),
    ],
)
def test_bad_deltas_are_refused(delta: bytes, message: str) -> None:
    with pytest.raises(DeltaError, match=message):
        apply(b"hello world", delta)


def test_bytes_after_the_checksum_are_refused() -> None:
    source = b"hello world"
    delta = create(source, b"hello")
    apply(source, delta)
    with pytest.raises(DeltaError, match="bytes follow"):
        apply(source, delta + b"x")


def test_the_target_size_is_bounded() -> None:
    """A delta promising more than max_size is refused before anything is built."""
    source = b"x" * 100
    delta = create(source, source * 3)
    assert apply(source, delta, max_size=300) == source * 3
    with pytest.raises(DeltaError, match="more than 299"):
        apply(source, delta, max_size=299)
    huge = number(2**40) + b"\n1@0,0;"
    with pytest.raises(DeltaError, match="more than"):
        apply(source, huge)


def test_a_checksum_mismatch_is_caught() -> None:
    source, target = b"0123456789abcdef" * 4, b"0123456789ABCDEF" * 4
    delta = create(source, target)
    trailer = number(checksum(target)) + b";"
    assert delta.endswith(trailer)
    wrong = delta[: -len(trailer)] + number((checksum(target) + 1) % 2**32) + b";"
    with pytest.raises(DeltaError, match="checksum"):
        apply(source, wrong)
