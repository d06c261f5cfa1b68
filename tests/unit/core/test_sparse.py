"""Usually-empty dicts sharing one read-only empty value (hubbub.core.sparse)."""

from __future__ import annotations

import pytest

from hubbub.core import sparse


def test_put_swaps_in_a_dict_and_drop_works_on_both() -> None:
    d: dict[str, int] = sparse.EMPTY
    assert sparse.drop(d, "a") is None
    d = sparse.put(d, "a", 1)
    assert d == {"a": 1} and d is not sparse.EMPTY
    assert sparse.put(d, "b", 2) is d  # a real dict is kept
    assert sparse.drop(d, "a") == 1 and d == {"b": 2}
    assert len(sparse.EMPTY) == 0


def test_a_direct_write_to_the_shared_empty_value_raises() -> None:
    d: dict[str, int] = sparse.EMPTY
    with pytest.raises(TypeError):
        d["a"] = 1
