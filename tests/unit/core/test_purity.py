"""The core stays pure: no I/O, no event loop, no clock, no randomness."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import hubbub.core

CORE = Path(hubbub.core.__file__).parent
FORBIDDEN = {
    "asyncio", "aiohttp", "socket", "selectors", "ssl", "websockets", "redis", "asyncpg",
    "psycopg", "sqlite3", "time", "datetime", "random", "secrets", "uuid", "os", "subprocess",
    "threading",
}  # fmt: skip


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_core_modules_import_nothing_impure() -> None:
    """No module of hubbub.core imports I/O, the clock or randomness."""
    modules = sorted(CORE.glob("*.py"))
    assert len(modules) > 5
    offenders = {m.name: imported_modules(m) & FORBIDDEN for m in modules}
    assert {name: bad for name, bad in offenders.items() if bad} == {}


def test_importing_the_core_loads_no_event_loop() -> None:
    """Transitively too: importing every core module loads neither asyncio nor aiohttp."""
    names = [f"hubbub.core.{m.stem}" for m in CORE.glob("*.py") if m.stem != "__init__"]
    code = "import sys\n" + "".join(f"import {n}\n" for n in names)
    code += "print(sorted(m for m in ('asyncio', 'aiohttp') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
