"""The demo pages and the admin dashboard in headless Chromium."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.browser.conftest import screenshot
from tests.conftest import StartServer
from tests.support.proto import Observer, connected
from tests.support.timing import scaled

pytestmark = pytest.mark.browser

KEY = "browser-test-key-0123456789"
MS = int(scaled(15) * 1000)  # Playwright timeouts


async def messages(page: Any) -> list[str]:
    return [t.strip() for t in await page.locator("#messages .msg").all_inner_texts()]


async def wait_text(page: Any, selector: str, text: str) -> None:
    await page.locator(selector, has_text=text).first.wait_for(timeout=MS)


async def test_chat_history_presence_and_restart(
    browser: Any, start_server: StartServer, tmp_path: Path
) -> None:
    data = tmp_path / "chat-data"
    server = start_server("--api-key", KEY, "--data-dir", str(data))
    base = server.url
    a = await (await browser.new_context()).new_page()
    b = await (await browser.new_context()).new_page()
    await a.goto(f"{base}/demo/chat?name=Ada&room=t&autojoin=1")
    await b.goto(f"{base}/demo/chat?name=Bob&room=t&autojoin=1")
    for page in (a, b):
        await page.locator("#status[data-state=connected]").wait_for(timeout=MS)
    await a.fill("#text", "hi from Ada")
    await a.press("#text", "Enter")
    await wait_text(b, "#messages .msg", "hi from Ada")
    await b.fill("#text", "hello Ada")
    await b.press("#text", "Enter")
    await wait_text(a, "#messages .msg", "hello Ada")
    for page in (a, b):
        await wait_text(page, "#people li", "Ada")
        await wait_text(page, "#people li", "Bob")
    await screenshot(a, "chat")

    c = await (await browser.new_context()).new_page()
    await c.goto(f"{base}/demo/chat?name=Cy&room=t&autojoin=1")
    await wait_text(c, "#messages .msg", "hello Ada")
    assert [m.split(": ", 1)[-1] for m in await messages(c)] == ["hi from Ada", "hello Ada"]
    await c.context.close()

    # Restart the server under the open tab; publish while the tab is still reconnecting.
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait()
    await a.locator("#status[data-state=connecting]").wait_for(timeout=MS)
    restarted = start_server("--api-key", KEY, "--data-dir", str(data), "--port", str(server.port))

    async def publish(text: str) -> int:
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                restarted.url + "/api/publish",
                json={"channel": "chat:t", "data": {"name": "server", "text": text}},
                headers={"X-API-Key": KEY},
            ) as resp,
        ):
            return int((await resp.json())["result"]["offset"])

    assert await publish("during the outage") == 3
    await wait_text(a, "#messages .msg", "during the outage")
    await a.locator("#status[data-state=connected]").wait_for(timeout=MS)
    # A marker after it: the channel has one order, so a doubled message (recovered and also
    # delivered live, or recovered twice) would be on the page before the marker is.
    assert await publish("marker") == 4
    await wait_text(a, "#messages .msg", "marker")
    texts = [m.split(": ", 1)[-1] for m in await messages(a)]
    assert texts == ["hi from Ada", "hello Ada", "during the outage", "marker"]


async def test_monitor_chart_updates(browser: Any, start_server: StartServer) -> None:
    """The live chart keeps getting points (one a second): 5 more after the first."""
    server = start_server()
    page = await (await browser.new_context()).new_page()
    await page.goto(server.url + "/demo/monitor")
    points = "Number(document.getElementById('host').dataset.points || 0)"
    await page.wait_for_function(f"{points} >= 1", timeout=MS)
    before = int(await page.get_attribute("#host", "data-points") or 0)
    # 5 samples take 5 s: the usual deadline plus those.
    await page.wait_for_function(f"{points} >= {before + 5}", timeout=int(scaled(20) * 1000))
    await screenshot(page, "monitor")


async def test_game_players_see_each_other(browser: Any, start_server: StartServer) -> None:
    server = start_server()
    a = await (await browser.new_context()).new_page()
    b = await (await browser.new_context()).new_page()
    await a.goto(server.url + "/demo/game?name=left&autojoin=1")
    await b.goto(server.url + "/demo/game?name=right&autojoin=1")
    for page in (a, b):
        await page.locator("body[data-joined=yes]").wait_for(timeout=MS)
    me = await a.evaluate("window.game.me")
    await b.wait_for_function(f"window.game.players[{json.dumps(me)}] !== undefined", timeout=MS)
    x0 = await b.evaluate(f"window.game.players[{json.dumps(me)}][0]")
    await a.keyboard.down("ArrowRight")  # held until the other player sees the move
    try:
        await b.wait_for_function(
            f"window.game.players[{json.dumps(me)}][0] > {x0} + 5", timeout=MS
        )
    finally:
        await a.keyboard.up("ArrowRight")
    rtt_shown = "!isNaN(parseFloat(document.getElementById('rtt').textContent))"
    await a.wait_for_function(rtt_shown, timeout=MS)
    await screenshot(a, "game")


async def test_echo_page(browser: Any, start_server: StartServer) -> None:
    server = start_server()
    page = await (await browser.new_context()).new_page()
    await page.goto(server.url + "/demo/echo")
    await wait_text(page, "#log", "Received message: Hello, Server!")
    assert "Connection established" in await page.inner_text("#log")
    await screenshot(page, "echo")


async def test_admin_counters_and_publish(browser: Any, start_server: StartServer) -> None:
    server = start_server("--admin-insecure")
    async with aiohttp.ClientSession() as http:
        sockets = [await http.ws_connect(server.ws + "/connection/websocket") for _ in range(3)]
        for ws in sockets:
            await connected(ws)
        watcher = Observer(sockets[0])
        assert "error" not in await watcher.command("subscribe", {"channel": "news"})
        page = await (await browser.new_context()).new_page()
        await page.goto(server.url + "/admin")
        await wait_text(page, "#connections", "3")
        await page.wait_for_function("Number(document.body.dataset.updates || 0) >= 2", timeout=MS)
        assert await page.inner_text("#connections") == "3"
        await page.fill("#pub-channel", "news")
        await page.fill("#pub-data", '{"text": "from the admin"}')
        await page.click("#publish button")
        push = await watcher.push("pub", "news")
        assert push["pub"]["data"] == {"text": "from the admin"}
        await wait_text(page, "#pub-result", "published")
        await screenshot(page, "admin")
        watcher.stop()
        for ws in sockets:
            await ws.close()


async def test_home_page_links_everything(browser: Any, start_server: StartServer) -> None:
    server = start_server()
    page = await (await browser.new_context()).new_page()
    await page.goto(server.url + "/")
    hrefs = await page.eval_on_selector_all("a", "els => els.map(e => e.getAttribute('href'))")
    for path in ("/demo/chat", "/demo/monitor", "/demo/game", "/demo/echo", "/admin", "/health"):
        assert path in hrefs
    await wait_text(page, "#echo-log", "Received message: Hello, Server!")
    await screenshot(page, "home")
