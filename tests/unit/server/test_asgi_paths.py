"""The ASGI edge's routing path: the mount's prefix stripped only as a whole segment."""

from __future__ import annotations

from typing import Any

import pytest

from hubbub.server.asgi_http import route_path


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        ({"path": "/rt/health", "root_path": "/rt"}, "/health"),
        ({"path": "/rt", "root_path": "/rt"}, "/"),
        ({"path": "/rt/", "root_path": "/rt"}, "/"),
        ({"path": "/rt/health", "root_path": "/rt/"}, "/health"),
        ({"path": "/rtx/health", "root_path": "/rt"}, "/rtx/health"),  # not the mount's prefix
        ({"path": "/health", "root_path": "/rt"}, "/health"),  # root_path not in path (old ASGI)
        ({"path": "/health"}, "/health"),
        ({}, "/"),
    ],
)
def test_route_path(scope: dict[str, Any], expected: str) -> None:
    assert route_path(scope) == expected
