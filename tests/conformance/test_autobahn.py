"""RFC 6455 / 7692 conformance of the WebSocket edge, by the Autobahn|Testsuite.

``make test`` runs the quick suite: every case except the large-message compression variants
12.x.7-18 and 13.x.7-18 (373 of 517 cases; 9.* with its 16 MiB messages included).
``make autobahn`` runs all 517.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from tests.conftest import need_binary
from tests.support.procs import run

pytestmark = pytest.mark.conformance

ROOT = Path(__file__).resolve().parents[2]


def test_autobahn_quick_suite_has_no_failure() -> None:
    """All 373 quick-suite cases run and none is FAILED."""
    need_binary("wstest", str(ROOT / ".venv-autobahn" / "bin" / "wstest"))
    # In a process group of its own: on a timeout the script gets SIGTERM (it stops its
    # servers and wstest), then whatever is left of the group SIGKILL.
    proc = run(
        [sys.executable, str(ROOT / "scripts" / "autobahn.py"), "--suite", "quick"],
        timeout=600,
        term_grace=30,
        cwd=ROOT,
    )
    summary = re.search(r"autobahn: (\d+) cases, .* (\d+) FAILED", proc.stdout)
    assert summary, f"no summary line\nstdout={proc.stdout}\nstderr={proc.stderr}"
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert int(summary.group(1)) == 373
    assert int(summary.group(2)) == 0
