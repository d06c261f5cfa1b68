"""The public Python API is ``hubbub.__all__``: each name imports, nothing else is offered,
the docs' Python code uses only those names, and the hooks' contexts and results document
every field."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import hubbub
from hubbub import hooks

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = Path(hubbub.__file__).parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))

#: The hooks' contexts and results: what an application's hooks are given and return.
DOCUMENTED = [
    hooks.ConnectContext,
    hooks.ConnectResult,
    hooks.SubscribeContext,
    hooks.SubscribeResult,
    hooks.PublishContext,
    hooks.PublishResult,
    hooks.RPCContext,
    hooks.MessageContext,
    hooks.DisconnectContext,
]


def python_blocks(path: Path) -> list[str]:
    """The ```python blocks of a Markdown file."""
    return re.findall(r"^```python\n(.*?)^```", path.read_text("utf-8"), re.M | re.S)


def hubbub_names(code: str) -> set[str]:
    """What ``code`` takes from hubbub, as ``module:name`` (``hubbub:Hub``), plus
    ``import:hubbub.x`` for a plain import of anything but the package itself."""
    used: set[str] = set()
    tree = ast.parse(code)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "hubbub":
            used |= {f"{node.module}:{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Import):
            plain = {a.name for a in node.names if a.name.split(".")[0] == "hubbub"}
            used |= {f"import:{name}" for name in plain - {"hubbub"}}
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "hubbub"
        ):
            used.add(f"hubbub:{node.attr}")
    return used


def test_every_name_in_all_imports_from_its_module() -> None:
    """``from hubbub import X`` works for each X in ``__all__``, and is the object its
    defining module has."""
    assert hubbub.__all__ == sorted(set(hubbub.__all__))
    assert set(hubbub.__all__) == {*hubbub._EXPORTS, "__version__"}
    for name, module in hubbub._EXPORTS.items():
        value = getattr(hubbub, name)
        assert value is getattr(importlib.import_module(module), name), name
    namespace: dict[str, Any] = {}
    exec("from hubbub import *", namespace)
    assert set(namespace) - {"__builtins__"} == set(hubbub.__all__)


def test_the_stable_names_are_exported() -> None:
    """The names issue 16 promises (``from hubbub import Hub, ClientError, DisconnectError``)
    and what a hook author needs."""
    assert {
        "Hub",
        "ClientError",
        "DisconnectError",
        "HubbubError",
        "StoreError",
        "ErrorCode",
        *(cls.__name__ for cls in DOCUMENTED),
        "StartupHook",
    } <= set(hubbub.__all__)


def test_nothing_private_leaks() -> None:
    """No private name is exported, every exported object comes from a public module, and
    the package's public attributes are ``__all__`` and its submodules only."""
    for name in hubbub.__all__:
        assert not name.startswith("_") or name == "__version__", name
        module = hubbub._EXPORTS.get(name)
        if module is not None:
            assert not any(part.startswith("_") for part in module.split(".")), name
            value = getattr(hubbub, name)
            if isinstance(value, type):
                assert value.__module__ == module, name
    submodules = {p.stem for p in PACKAGE.glob("*.py")} | {
        p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()
    }
    public = {name for name in dir(hubbub) if not name.startswith("_")}
    assert public - submodules <= set(hubbub.__all__)


def test_type_checkers_see_the_same_names() -> None:
    """The ``if TYPE_CHECKING:`` imports of ``hubbub/__init__.py`` (what mypy and IDEs see)
    are exactly the lazily loaded names, from the same modules."""
    tree = ast.parse((PACKAGE / "__init__.py").read_text("utf-8"))
    seen: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.If) and ast.unparse(node.test).endswith("TYPE_CHECKING"):
            for stmt in node.body:
                assert isinstance(stmt, ast.ImportFrom) and stmt.module
                seen |= {alias.name: stmt.module for alias in stmt.names}
    assert seen == hubbub._EXPORTS


def test_importing_a_submodule_does_not_load_the_facade() -> None:
    """The names are loaded on first use: the core (and the CLI's start) stays light."""
    code = (
        "import sys, hubbub.core.codes\n"
        "print(sorted(m for m in ('hubbub.hub', 'hubbub.config', 'pydantic') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = hubbub.Nope  # type: ignore[attr-defined]
    with pytest.raises(ImportError):
        exec("from hubbub import Nope", {})


@pytest.mark.parametrize("path", DOCS + EXAMPLES, ids=lambda p: str(p.relative_to(ROOT)))
def test_docs_and_examples_use_only_the_public_api(path: Path) -> None:
    """The Python code of the README, docs/ and examples/ takes from hubbub only names in
    ``__all__``, imported from ``hubbub`` itself, and the public modules' (``__all__``)."""
    blocks = [path.read_text("utf-8")] if path.suffix == ".py" else python_blocks(path)
    used = set().union(*map(hubbub_names, blocks)) if blocks else set()
    allowed = {f"hubbub:{name}" for name in hubbub.__all__}
    for module in hubbub._PUBLIC_MODULES:  # (hubbub.outbox: `from hubbub import outbox`)
        names = importlib.import_module(f"hubbub.{module}").__all__
        allowed |= {f"hubbub:{module}", f"import:hubbub.{module}"}
        allowed |= {f"hubbub.{module}:{name}" for name in names}
    assert used - allowed == set()


def test_the_readme_has_python_examples_to_check() -> None:
    """(So that the test above does not pass on a README whose examples moved.)"""
    blocks = python_blocks(ROOT / "README.md")
    assert any("@hub.on_connect" in block for block in blocks)
    assert any("@hub.on_startup" in block for block in blocks)


def _connect_hooks() -> list[Any]:
    """The README's on_connect example and the chat example's."""
    from examples.chat_hub import authenticate

    block = next(b for b in python_blocks(ROOT / "README.md") if "@hub.on_connect" in b)
    namespace: dict[str, Any] = {"__name__": "readme_example"}
    exec(compile(block, "README.md", "exec"), namespace)
    return [namespace["authenticate"], authenticate]


@pytest.mark.parametrize("data", [None, "ada", 7, [], {}, {"name": None}, {"name": ""}])
async def test_the_connect_examples_refuse_missing_data_with_a_client_error(data: Any) -> None:
    """A client that sends no connect data (None), or data of another shape, gets the
    example's ClientError, not error 100 from a TypeError."""
    for authenticate in _connect_hooks():
        ctx = hooks.ConnectContext("c1", "", data, "", "", {})
        with pytest.raises(hubbub.ClientError):
            await authenticate(ctx)


async def test_the_connect_examples_admit_a_name() -> None:
    for authenticate in _connect_hooks():
        ctx = hooks.ConnectContext("c1", "", {"name": "ada"}, "", "", {})
        result = await authenticate(ctx)
        assert isinstance(result, hubbub.ConnectResult)
        assert result.user == "ada"


def _documented_fields(cls: type) -> list[str]:
    doc = cls.__doc__ or ""
    assert "Attributes:" in doc, cls.__name__
    section = doc.split("Attributes:", 1)[1]
    return re.findall(r"^ {8}(\w+):", section, re.M)


@pytest.mark.parametrize("cls", DOCUMENTED, ids=lambda c: c.__name__)
def test_every_field_of_the_contexts_and_results_is_documented(cls: type) -> None:
    """Each field is in its class's ``Attributes:`` section, in field order."""
    fields = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    assert _documented_fields(cls) == fields


def test_data_is_documented_as_possibly_none() -> None:
    """Every context with a client's ``data`` says it may be None."""
    for cls in DOCUMENTED:
        if cls.__name__.endswith("Context") and "data" in cls.__dataclass_fields__:  # type: ignore[attr-defined]
            entry = (cls.__doc__ or "").split("data:", 1)[1].split("\n        ")[0:3]
            assert "None" in " ".join(entry), cls.__name__
    assert "may be None" in (hooks.__doc__ or "")


def test_the_hubs_methods_are_documented() -> None:
    """Every public method of Hub has a docstring; run's names its arguments."""
    for name, value in vars(hubbub.Hub).items():
        if callable(value) and not name.startswith("_"):
            assert value.__doc__, name
    run_doc = hubbub.Hub.run.__doc__ or ""
    for word in ("flags", "config", "log_level", "workers", "ConfigError", "ListenError"):
        assert word in run_doc, word
