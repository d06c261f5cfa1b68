"""The pages as a new user first meets them, in headless Chromium: no console errors, the
chat's join panel, the admin's answers and charts, the game's edges, the tutorial's client."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from hubbub.auth import mint
from tests.conftest import StartServer
from tests.support.proto import call
from tests.support.timing import scaled

pytestmark = pytest.mark.browser

MS = int(scaled(15) * 1000)  # Playwright timeouts
KEY = "first-hour-key-0123456789"
API = {"X-API-Key": KEY}
SECRET = "first-hour-secret-" * 3
ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
SEED = ROOT / "tests" / "e2e" / "seed_client.js"  # the tutorial's client, verbatim
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


async def test_chat_join_panel_checks_the_room_first(
    browser: Any, start_server: StartServer
) -> None:
    """Before joining only the join panel shows and nothing reloads the page; a bad room name
    is refused at Join (no connection made), and so is a room the server refuses."""
    server = start_server()
    page, errors = await open_page(browser, server.url + "/demo/chat")
    sockets: list[str] = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    assert await page.is_visible("#join-card")
    assert not await page.is_visible("#chat") and not await page.is_visible("#text")
    navigations: list[str] = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))
    await page.evaluate("document.getElementById('say').requestSubmit()")  # Enter there
    await page.fill("#name", "Ada")
    await page.fill("#room", "bad room!")
    await page.press("#room", "Enter")
    await page.locator("#join-error", has_text="Room names are").wait_for(timeout=MS)
    assert not await page.is_visible("#chat")
    await page.wait_for_timeout(300)
    assert navigations == [] and sockets == [] and errors == []

    closed = start_server(
        config='[[namespaces]]\nname = "chat"\nallow_subscribe_for_anonymous = false\n'
    )
    page, _ = await open_page(browser, closed.url + "/demo/chat?name=Ada&room=lobby&autojoin=1")
    refusal = page.locator("#join-error", has_text="Cannot join #lobby: permission denied (103)")
    await refusal.wait_for(timeout=MS)
    assert await page.is_visible("#join-card") and not await page.is_visible("#chat")


async def test_chat_times_and_typing(browser: Any, start_server: StartServer) -> None:
    """Messages carry the server's time (live and from history); "is typing" ends when the
    message it announced arrives."""
    server = start_server()
    base = server.url + "/demo/chat?room=t&autojoin=1&name="
    a, _ = await open_page(browser, base + "Ada")
    b, _ = await open_page(browser, base + "Bob")
    for page in (a, b):
        await page.locator("#status[data-state=connected]").wait_for(timeout=MS)
    await b.locator("#people li", has_text="Ada").wait_for(timeout=MS)
    await b.locator("#text").press_sequentially("hello")
    await a.locator("#typing", has_text="Bob is typing").wait_for(timeout=MS)
    await b.press("#text", "Enter")
    await a.locator("#messages .msg", has_text="hello").wait_for(timeout=MS)
    assert await a.inner_text("#typing") == ""  # at once, not seconds later
    stamp = await a.get_attribute("#messages .msg time", "datetime")
    now = await a.evaluate("Date.now()")
    shown = await a.evaluate(f"Date.parse({stamp!r})")
    assert abs(now - shown) < scaled(30) * 1000
    late, _ = await open_page(browser, base + "Cy")
    await late.locator("#messages .msg", has_text="hello").wait_for(timeout=MS)
    assert await late.get_attribute("#messages .msg time", "datetime") == stamp  # from history


async def test_game_movers_at_the_edges_stay_on_the_canvas(
    browser: Any, start_server: StartServer
) -> None:
    """A mover held against a corner is drawn whole and its name stays on the canvas; so for
    movers with the longest names at every edge and corner."""
    server = start_server()
    page, errors = await open_page(
        browser, server.url + "/demo/game?name=WWWWWWWWWWWWWWWW&autojoin=1"
    )
    await page.locator("body[data-joined=yes]").wait_for(timeout=MS)
    await page.keyboard.down("ArrowRight")
    await page.keyboard.down("ArrowDown")
    try:
        me = "window.game.players[window.game.me]"
        await page.wait_for_function(f"{me}[0] >= 100 && {me}[1] >= 100", timeout=MS * 2)
    finally:
        await page.keyboard.up("ArrowRight")
        await page.keyboard.up("ArrowDown")
    # Drawn whole (as the page last drew it): about pi r^2 pixels (r = 11) of the mover's
    # colour, not the quarter a corner left of it.
    painted = await page.evaluate(
        """() => {
          const g = window.game, c = document.getElementById("arena");
          const hex = g.players[g.me][2];
          const rgb = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
          const px = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
          let n = 0;
          for (let i = 0; i < px.length; i += 4) {
            if (rgb.every((v, k) => Math.abs(px[i + k] - v) < 8)) n++;
          }
          return n;
        }"""
    )
    assert painted > 0.5 * 3.14159 * 11**2, painted  # a quarter is 95
    edges = [(x, y) for x in (0, 50, 100) for y in (0, 50, 100)]
    boxes = await page.evaluate(
        """(edges) => {
          const g = window.game, ids = [g.me];
          edges.forEach(([x, y], i) => {
            g.players["edge" + i] = [x, y, "#f80", "W".repeat(16)];
            ids.push("edge" + i);
          });
          g.draw();
          const c = document.getElementById("arena");
          return { w: c.width, h: c.height, boxes: ids.map((id) => g.layout(id)) };
        }""",
        edges,
    )
    w, h = boxes["w"], boxes["h"]
    for box in boxes["boxes"]:
        assert box["r"] <= box["cx"] <= w - box["r"] - 1, box  # the dot and its outline
        assert box["r"] <= box["cy"] <= h - box["r"] - 1, box
        label = box["label"]
        assert label["x"] >= 0 and label["x"] + label["w"] <= w, box
        assert label["y"] >= 0 and label["y"] + label["h"] <= h, box
    assert errors == []


async def test_admin_says_what_it_did_and_shows_the_recent_past(
    browser: Any, start_server: StartServer
) -> None:
    """The admin's charts open with the server's last minutes; anonymous (named) chat users
    are counted as such; a channel with only history can be browsed; disconnecting a user
    with no connection says so."""
    server = start_server("--admin-insecure", "--api-key", KEY, "--token-hmac-secret", SECRET)
    async with aiohttp.ClientSession() as http:
        named = [await http.ws_connect(server.ws + "/connection/websocket") for _ in range(2)]
        for i, ws in enumerate(named):
            await call(ws, {"id": 1, "connect": {"data": {"name": f"chatter{i}"}}})
            await call(ws, {"id": 2, "subscribe": {"channel": "chat:t"}})
        ada = await http.ws_connect(server.ws + "/connection/websocket")
        await call(ada, {"id": 1, "connect": {"token": mint(SECRET, "ada")}})
        body = {"channel": "news", "data": {"text": "stored, nobody listening"}}
        async with http.post(server.url + "/api/publish", json=body, headers=API) as resp:
            assert "result" in await resp.json()
        await asyncio.sleep(scaled(3))  # a few of the server's one-a-second samples

        page, errors = await open_page(browser, server.url + "/admin")
        await page.wait_for_function("Number(document.body.dataset.updates || 0) >= 1", timeout=MS)
        count = "(id) => Number(document.getElementById(id).dataset.points || 0)"
        points = await page.evaluate(f"['rates', 'conns'].map({count})")
        assert min(points) >= 3, points  # at the first update, not one point a second from now
        assert await page.inner_text("#users") == "1"
        assert await page.inner_text("#anonymous") == "+ 2 anonymous"

        await page.fill("#browse-channel", "news")
        await page.click("#browse button")
        await page.locator("#history", has_text="stored, nobody listening").wait_for(timeout=MS)

        await page.fill("#dis-user", "nobody")
        await page.click("#disconnect button")
        await page.locator("#dis-result", has_text="nobody has no connection").wait_for(timeout=MS)
        await page.fill("#dis-user", "ada")
        await page.click("#disconnect button")
        await page.locator("#dis-result", has_text="disconnected ada's 1 connection").wait_for(
            timeout=MS
        )
        msg = await ada.receive(timeout=scaled(10))
        assert msg.type == aiohttp.WSMsgType.CLOSE
        assert errors == []
        for ws in (*named, ada):
            await ws.close()


async def test_the_tutorial_client_where_chromium_lets_it_run(
    browser: Any, start_server: StartServer, tmp_path: Path
) -> None:
    """The tutorial's client, pasted into a blank tab, is blocked by Chromium's Local Network
    Access rule, as the README says next to "works as it is"; from hubbub's home page or a
    file it runs."""
    readme = README.read_text()
    section = readme[readme.index("## The tutorial's client") : readme.index("## Endpoints")]
    assert "net::ERR_BLOCKED_BY_LOCAL_NETWORK_ACCESS_CHECKS" in section
    server = start_server()
    seed = SEED.read_text().replace("ws://localhost:8765", f"ws://localhost:{server.port}")
    script = f"(() => {{ {seed} }})()"  # a statement list, as pasted into the console
    blank = await (await browser.new_context()).new_page()
    await blank.goto("about:blank")
    logs: list[str] = []
    blank.on("console", lambda m: logs.append(m.text))
    await blank.evaluate(script)
    for _ in range(int(scaled(50))):
        if "Connection died" in logs:
            break
        await blank.wait_for_timeout(100)
    assert any("ERR_BLOCKED_BY_LOCAL_NETWORK_ACCESS_CHECKS" in line for line in logs), logs
    assert "Connection died" in logs
    page_file = tmp_path / "client.html"
    page_file.write_text(f"<!doctype html><script>{seed}</script>")
    for url in (server.url + "/", page_file.as_uri()):
        page = await (await browser.new_context()).new_page()
        seen: list[str] = []
        page.on("console", lambda m, seen=seen: seen.append(m.text))
        await page.goto(url)
        if url.startswith("http"):
            await page.evaluate(script)  # pasted into the home page's console
        for _ in range(int(scaled(50))):
            if "Received message: Hello, Server!" in seen:
                break
            await page.wait_for_timeout(100)
        assert "Received message: Hello, Server!" in seen, (url, seen)


async def test_readme_hubbub_js_example_from_another_origin(
    browser: Any, start_server: StartServer, tmp_path: Path
) -> None:
    """The README's hubbub.js snippet, in a page of another origin (a file), imports the client
    from hubbub's base URL and gets a publication."""
    readme = README.read_text()
    start = readme.index("From a page of your own, with hubbub's base URL")
    opening = readme.index("```html\n", start) + len("```html\n")
    snippet = readme[opening : readme.index("```", opening)]
    assert "/static/hubbub.js" in snippet
    server = start_server("--api-key", KEY)
    page_file = tmp_path / "app.html"
    page_file.write_text(snippet.replace("127.0.0.1:8765", f"127.0.0.1:{server.port}"))
    page, errors = await open_page(browser, page_file.as_uri())
    seen: list[str] = []
    page.on("console", lambda m: seen.append(m.text))
    async with aiohttp.ClientSession() as http:
        for _ in range(int(scaled(100))):
            body = {"channel": "news", "data": {"text": "to your page"}}
            async with http.post(server.url + "/api/publish", json=body, headers=API) as resp:
                assert "result" in await resp.json()
            if any(line.startswith("news:") for line in seen):
                break
            await asyncio.sleep(0.1)
    assert any(line.startswith("news:") for line in seen), (seen, errors)
    assert errors == []
