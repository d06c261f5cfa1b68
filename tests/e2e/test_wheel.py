"""The wheel built from the repo, installed into a fresh venv, serves from any directory.

Built once per session from a copy of the sources (setuptools' ``build/`` directory never
leaks stale files into it), installed into a venv made in a temp dir without system site
packages, with only the runtime dependencies from the package index (pip's cache and the
configured indexes make that ~20 s, the slow part; the build takes ~8 s), then
``hubbub serve`` of that venv is started in another temp dir, with no PYTHONPATH, so that
nothing of the source tree can be imported. Without a reachable package index the tests skip
(and fail under CI=true, where the index is a prerequisite).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

import hubbub
from tests.conftest import missing
from tests.support.procs import LineReader, kill_group, run
from tests.support.server import READY_RE
from tests.support.timing import scaled

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "hubbub"
#: What a build needs of the repo.
SOURCES = ("pyproject.toml", "README.md", "LICENSE", "src")
#: pip's words for an index it could not reach (or that had nothing for it).
OFFLINE = re.compile(
    r"NewConnectionError|Failed to establish a new connection|Temporary failure in name "
    r"resolution|Name or service not known|Network is unreachable|Max retries exceeded|"
    r"ConnectTimeout|ReadTimeout|No matching distribution found|"
    r"Could not find a version that satisfies"
)
#: Short waits and one retry (in the environment: the pip of the build's isolated
#: environment reads it too): an unreachable index is a skip, not minutes of pip retrying.
PIP_ENV = {"PIP_DEFAULT_TIMEOUT": "15", "PIP_RETRIES": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
#: The distributions `pip install hubbub` must not bring: drivers and tools are extras.
EXTRAS_ONLY = {"asyncpg", "redis", "hiredis", "uvloop", "centrifuge-python", "pytest", "ruff"}


def pip(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """This interpreter's pip (``--python`` points it at another environment), without the
    PYTHONPATH of the test run (a hubbub found there would count as installed already)."""
    return run([sys.executable, "-m", "pip", *args], timeout, env=clean_env(**PIP_ENV))


def need_index(done: subprocess.CompletedProcess[str], what: str) -> None:
    """Fail with pip's output, or skip (fail under CI) when it could not reach an index."""
    if done.returncode == 0:
        return
    output = done.stdout + done.stderr
    errors = [line.strip() for line in output.splitlines() if line.lstrip().startswith("ERROR")]
    tail = "\n".join(errors[-3:] or output.splitlines()[-5:])
    if OFFLINE.search(output):
        missing(f"{what}: pip could not get packages from the package index (offline?):\n{tail}")
    pytest.fail(f"{what} failed (exit {done.returncode}):\n{tail}")


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without PYTHONPATH, the outer venv and HUBBUB_* settings."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("HUBBUB_") and k not in {"PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME"}
    }
    env.update(extra)
    return env


@dataclass(frozen=True)
class Installed:
    wheel: Path
    venv: Path

    @property
    def bin(self) -> Path:
        return self.venv / "bin"


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel of the repo's current sources, built once per session."""
    src = tmp_path_factory.mktemp("wheel-src")
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(
                path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
            )
        else:
            shutil.copy2(path, src / name)
    out = tmp_path_factory.mktemp("wheel-dist")
    built = pip("wheel", "--no-deps", "-w", str(out), str(src), timeout=240)
    need_index(built, "building the wheel (its build dependencies come from the index)")
    [found] = out.glob("hubbub-*.whl")
    return found


@pytest.fixture(scope="session")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """A fresh venv (no system site packages, not even pip) with the wheel installed."""
    venv = tmp_path_factory.mktemp("wheel-venv") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    done = pip("--python", python, "install", str(wheel), timeout=300)
    need_index(done, "installing the wheel")
    return Installed(wheel, venv)


def test_the_wheel_has_every_file_of_the_package(wheel: Path) -> None:
    """Pages, demos, hubbub.js, the Protobuf schema, py.typed: every file under src/hubbub
    (but caches) is in the wheel, and nothing but the package and its metadata."""
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {
        path.relative_to(PACKAGE.parent).as_posix()
        for path in PACKAGE.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }
    assert expected - names == set()
    dist_info = f"hubbub-{hubbub.__version__}.dist-info/"
    assert {n for n in names if not n.startswith(("hubbub/", dist_info))} == set()
    assert f"{dist_info}licenses/LICENSE" in names


