"""Test time: every timeout in the tests is multiplied by ``TEST_TIME_SCALE`` (default 1)."""

from __future__ import annotations

import os

TIME_SCALE = float(os.environ.get("TEST_TIME_SCALE", "1"))


def scaled(seconds: float) -> float:
    return seconds * TIME_SCALE
