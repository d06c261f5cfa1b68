"""Chromium's own EventSource on /connection/uni_sse: the token's channel's publications
arrive, and after the server ends the stream the browser reconnects by itself with
``Last-Event-ID`` and gets what was published meanwhile."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from hubbub.auth import mint
from tests.conftest import StartServer
from tests.support.server import ServerProcess
from tests.support.timing import scaled

pytestmark = pytest.mark.browser

KEY = "k" * 32
SECRET = "t" * 32
CONFIG = """
[[namespaces]]
name = "live"
history_size = 100
history_ttl = 300
force_recovery = true
"""
MS = int(scaled(20) * 1000)

OPEN = """(url) => {
  window.pushes = [];
  window.ids = [];
  const es = new EventSource(url);
  es.onmessage = (e) => { window.pushes.push(JSON.parse(e.data)); window.ids.push(e.lastEventId); };
  window.es = es;
}"""


async def api(server: ServerProcess, method: str, body: dict[str, Any]) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{server.url}/api/{method}", json=body, headers={"X-API-Key": KEY}) as resp,
    ):
        assert resp.status == 200
        assert "error" not in await resp.json()


async def test_event_source_receives_and_recovers_after_the_stream_ends(
    browser: Any, start_server: StartServer
) -> None:
    server = start_server("--api-key", KEY, "--token-hmac-secret", SECRET, config=CONFIG)
    page = await (await browser.new_context()).new_page()
    await page.goto(server.url + "/health")  # same origin as the stream
    token = mint(SECRET, "viewer", channels=["live:scores"])
    url = server.url + "/connection/uni_sse?cf_connect=" + quote(json.dumps({"token": token}))
    await page.evaluate(OPEN, url)
    await page.wait_for_function("window.pushes.some((p) => p.connect)", timeout=MS)
    await api(server, "publish", {"channel": "live:scores", "data": {"goal": 1}})
    await page.wait_for_function("window.pushes.some((p) => p.pub)", timeout=MS)
    assert (
        json.loads(await page.evaluate("window.ids[window.ids.length - 1]"))["live:scores"][0] == 1
    )

    # The server ends the stream; what is published before the browser is back is recovered.
    await api(server, "disconnect", {"user": "viewer", "disconnect": {"code": 3011, "reason": "x"}})
    await api(server, "publish", {"channel": "live:scores", "data": {"goal": 2}})
    await api(server, "publish", {"channel": "live:scores", "data": {"goal": 3}})
    await page.wait_for_function("window.pushes.filter((p) => p.connect).length === 2", timeout=MS)
    pushes = await page.evaluate("window.pushes")
    assert {"disconnect": {"code": 3011, "reason": "x"}} in pushes
    second = [p for p in pushes if "connect" in p][1]["connect"]["subs"]["live:scores"]
    assert second["recovered"] is True
    assert [p["data"] for p in second["publications"]] == [{"goal": 2}, {"goal": 3}]
    await api(server, "publish", {"channel": "live:scores", "data": {"goal": 4}})
    await page.wait_for_function(
        "window.pushes.some((p) => p.pub && p.pub.data.goal === 4)", timeout=MS
    )
    await page.evaluate("window.es.close()")


CROSS = """async ([base, connect, ms]) => {
  const fetched = await Promise.race([
    (async () => {
      const url = base + "/connection/uni_http_stream";
      const resp = await fetch(url, {method: "POST", body: connect});
      const reader = resp.body.getReader();
      const { value } = await reader.read();
      reader.cancel();
      return new TextDecoder().decode(value);
    })(),
    new Promise((_, fail) => setTimeout(() => fail(new Error("timeout")), ms)),
  ]);
  const evented = await new Promise((ok, fail) => {
    setTimeout(() => fail(new Error("timeout")), ms);
    const query = "?cf_connect=" + encodeURIComponent(connect);
    const es = new EventSource(base + "/connection/uni_sse" + query);
    es.onmessage = (e) => { es.close(); ok(e.data); };
    es.onerror = () => { es.close(); fail(new Error("EventSource error")); };
  });
  return [fetched, evented];
}"""


async def test_a_page_of_an_allowed_origin_reads_both_streams(
    browser: Any, start_server: StartServer
) -> None:
    """A page of another origin (another port on loopback: Chromium does not let a page of
    a public origin reach loopback at all) reads both streams thanks to the CORS headers."""
    other = start_server()
    config = f'allowed_origins = ["{other.url}"]\n' + CONFIG
    server = start_server("--token-hmac-secret", SECRET, config=config)
    page = await (await browser.new_context()).new_page()
    await page.goto(other.url + "/health")
    connect = json.dumps({"token": mint(SECRET, "fan", channels=["live:x"])})
    fetched, evented = await page.evaluate(CROSS, [server.url, connect, MS])
    for text in (fetched, evented):
        assert set(json.loads(text.strip())["connect"]["subs"]) == {"live:x"}