def test_the_wheels_metadata(wheel: Path) -> None:
    """The version is hubbub.__version__, MIT, the runtime dependencies exclude every driver
    and tool, and each of those is an extra."""
    meta = zipfile.ZipFile(wheel).read(f"hubbub-{hubbub.__version__}.dist-info/METADATA")
    lines = meta.decode().split("\n\n", 1)[0].splitlines()
    fields: dict[str, list[str]] = {}
    for line in lines:
        key, _, value = line.partition(": ")
        fields.setdefault(key, []).append(value)
    assert fields["Version"] == [hubbub.__version__]
    assert fields["License-Expression"] == ["MIT"]
    # Drivers and tools a user may want are extras; the dev and bench tools are dependency
    # groups, which a wheel does not carry.
    assert set(fields["Provides-Extra"]) == {"redis", "postgres", "fast", "cli", "all"}
    runtime = [r for r in fields["Requires-Dist"] if "extra ==" not in r]
    names = {re.split(r"[\[<>=;! ]", r, maxsplit=1)[0].lower() for r in runtime}
    assert names == {
        "aiohttp", "click", "pydantic", "orjson", "pyjwt", "psutil", "prometheus-client",
        "protobuf",
    }  # fmt: skip
    assert any(c.startswith("Programming Language :: Python :: 3.11") for c in fields["Classifier"])


def test_the_venv_imports_its_own_hubbub(installed: Installed) -> None:
    """hubbub comes from the venv's site-packages, not from the source tree."""
    where = run(
        [str(installed.bin / "python"), "-c", "import hubbub; print(hubbub.__file__)"],
        30,
        env=clean_env(),
        cwd=installed.venv,
    ).stdout
    assert where.startswith(str(installed.venv / "lib")), where


def test_only_the_runtime_set_is_installed(installed: Installed) -> None:
    python = str(installed.bin / "python")
    done = pip("--python", python, "list", "--format", "json", timeout=60)
    assert done.returncode == 0, done.stderr
    present = {entry["name"].lower() for entry in json.loads(done.stdout)}
    assert "hubbub" in present
    assert present & EXTRAS_ONLY == set()


@pytest.fixture
def serving(installed: Installed, tmp_path: Path) -> Iterator[str]:
    """``hubbub serve --port 0`` of the venv, started in an empty temp dir; its base URL."""
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    with (tmp_path / "serve.log").open("wb") as log:
        proc = subprocess.Popen(
            [str(installed.bin / "hubbub"), "serve", "--port", "0"],
            cwd=cwd,
            env=clean_env(),
            stdout=subprocess.PIPE,
            stderr=log,
            process_group=0,
        )
        assert proc.stdout is not None
        reader = LineReader(proc.stdout)
        try:
            line = reader.readline(scaled(30)) or b""
            match = READY_RE.search(line.decode(errors="replace"))
            assert match, f"no ready line: {line!r}\n{(tmp_path / 'serve.log').read_text()}"
            yield match.group(1)
            proc.terminate()
            assert proc.wait(scaled(20)) == 0
        finally:
            kill_group(proc)
            reader.close()
    assert (cwd / "data" / "hubbub.db").is_file()  # the default SQLite history, in its cwd
    assert "Traceback" not in (tmp_path / "serve.log").read_text()


async def test_hubbub_serve_from_the_wheel_outside_the_repo(
    installed: Installed, serving: str
) -> None:
    """/health, a static file, a demo page and the home page are served, and a channel
    client connects, subscribes and gets its own publication (stored in SQLite)."""
    url = serving
    async with aiohttp.ClientSession() as http:
        async with http.get(url + "/health") as resp:
            assert resp.status == 200
            assert (await resp.json())["version"] == hubbub.__version__
        async with http.get(url + "/static/hubbub.js") as resp:
            assert resp.status == 200
            assert "export" in await resp.text()
        for page in ("/demo/chat", "/demo/monitor", "/"):
            async with http.get(url + page) as resp:
                assert resp.status == 200, page
                assert resp.content_type == "text/html"
        async with http.ws_connect("ws" + url[len("http") :] + "/connection/websocket") as ws:
            commands = [
                {"id": 1, "connect": {}},
                {"id": 2, "subscribe": {"channel": "news"}},
                {"id": 3, "publish": {"channel": "news", "data": {"text": "hi"}}},
            ]
            await ws.send_str("\n".join(json.dumps(c) for c in commands))
            got: list[dict[str, object]] = []
            while not any("push" in m for m in got):
                msg = await ws.receive(timeout=scaled(10))
                got += [json.loads(line) for line in msg.data.split("\n")]
    push = next(m["push"] for m in got if "push" in m)
    assert push["channel"] == "news"
    assert (push["pub"]["data"], push["pub"]["offset"]) == ({"text": "hi"}, 1)


@pytest.mark.parametrize(
    ("args", "extra"),
    [
        (["serve", "--port", "0", "--engine", "redis://127.0.0.1:1/0"], "redis"),
        (["serve", "--port", "0", "--history", "postgresql://u@127.0.0.1:1/db"], "postgres"),
        (["subscribe", "news", "--url", "http://127.0.0.1:1"], "cli"),
    ],
    ids=["redis", "postgres", "cli"],
)
def test_a_missing_extra_names_what_to_install(
    installed: Installed, tmp_path: Path, args: list[str], extra: str
) -> None:
    """Without the driver (or the CLI's SDK) the command exits 1 with one line saying which
    extra to install, not a traceback."""
    done = run([str(installed.bin / "hubbub"), *args], 30, cwd=tmp_path, env=clean_env())
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert f"pip install 'hubbub[{extra}]'" in done.stderr
    assert "Traceback" not in done.stderr
