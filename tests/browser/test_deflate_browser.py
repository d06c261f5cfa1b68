"""Chromium takes hubbub's bounded permessage-deflate answer (a 12-bit server window it did
not ask for) and reads the compressed frames right, on the echo endpoint and the channel
protocol."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import StartServer
from tests.support.timing import scaled

pytestmark = pytest.mark.browser

MS = int(scaled(15) * 1000)

# Two messages, the second repeating text 8 KiB back in the first (a reference a 12-bit
# window cannot make), then what the page got back and the negotiated extensions.
ECHO = """async ([url, ms]) => {
  const rand = (n) => Array.from(crypto.getRandomValues(new Uint8Array(n)),
                                 (b) => b.toString(36).padStart(2, "0")).join("");
  const block = rand(2048), sent = [block + rand(2048), block, "x".repeat(100)];
  const ws = new WebSocket(url);
  const got = [];
  await new Promise((ok, fail) => {
    setTimeout(() => fail(new Error("timeout")), ms);
    ws.onerror = () => fail(new Error("websocket error"));
    ws.onopen = () => sent.forEach((m) => ws.send(m));
    ws.onmessage = (e) => { got.push(e.data); if (got.length === sent.length) ok(); };
  });
  ws.close();
  return {extensions: ws.extensions, same: got.every((m, i) => m === sent[i])};
}"""

CHANNEL = """async ([url, ms]) => {
  const ws = new WebSocket(url);
  const lines = [];
  await new Promise((ok, fail) => {
    setTimeout(() => fail(new Error("timeout")), ms);
    ws.onopen = () => ws.send('{"id":1,"connect":{}}\\n{"id":2,"subscribe":{"channel":"c"}}\\n'
                             + '{"id":3,"publish":{"channel":"c","data":{"n":"' + "y".repeat(3000)
                             + '"}}}');
    ws.onmessage = (e) => {
      lines.push(...e.data.split("\\n"));
      if (lines.some((l) => l.includes('"pub"'))) ok();
    };
  });
  ws.close();
  return {extensions: ws.extensions, pub: lines.find((l) => l.includes('"pub"'))};
}"""


async def test_chromium_gets_a_12_bit_window_and_reads_the_frames(
    browser: Any, start_server: StartServer
) -> None:
    server = start_server()
    page = await (await browser.new_context()).new_page()
    await page.goto(server.url + "/health")  # same origin as the sockets
    ws = server.url.replace("http", "ws", 1)
    echo = await page.evaluate(ECHO, [ws + "/", MS])
    assert echo == {
        "extensions": "permessage-deflate; server_max_window_bits=12; server_no_context_takeover",
        "same": True,
    }
    channel = await page.evaluate(CHANNEL, [ws + "/connection/websocket", MS])
    assert channel["extensions"] == (
        "permessage-deflate; server_max_window_bits=12; server_no_context_takeover"
    )
    assert '"y' + "y" * 2999 + '"' in channel["pub"]
