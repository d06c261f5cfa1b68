"""Packaging without building anything: the optional drivers stay optional, a missing one
names its extra, and the version, licence and changelog agree (the built wheel itself:
tests/e2e/test_wheel.py)."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import hubbub
from hubbub.config import load_settings
from hubbub.engines import factory
from hubbub.errors import ConfigError, HubbubError

ROOT = Path(__file__).resolve().parents[2]
#: Modules of the extras: hubbub must import and serve without any of them.
OPTIONAL = ("redis", "asyncpg", "centrifuge", "uvloop", "hiredis")
#: The engines that import a driver.
ENGINE_MODULES = {"hubbub.engines.redis", "hubbub.engines.postgres", "hubbub.engines.pgbroker"}


def test_the_server_and_the_cli_import_without_the_optional_drivers() -> None:
    """With every optional module made unimportable, the CLI, the runner and the app load,
    and the default engines build."""
    code = (
        "import sys\n"
        f"for name in {OPTIONAL!r}: sys.modules[name] = None\n"
        "import hubbub.cli, hubbub.server.runner, hubbub.server.app\n"
        "from hubbub.config import load_settings\n"
        "from hubbub.engines.factory import build_engines\n"
        "build_engines(load_settings({'history': 'memory'}, environ={}))\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "ok", out.stderr


@pytest.mark.parametrize(
    ("flags", "module", "extra"),
    [
        ({"engine": "redis://127.0.0.1:1/0"}, "redis", "redis"),
        ({"engine": "postgresql://u@127.0.0.1:1/db"}, "asyncpg", "postgres"),
        ({"history": "postgresql://u@127.0.0.1:1/db"}, "asyncpg", "postgres"),
    ],
)
def test_a_missing_driver_is_a_config_error_naming_the_extra(
    monkeypatch: pytest.MonkeyPatch, flags: dict[str, str], module: str, extra: str
) -> None:
    """As if the driver were not installed: it and the engines importing it are unloaded (put
    back afterwards) and it cannot be imported."""
    for name in [n for n in sys.modules if n.split(".")[0] == module or n in ENGINE_MODULES]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, module, None)
    settings = load_settings(flags, environ={})
    with pytest.raises(ConfigError) as caught:
        factory.build_engines(settings)
    assert f"pip install 'hubbub[{extra}]'" in str(caught.value)
    assert str(caught.value).split(":", 1)[1].strip().startswith(next(iter(flags)))


def test_another_import_error_is_not_taken_for_a_missing_driver() -> None:
    with pytest.raises(ImportError, match="nothing"), factory.driver_needed("engine", "redis://"):
        raise ImportError("nothing", name="hubbub.engines.nothing")


async def test_subscribe_without_the_sdk_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from hubbub import operator

    monkeypatch.setitem(sys.modules, "centrifuge", None)
    with pytest.raises(HubbubError, match=r"pip install 'hubbub\[cli\]'"):
        await operator.subscribe("http://127.0.0.1:1", ["news"])


def test_version_licence_and_changelog_agree() -> None:
    """One version (hubbub.__version__, which pyproject reads), an MIT LICENSE as pyproject
    says, and a CHANGELOG section for the version."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
    assert project["project"]["dynamic"] == ["version"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "hubbub.__version__"}
    assert project["project"]["license"] == "MIT"
    assert (ROOT / "LICENSE").read_text("utf-8").startswith("MIT License")
    assert f"## {hubbub.__version__}" in (ROOT / "CHANGELOG.md").read_text("utf-8")


def test_the_all_extra_brings_every_other_extra_and_dev_tools_are_groups() -> None:
    """`pip install -e '.[all]' --group dev` (make test) gets every driver the tests use; the
    test, lint and bench tools are dependency groups, never extras a user could pip install."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
    extras = project["project"]["optional-dependencies"]
    [itself] = extras["all"]
    assert itself.startswith("hubbub[")
    named = set(itself[len("hubbub[") : -1].split(","))
    assert named == set(extras) - {"all"}
    groups = project["dependency-groups"]
    assert {"dev", "bench"} <= set(groups)
    assert not {"dev", "bench"} & set(extras)
    tools = {r.split(">")[0].split("<")[0].split("[")[0] for r in groups["dev"]}
    assert {"pytest", "ruff", "mypy"} <= tools
    makefile = (ROOT / "Makefile").read_text("utf-8")
    assert "-e '.[all]' --group dev" in makefile
