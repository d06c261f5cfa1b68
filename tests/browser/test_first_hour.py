"""The pages as a new user first meets them, in headless Chromium: no console errors, the
chat's join panel, the admin's answers and charts, the game's edges, the tutorial's client."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from tests.conftest import StartServer
from tests.support.timing import scaled

pytestmark = pytest.mark.browser

MS = int(scaled(15) * 1000)  # Playwright timeouts
PAGES = ("/", "/demo/chat", "/demo/monitor", "/demo/game", "/demo/echo", "/admin", "/health")


async def open_page(browser: Any, url: str) -> tuple[Any, list[str]]:
    """A page at ``url`` and the list its console errors (and failed requests) go to."""
    page = await (await browser.new_context()).new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("requestfailed", lambda r: errors.append(f"{r.url}: {r.failure}"))
    await page.goto(url)
    return page, errors


@pytest.mark.parametrize("path", PAGES)
async def test_pages_log_no_errors(browser: Any, start_server: StartServer, path: str) -> None:
    """Every page loads without a console error: no favicon 404, no invalid pattern."""
    server = start_server("--admin-insecure")
    page, errors = await open_page(browser, server.url + path)
    await page.wait_for_load_state("load")
    await page.wait_for_timeout(500)  # the favicon is fetched after the load
    if path == "/demo/chat":  # validation runs the pattern (an invalid one logs an error)
        await page.fill("#room", "lobby")
        await page.evaluate("document.getElementById('room').checkValidity()")
    assert errors == []
    if path != "/health":
        assert await page.get_attribute("link[rel=icon]", "href") == "/static/favicon.svg"
    async with aiohttp.ClientSession() as http, http.get(server.url + "/favicon.ico") as resp:
        assert resp.status == 200 and resp.content_type == "image/svg+xml"
