"""Tags filter expressions: what parses (Centrifugo's rules, within bounds) and what matches."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hubbub.core import tagsfilter
from hubbub.core.tagsfilter import BadFilter, Filter, parse

TAGS = {"team": "eng", "price": "101.5", "name": "alice", "empty": ""}


@pytest.mark.parametrize(
    ("node", "matches"),
    [
        ({"key": "team", "cmp": "eq", "val": "eng"}, True),
        ({"key": "team", "cmp": "eq", "val": "ops"}, False),
        ({"key": "missing", "cmp": "eq", "val": "x"}, False),
        ({"key": "team", "cmp": "neq", "val": "ops"}, True),
        ({"key": "missing", "cmp": "neq", "val": "x"}, True),
        ({"key": "team", "cmp": "in", "vals": ["ops", "eng"]}, True),
        ({"key": "team", "cmp": "nin", "vals": ["ops", "eng"]}, False),
        ({"key": "missing", "cmp": "in", "vals": [""]}, True),  # Centrifugo: missing is ""
        ({"key": "missing", "cmp": "nin", "vals": ["a"]}, True),
        ({"key": "team", "cmp": "ex"}, True),
        ({"key": "empty", "cmp": "ex"}, True),
        ({"key": "missing", "cmp": "nex"}, True),
        ({"key": "name", "cmp": "sw", "val": "ali"}, True),
        ({"key": "name", "cmp": "ew", "val": "ce"}, True),
        ({"key": "name", "cmp": "ct", "val": "lic"}, True),
        ({"key": "missing", "cmp": "ct", "val": "a"}, False),
        ({"key": "price", "cmp": "gt", "val": "100"}, True),
        ({"key": "price", "cmp": "gte", "val": "101.50"}, True),
        ({"key": "price", "cmp": "lt", "val": "101.5"}, False),
        ({"key": "price", "cmp": "lte", "val": "101.5"}, True),
        ({"key": "price", "cmp": "gt", "val": "99"}, True),  # numbers, not strings ("99" > "101")
        ({"key": "name", "cmp": "gt", "val": "1"}, False),  # not a number: never matches
        ({"key": "price", "cmp": "gt", "val": "x"}, False),
        ({"key": "missing", "cmp": "lt", "val": "1"}, False),
        (
            {
                "op": "and",
                "nodes": [
                    {"key": "team", "cmp": "eq", "val": "eng"},
                    {"key": "price", "cmp": "gt", "val": "200"},
                ],
            },
            False,
        ),
        (
            {
                "op": "or",
                "nodes": [
                    {"key": "team", "cmp": "eq", "val": "x"},
                    {"key": "price", "cmp": "gt", "val": "100"},
                ],
            },
            True,
        ),
        ({"op": "not", "nodes": [{"key": "team", "cmp": "eq", "val": "eng"}]}, False),
    ],
)
def test_each_comparison_and_operator(node: dict[str, Any], matches: bool) -> None:
    assert parse(node).matches(TAGS) is matches


def test_a_publication_without_tags() -> None:
    assert parse({"key": "a", "cmp": "nex"}).matches(None)
    assert not parse({"key": "a", "cmp": "eq", "val": "b"}).matches(None)
    assert parse({"key": "a", "cmp": "neq", "val": "b"}).matches({})


@pytest.mark.parametrize(
    ("node", "reason"),
    [
        ([], "must be an object"),
        ({}, "needs cmp"),
        ({"key": "a", "cmp": "eq"}, "eq needs val"),
        ({"key": "a", "cmp": "eq", "val": "b", "vals": ["c"]}, "takes val, not vals"),
        ({"key": "a", "cmp": "in"}, "non-empty vals"),
        ({"key": "a", "cmp": "in", "vals": ["b"], "val": "c"}, "takes vals, not val"),
        ({"key": "a", "cmp": "ex", "val": "b"}, "neither val nor vals"),
        ({"cmp": "eq", "val": "b"}, "needs a key"),
        ({"key": "a", "cmp": "like", "val": "b"}, "unknown cmp"),
        ({"op": "xor", "nodes": [{"key": "a", "cmp": "ex"}]}, "unknown op"),
        ({"op": "and"}, "at least one node"),
        ({"op": "not", "nodes": [{"cmp": "ex"}, {"cmp": "ex"}]}, "exactly one node"),
        ({"key": "a", "cmp": "ex", "nodes": [{"cmp": "ex"}]}, "no nodes"),
        ({"key": 1, "cmp": "ex"}, "key must be a string"),
        ({"key": "a", "cmp": "in", "vals": "b"}, "list of strings"),
        ({"op": "and", "nodes": "x"}, "nodes must be a list"),
        ({"key": "a" * 1025, "cmp": "ex"}, "longer than"),
        ({"key": "a", "cmp": "in", "vals": ["v"] * 257}, "more than 256 values"),
    ],
)
def test_malformed_filters_are_refused_with_the_reason(node: Any, reason: str) -> None:
    with pytest.raises(BadFilter, match=reason):
        parse(node)


def test_filters_are_bounded_in_depth_and_size() -> None:
    leaf: dict[str, Any] = {"key": "a", "cmp": "ex"}
    deep = leaf
    for _ in range(tagsfilter.MAX_DEPTH):
        deep = {"op": "not", "nodes": [deep]}
    with pytest.raises(BadFilter, match="deeper"):
        parse(deep)
    wide = {"op": "or", "nodes": [leaf] * tagsfilter.MAX_NODES}
    with pytest.raises(BadFilter, match="more than 64 nodes"):
        parse(wide)
    parse({"op": "or", "nodes": [leaf] * (tagsfilter.MAX_NODES - 1)})


def test_the_values_of_a_whole_filter_are_bounded() -> None:
    """A filter is evaluated per publication per subscriber: its cost is bounded as a whole,
    not per leaf (63 leaves of 256 long values took ~150 us per match, 100x a delivery)."""
    many = [f"v{i}" for i in range(tagsfilter.MAX_VALUES)]
    parse({"key": "k", "cmp": "in", "vals": many})
    leaf = {"key": "k", "cmp": "nin", "vals": many[: tagsfilter.MAX_VALUES // 2 + 1]}
    with pytest.raises(BadFilter, match=f"more than {tagsfilter.MAX_VALUES} values"):
        parse({"op": "and", "nodes": [leaf, leaf]})


def test_a_key_is_optional_for_exists() -> None:
    assert parse({"cmp": "ex"}) == Filter(cmp="ex")


WORDS = st.text(alphabet="abc", min_size=1, max_size=3)
LEAVES = st.builds(
    lambda key, cmp, val: {"key": key, "cmp": cmp, "val": val},
    WORDS,
    st.sampled_from(["eq", "neq", "sw", "gt"]),
    WORDS,
) | st.builds(
    lambda key, vals: {"key": key, "cmp": "in", "vals": vals},
    WORDS,
    st.lists(WORDS, min_size=1, max_size=3),
)
NODES = st.recursive(
    LEAVES,
    lambda children: (
        st.builds(
            lambda op, nodes: {"op": op, "nodes": nodes},
            st.sampled_from(["and", "or"]),
            st.lists(children, min_size=1, max_size=3),
        )
        | st.builds(lambda node: {"op": "not", "nodes": [node]}, children)
    ),
    max_leaves=8,
)


@given(NODES, st.dictionaries(WORDS, WORDS, max_size=3))
def test_the_json_form_round_trips_and_matching_never_raises(
    node: dict[str, Any], tags: dict[str, str]
) -> None:
    parsed = parse(node)
    assert parse(parsed.to_json()) == parsed
    assert isinstance(parsed.matches(tags), bool)
