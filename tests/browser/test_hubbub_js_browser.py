"""hubbub.js (imported from the server's /static/hubbub.js) in Chromium on the emulated
transports: sse only (Chromium's EventSource), http_stream only (fetch streaming), and a
WebSocket endpoint that refuses before them (it falls back to http_stream at once). Each
time: connect, subscribe, receive, publish, history, presence, RPC, and recovery after a
server-forced disconnect, against the example chat hub (as test_emulation_browser.py does
with centrifuge-js)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import StartServer
from tests.interop.conftest import CHAT_APP
from tests.support.server import ServerProcess
from tests.support.timing import scaled

pytestmark = pytest.mark.browser

KEY = "h" * 32
MS = int(scaled(20) * 1000)

START = """async ([base, transports, ms]) => {
  const { Hubbub } = await import(base + "/static/hubbub.js");
  const log = { pubs: [], events: [] };
  window.log = log;
  const c = new Hubbub(transports, {
    emulationEndpoint: base + "/emulation",
    data: { name: "ada" },
    minReconnectDelay: 1500,
    maxReconnectDelay: 2000,
    timeout: ms,
  });
  c.on("connected", (ctx) => log.events.push({ connected: ctx.transport }));
  c.on("disconnected", (ctx) => log.events.push({ disconnected: ctx.code }));
  c.on("connecting", (ctx) => log.events.push({ connecting: ctx.code }));
  const sub = c.newSubscription("chat:room");
  sub.on("publication", (ctx) => log.pubs.push(ctx.data));
  sub.on("subscribed", (ctx) =>
    log.events.push({ subscribed: { recovered: ctx.recovered, was: ctx.wasRecovering } }));
  window.c = c;
  window.sub = sub;
  c.connect();
  sub.subscribe();
  await sub.ready(ms);
}"""

CALLS = """async () => {
  await window.sub.publish({ text: "hello" });
  const history = await window.sub.history({ limit: 10 });
  const presence = await window.sub.presence();
  const rpc = await window.c.rpc("whoami", {});
  return {
    history: history.publications.map((p) => p.data),
    presence: Object.values(presence.clients).map((i) => i.user),
    rpc: rpc.user,
  };
}"""


async def api(server: ServerProcess, method: str, body: dict[str, Any]) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{server.url}/api/{method}", json=body, headers={"X-API-Key": KEY}) as resp,
    ):
        assert resp.status == 200
        assert "error" not in await resp.json()


@pytest.mark.parametrize("case", ["sse", "http_stream", "websocket_refused"])
async def test_hubbub_js_over_emulation(
    browser: Any, start_server: StartServer, tmp_path: Path, case: str
) -> None:
    server = start_server(*CHAT_APP, "--api-key", KEY, "--data-dir", str(tmp_path / "d"))
    base = server.url
    http_stream = {"transport": "http_stream", "endpoint": f"{base}/connection/http_stream"}
    sse = {"transport": "sse", "endpoint": f"{base}/connection/sse"}
    transports = {
        "sse": [sse],
        "http_stream": [http_stream],
        # A path that answers 404 to the upgrade, as a proxy that blocks WebSockets would.
        "websocket_refused": [
            {"transport": "websocket", "endpoint": f"{server.ws}/blocked/websocket"},
            http_stream,
            sse,
        ],
    }[case]
    expected = "sse" if case == "sse" else "http_stream"
    page = await (await browser.new_context()).new_page()
    await page.goto(base + "/health")
    await page.evaluate(START, [base, transports, MS])
    events = await page.evaluate("window.log.events")
    assert events == [
        {"connecting": 0},
        {"connected": expected},
        {"subscribed": {"recovered": False, "was": False}},
    ]

    await api(server, "publish", {"channel": "chat:room", "data": {"text": "from api"}})
    await page.wait_for_function("window.log.pubs.length === 1", timeout=MS)
    got = await page.evaluate(CALLS)
    assert got["history"] == [{"text": "from api"}, {"text": "hello", "from": "ada"}]
    assert got["presence"] == ["ada"]
    assert got["rpc"] == "ada"
    await page.wait_for_function("window.log.pubs.length === 2", timeout=MS)

    # The server drops the connection; what is published meanwhile is recovered on reconnect.
    await api(server, "disconnect", {"user": "ada", "disconnect": {"code": 3011, "reason": "x"}})
    await api(server, "publish", {"channel": "chat:room", "data": {"text": "missed 1"}})
    await api(server, "publish", {"channel": "chat:room", "data": {"text": "missed 2"}})
    await page.wait_for_function(
        "window.log.events.filter((e) => e.subscribed).length === 2", timeout=MS
    )
    events = await page.evaluate("window.log.events")
    assert {"connecting": 3011} in events  # the disconnect push: the client saw the code
    assert [e["subscribed"] for e in events if "subscribed" in e] == [
        {"recovered": False, "was": False},
        {"recovered": True, "was": True},
    ]
    assert [e for e in events if "connected" in e] == [{"connected": expected}] * 2
    pubs = await page.evaluate("window.log.pubs")
    assert pubs == [
        {"text": "from api"},
        {"text": "hello", "from": "ada"},
        {"text": "missed 1"},
        {"text": "missed 2"},
    ]
    await page.evaluate("window.c.disconnect()")
    assert await page.evaluate("window.c.state") == "disconnected"
