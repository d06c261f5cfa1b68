"""MkDocs hooks of the docs site (mkdocs.yml ``hooks:``).

- The configuration reference (``configuration.md``) is generated at build time from the
  settings model (:func:`hubbub.configdoc.reference_page`), so it cannot drift from the code.
- hubbub's icon (the server's own ``favicon.svg``) is the site's logo and favicon, taken from
  the package rather than copied into docs/.
- Docstrings written for Sphinx-like readers (``:class:`Hub```) are rendered by mkdocstrings as
  Markdown; the role prefixes are dropped from the HTML, leaving the names as code.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
ROLE = re.compile(r":(?:class|mod|meth|func|data|attr|exc|obj):(?=<code>)")


def _configdoc() -> Any:
    if str(ROOT / "src") not in sys.path:
        sys.path.insert(0, str(ROOT / "src"))
    from hubbub import configdoc

    return configdoc


def on_files(files: Any, config: Any) -> Any:
    from mkdocs.structure.files import File

    configdoc = _configdoc()
    page = configdoc.reference_page(configdoc.serve_flags())
    files.append(File.generated(config, "configuration.md", content=page))
    icon = ROOT / "src" / "hubbub" / "server" / "static" / "favicon.svg"
    files.append(File.generated(config, "assets/hubbub.svg", abs_src_path=str(icon)))
    return files


def on_page_content(html: str, **kwargs: Any) -> str:
    return ROLE.sub("", html)
