"""Headless Chromium (Debian's, never a downloaded build) driven by Playwright."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import missing
from tests.support.timing import scaled

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "reports" / "screenshots"
#: Playwright's own default timeout (30 s for every action and navigation), scaled.
DEFAULT_MS = scaled(30) * 1000


class ScaledBrowser:
    """The Playwright browser, with every context's default timeouts through ``scaled``."""

    def __init__(self, browser: Any) -> None:
        self._browser = browser

    async def new_context(self, **options: Any) -> Any:
        context = await self._browser.new_context(**options)
        context.set_default_timeout(DEFAULT_MS)
        context.set_default_navigation_timeout(DEFAULT_MS)
        return context

    async def new_page(self, **options: Any) -> Any:
        page = await self._browser.new_page(**options)
        page.set_default_timeout(DEFAULT_MS)
        page.set_default_navigation_timeout(DEFAULT_MS)
        return page

    def __getattr__(self, name: str) -> Any:
        return getattr(self._browser, name)


@pytest.fixture
async def browser() -> AsyncIterator[object]:
    if not os.access(CHROMIUM, os.X_OK):
        missing(
            "Debian's chromium is not installed (make test installs it: apt-get install chromium)"
        )
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        missing("the playwright package is not installed")
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=str(CHROMIUM), args=ARGS, headless=True, timeout=DEFAULT_MS
        )
        try:
            yield ScaledBrowser(browser)
        finally:
            await browser.close()


async def screenshot(page: object, name: str) -> None:
    """Keep a picture of the page for people to look at (reports/ is not in git)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)  # type: ignore[attr-defined]
