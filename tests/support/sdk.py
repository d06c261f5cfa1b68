"""For test modules that drive centrifuge-python in the test's own process.

The SDK can leave the socket of an abandoned reconnect attempt to the garbage collector
(allocated in centrifuge/client.py, websockets.connect). Such a module takes
``pytestmark = [..., *SDK_GARBAGE]``: ResourceWarning is ignored in it only (everywhere else
it fails the run), and what the SDK left is collected after each test (the
``sdk_garbage_collected`` fixture of tests/conftest.py), so that it surfaces in no later test.
"""

from __future__ import annotations

from typing import Final

import pytest

SDK_GARBAGE: Final = [
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    pytest.mark.usefixtures("sdk_garbage_collected"),
]
