"""Tags filters: which publications one subscriber gets, by the publications' tags.

A subscriber may send a filter expression with its subscribe request (``tf``, Centrifugo's
``FilterNode``) where the namespace has ``allow_tags_filter``; the node then hands it only the
publications whose tags match. An expression is a tree:

- a *leaf* (``op`` empty) compares the tag ``key`` with ``cmp``: ``eq``/``neq`` ``val``;
  ``in``/``nin`` ``vals``; ``ex``/``nex`` (the key is there or not); ``sw``/``ew``/``ct``
  (starts with, ends with, contains ``val``); ``lt``/``lte``/``gt``/``gte`` (numeric: both sides
  read as decimal numbers; a tag that is not a number never matches);
- ``and``/``or`` over one or more ``nodes``; ``not`` over exactly one.

Guarantees: :func:`parse` accepts exactly the well-formed trees (Centrifugo's rules: a leaf
needs ``cmp``, a ``key`` except for ``ex``/``nex``, ``val`` for the single-value comparisons
and only there, non-empty ``vals`` for ``in``/``nin`` and only there) within the bounds below,
and raises :class:`BadFilter` otherwise, with the reason; :meth:`Filter.matches` never raises
(for tags that are an object of strings) and costs at most :data:`MAX_NODES` nodes and
:data:`MAX_VALUES` set lookups.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final

#: Bounds on one expression (a filter is evaluated per publication per subscriber: it must
#: stay small). Centrifugo sets none; these are far above what a real filter takes.
MAX_NODES: Final = 64
MAX_DEPTH: Final = 8
#: Values of ``vals`` in the whole expression, all its leaves together.
MAX_VALUES: Final = 256
MAX_STRING: Final = 1024

LOGICAL: Final = frozenset({"and", "or", "not"})
SINGLE: Final = frozenset({"eq", "neq", "sw", "ew", "ct", "lt", "lte", "gt", "gte"})
SETS: Final = frozenset({"in", "nin"})
PRESENCE: Final = frozenset({"ex", "nex"})
NUMERIC: Final = frozenset({"lt", "lte", "gt", "gte"})

#: Decimal numbers as tags carry them: an optional sign, digits, an optional fraction.
_NUMBER: Final = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")


class BadFilter(ValueError):
    """A filter expression that is not well-formed (the message says why)."""


@dataclass(frozen=True, slots=True)
class Filter:
    """One node of a filter expression (see the module docstring)."""

    op: str = ""
    key: str = ""
    cmp: str = ""
    val: str = ""
    vals: tuple[str, ...] = ()
    nodes: tuple[Filter, ...] = ()
    # Computed once: ``vals`` as a set, ``val`` as a number (numeric comparisons).
    _set: frozenset[str] = field(default=frozenset(), init=False, repr=False, compare=False)
    _number: Decimal | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.vals:
            object.__setattr__(self, "_set", frozenset(self.vals))
        if self.cmp in NUMERIC:
            object.__setattr__(self, "_number", _number(self.val))

    def matches(self, tags: Mapping[str, str] | None) -> bool:
        """Whether a publication with ``tags`` (None: no tags) passes this filter."""
        op = self.op
        if op == "and":
            return all(node.matches(tags) for node in self.nodes)
        if op == "or":
            return any(node.matches(tags) for node in self.nodes)
        if op == "not":
            return not self.nodes[0].matches(tags)
        value = tags.get(self.key) if tags else None
        cmp = self.cmp
        if cmp == "eq":
            return value == self.val
        if cmp == "neq":
            return value != self.val
        if cmp == "in":
            return (value if value is not None else "") in self._set
        if cmp == "nin":
            return (value if value is not None else "") not in self._set
        if cmp == "ex":
            return value is not None
        if cmp == "nex":
            return value is None
        if value is None:
            return False
        if cmp == "sw":
            return value.startswith(self.val)
        if cmp == "ew":
            return value.endswith(self.val)
        if cmp == "ct":
            return self.val in value
        return _compare(cmp, value, self._number)

    def to_json(self) -> dict[str, Any]:
        """The expression as the JSON protocol sends it (only the fields that are set)."""
        out: dict[str, Any] = {}
        if self.op:
            out["op"] = self.op
        if self.key:
            out["key"] = self.key
        if self.cmp:
            out["cmp"] = self.cmp
        if self.val:
            out["val"] = self.val
        if self.vals:
            out["vals"] = list(self.vals)
        if self.nodes:
            out["nodes"] = [node.to_json() for node in self.nodes]
        return out


@functools.lru_cache(maxsize=1024)  # (one publication's tags are read by every subscriber)
def _number(text: str) -> Decimal | None:
    if len(text) > 64 or not _NUMBER.fullmatch(text):
        return None
    return Decimal(text)


def _compare(cmp: str, value: str, right: Decimal | None) -> bool:
    left = _number(value) if right is not None else None
    if left is None or right is None:
        return False
    if cmp == "lt":
        return left < right
    if cmp == "lte":
        return left <= right
    if cmp == "gt":
        return left > right
    return left >= right


def parse(obj: Any) -> Filter:
    """A filter from its JSON form (an object with ``op``, ``key``, ``cmp``, ``val``,
    ``vals``, ``nodes``; absent fields are empty). Raises :class:`BadFilter`."""
    budget = [MAX_NODES, MAX_VALUES]  # nodes, values left
    return _parse(obj, 1, budget)


def _string(obj: Mapping[str, Any], name: str) -> str:
    value = obj.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadFilter(f"{name} must be a string")
    if len(value) > MAX_STRING:
        raise BadFilter(f"{name} is longer than {MAX_STRING} characters")
    return value


def _strings(obj: Mapping[str, Any], name: str, budget: list[int]) -> tuple[str, ...]:
    value = obj.get(name)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BadFilter(f"{name} must be a list of strings")
    budget[1] -= len(value)
    if budget[1] < 0:
        raise BadFilter(f"more than {MAX_VALUES} values in {name} of all nodes")
    if any(len(v) > MAX_STRING for v in value):
        raise BadFilter(f"a value in {name} is longer than {MAX_STRING} characters")
    return tuple(value)


def _parse(obj: Any, depth: int, budget: list[int]) -> Filter:
    if not isinstance(obj, Mapping):
        raise BadFilter("a filter node must be an object")
    budget[0] -= 1
    if budget[0] < 0:
        raise BadFilter(f"more than {MAX_NODES} nodes")
    if depth > MAX_DEPTH:
        raise BadFilter(f"nested deeper than {MAX_DEPTH} levels")
    op = _string(obj, "op")
    raw_nodes = obj.get("nodes")
    if raw_nodes is not None and not isinstance(raw_nodes, list):
        raise BadFilter("nodes must be a list")
    if op:
        if op not in LOGICAL:
            raise BadFilter(f"unknown op {op!r}")
        nodes = tuple(_parse(node, depth + 1, budget) for node in raw_nodes or ())
        if op == "not" and len(nodes) != 1:
            raise BadFilter("not takes exactly one node")
        if not nodes:
            raise BadFilter(f"{op} takes at least one node")
        return Filter(op=op, nodes=nodes)
    if raw_nodes:
        raise BadFilter("a comparison has no nodes")
    return _leaf(
        _string(obj, "key"),
        _string(obj, "cmp"),
        _string(obj, "val"),
        _strings(obj, "vals", budget),
    )


def _leaf(key: str, cmp: str, val: str, vals: Sequence[str]) -> Filter:
    if not cmp:
        raise BadFilter("a comparison needs cmp")
    if cmp in SINGLE:
        if not val:
            raise BadFilter(f"{cmp} needs val")
        if vals:
            raise BadFilter(f"{cmp} takes val, not vals")
    elif cmp in SETS:
        if not vals:
            raise BadFilter(f"{cmp} needs a non-empty vals")
        if val:
            raise BadFilter(f"{cmp} takes vals, not val")
    elif cmp in PRESENCE:
        if val or vals:
            raise BadFilter(f"{cmp} takes neither val nor vals")
    else:
        raise BadFilter(f"unknown cmp {cmp!r}")
    if not key and cmp not in PRESENCE:
        raise BadFilter(f"{cmp} needs a key")
    return Filter(key=key, cmp=cmp, val=val, vals=tuple(vals))
