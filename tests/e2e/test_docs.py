"""The docs site builds from the repository, offline: `mkdocs build --strict` gives no warning,
the built pages load nothing from another host (no CDN script, style or font), the
configuration reference is generated from the settings model, and the API reference is
rendered from the docstrings."""

from __future__ import annotations

import html
import importlib.util
import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

import hubbub
from hubbub.channeloptions import ChannelOptions
from hubbub.config import Settings, env_name
from tests.conftest import missing
from tests.support.timing import scaled

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]

#: (tag, attribute) pairs whose URL the browser loads by itself: scripts, styles, fonts,
#: icons, images, frames, media. ``<a href>`` is a link the reader may follow: not loaded.
LOADED = {
    ("script", "src"),
    ("link", "href"),
    ("img", "src"),
    ("img", "srcset"),
    ("iframe", "src"),
    ("source", "src"),
    ("source", "srcset"),
    ("video", "src"),
    ("audio", "src"),
    ("embed", "src"),
    ("object", "data"),
    ("input", "src"),
}
#: A URL that names a host: scheme-relative (``//cdn...``) or absolute (``https://...``).
EXTERNAL = re.compile(r"^(//|[a-z][a-z0-9+.-]*://)", re.I)
CSS_URL = re.compile(r"""@import\s+(?:url\()?\s*['"]?([^'")\s;]+)|url\(\s*['"]?([^'")\s]+)""")


def is_external(url: str) -> bool:
    return bool(EXTERNAL.match(url.strip()))


class LoadedURLs(HTMLParser):
    """Every URL an HTML page makes the browser load by itself (tags, inline styles)."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if value is None:
                continue
            if (tag, name) in LOADED:
                parts = value.split(",") if name == "srcset" else [value]
                self.urls += [p.strip().split(" ")[0] for p in parts if p.strip()]
            elif name == "style":
                self.urls += css_urls(value)
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.urls += css_urls(data)


def css_urls(css: str) -> list[str]:
    return [a or b for a, b in CSS_URL.findall(css)]


def external_loads(site: Path) -> dict[str, list[str]]:
    """The URLs on other hosts that the built site's pages and style sheets load, by file."""
    found: dict[str, list[str]] = {}
    for path in sorted(site.rglob("*")):
        if path.suffix == ".html":
            parser = LoadedURLs()
            parser.feed(path.read_text("utf-8"))
            urls = parser.urls
        elif path.suffix == ".css":
            urls = css_urls(path.read_text("utf-8"))
        else:
            continue
        bad = [u for u in urls if is_external(u)]
        if bad:
            found[str(path.relative_to(site))] = bad
    return found


def text_of(page: Path) -> str:
    return html.unescape(re.sub(r"<[^>]+>", " ", page.read_text("utf-8")))


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site built by `mkdocs build --strict` into a temp dir (once for this module)."""
    if importlib.util.find_spec("mkdocs") is None:
        missing("mkdocs is not installed (pip install -e '.[docs]'; make test installs it)")
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    build = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=scaled(180),
    )
    assert build.returncode == 0, build.stderr
    warnings = [line for line in build.stderr.splitlines() if "WARNING" in line]
    assert warnings == []
    return out


def test_the_site_builds_without_warnings(site: Path) -> None:
    """Every page of the nav is built (strict mode: a broken link or anchor fails it)."""
    for page in (
        "index.html",
        "getting-started.html",
        "concepts/history.html",
        "recipes/fastapi.html",
        "recipes/token-endpoint.html",
        "reference/python-api.html",
        "configuration.html",
        "protocol.html",
        "design.html",
    ):
        assert (site / page).is_file(), page


def test_the_pages_load_nothing_from_another_host(site: Path) -> None:
    """No script, style sheet, font, icon or image comes from a CDN: the site reads offline."""
    assert external_loads(site) == {}


def test_the_check_finds_a_cdn(tmp_path: Path) -> None:
    """(So that the test above cannot pass by finding nothing.)"""
    (tmp_path / "a.html").write_text(
        '<html><head><script src="https://cdn.example.com/x.js"></script>'
        '<link rel="stylesheet" href="//fonts.example.com/css"><style>'
        "@font-face { src: url('https://fonts.example.com/f.woff2') }</style></head>"
        '<body><a href="https://example.com/">a link is fine</a>'
        '<img src="data:image/png;base64,AAAA"><script src="assets/local.js"></script>'
        "</body></html>"
    )
    (tmp_path / "b.css").write_text("@import url(https://cdn.example.com/b.css); a{}")
    assert external_loads(tmp_path) == {
        "a.html": [
            "https://cdn.example.com/x.js",
            "//fonts.example.com/css",
            "https://fonts.example.com/f.woff2",
        ],
        "b.css": ["https://cdn.example.com/b.css"],
    }


def test_the_configuration_reference_is_generated_from_the_settings(site: Path) -> None:
    """Each setting appears with its environment variable and the text of its description;
    each channel option with its description (compared without spaces: markup splits words
    from their punctuation)."""
    text = "".join(text_of(site / "configuration.html").split())

    def plain(description: str | None) -> str:
        assert description
        return "".join(description.replace("`", "").split())

    for key, field in Settings.model_fields.items():
        assert env_name(key) in text, key
        assert plain(field.description) in text, key
    for key, field in ChannelOptions.model_fields.items():
        assert plain(field.description) in text, key


def test_the_api_reference_is_rendered_from_the_docstrings(site: Path) -> None:
    """Every name of ``hubbub.__all__`` and the Hub's public methods are on the page, with
    their docstrings' words; no Sphinx role is left in the text."""
    page = site / "reference" / "python-api.html"
    text = " ".join(text_of(page).split())
    source = page.read_text("utf-8")
    anchors = [f"{module}.{name}" for name, module in hubbub._EXPORTS.items()]
    anchors += [
        f"hubbub.hub.Hub.{name}"
        for name, value in vars(hubbub.Hub).items()
        if callable(value) and not name.startswith("_")
    ]
    assert [a for a in anchors if f'id="{a}"' not in source] == []
    assert "emulated_headers" in text
    assert "None when it sent none" in text
    assert ":class:" not in text
