"""pusher-js (its web build with encryption) and Laravel Echo (``broadcaster: 'pusher'``) in
Chromium against hubbub's Pusher endpoint, unchanged: the page and both scripts come from the
app's backend (tests/interop/pusher_backend.py, serving them from tests/interop/js/
node_modules, never a CDN), which also signs subscriptions and sign-ins and sends events with
the ``pusher`` PyPI library, as a Laravel app would."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.conftest import StartServer, missing
from tests.interop import pusher_backend as pb
from tests.support.server import ServerProcess
from tests.support.timing import scaled

pytestmark = pytest.mark.browser

MS = int(scaled(10) * 1000)

#: Wait in the page until ``cond()`` holds (polled), or fail naming ``what``.
HELPERS = """
window.until = async (cond, what, ms) => {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error("timed out waiting for " + what);
    await new Promise((r) => setTimeout(r, 10));
  }
};
window.trigger = async (body) => {
  const resp = await fetch("/trigger", {
    method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body),
  });
  if (!resp.ok) throw new Error("trigger: " + (await resp.text()));
};
"""

PUSHER_JS = """async ([key, port, ms]) => {
  const log = [];
  const p = new Pusher(key, {
    wsHost: "127.0.0.1", wsPort: port, forceTLS: false, enabledTransports: ["ws"],
    cluster: "mt1",
    channelAuthorization: { endpoint: "/pusher/auth", params: { user: "ada" } },
    userAuthentication: { endpoint: "/pusher/user-auth", params: { user: "ada" } },
  });
  const errors = [];
  p.connection.bind("error", (e) => errors.push(e.data ?? { type: e.type }));
  const names = ["orders", "private-orders", "private-encrypted-vault", "presence-room"];
  const channels = names.map((name) => {
    const ch = p.subscribe(name);
    ch.bind_global((event, data) => {
      if (event === "pusher:subscription_succeeded" && data && data.members) {
        data = { count: data.count, me: data.me };
      }
      log.push({ channel: name, event, data: data ?? null });
    });
    return ch;
  });
  p.user.bind("notice", (data) => log.push({ channel: "user", event: "notice", data }));
  p.signin();
  await until(() => channels.every((c) => c.subscribed), "subscriptions", ms);
  await until(() => p.user.serverToUserChannel?.subscribed, "sign-in", ms);
  for (const name of names.slice(0, 3)) {
    await trigger({ channels: [name], event: "ping", data: { on: name } });
  }
  await trigger({ user: "ada", event: "notice", data: { text: "for ada" } });
  await until(() => log.filter((e) => !e.event.startsWith("pusher:")).length === 4, "events", ms);
  const transport = p.connection.connection.transport.name;
  p.disconnect();
  return { log, errors, transport, socketId: p.connection.socket_id };
}"""

ECHO = """async ([key, port, user, ms]) => {
  const log = [];
  window.log = log;
  const echo = new Echo.default({
    broadcaster: "pusher", key, wsHost: "127.0.0.1", wsPort: port, forceTLS: false,
    enabledTransports: ["ws"], cluster: "mt1",
    authEndpoint: "/broadcasting/auth?user=" + user,
  });
  window.echo = echo;
  const ready = [];
  const subscribed = (ch, name) =>
    ch.subscribed(() => ready.push(name)).error((e) => log.push({ error: name, e }));
  subscribed(echo.channel("orders")
    .listen(".order.placed", (e) => log.push({ on: "orders", event: ".order.placed", e }))
    .listen("OrderShipped", (e) => log.push({ on: "orders", event: "OrderShipped", e })),
    "orders");
  subscribed(echo.private("orders")
    .listen(".refunded", (e) => log.push({ on: "private-orders", event: ".refunded", e }))
    .listenForWhisper("typing", (e) => log.push({ on: "private-orders", whisper: e })),
    "private-orders");
  subscribed(echo.join("room")
    .here((users) => log.push({ here: users }))
    .joining((u) => log.push({ joining: u }))
    .leaving((u) => log.push({ leaving: u }))
    .listenForWhisper("wave", (e) => log.push({ on: "presence-room", whisper: e })),
    "presence-room");
  await until(() => ready.length === 3, "Echo's subscriptions", ms);
  return echo.socketId();
}"""


async def pusher_page(browser: Any, backend: pb.Backend) -> Any:
    page = await (await browser.new_context()).new_page()
    await page.goto(backend.url + "/")
    await page.add_script_tag(url=backend.url + "/js/pusher.js")
    await page.add_script_tag(url=backend.url + "/js/echo.js")
    await page.add_script_tag(content=HELPERS)
    return page


def scripts_installed() -> None:
    for path in pb.SCRIPTS.values():
        if not path.is_file():
            missing(f"{path} is missing: `make test` runs npm ci in tests/interop/js")


@pytest.fixture
def pserver(start_server: StartServer) -> ServerProcess:
    return start_server(config=pb.server_config())


async def test_pusher_js_in_chromium(browser: Any, pserver: ServerProcess) -> None:
    scripts_installed()
    async with pb.Backend(pserver.port) as backend:
        page = await pusher_page(browser, backend)
        got = await page.evaluate(PUSHER_JS, [pb.KEY, pserver.port, MS])
    assert got["transport"] == "ws"
    assert got["errors"] == []
    log = got["log"]
    succeeded = [e["channel"] for e in log if e["event"] == "pusher:subscription_succeeded"]
    assert sorted(succeeded) == [
        "orders",
        "presence-room",
        "private-encrypted-vault",
        "private-orders",
    ]
    [presence] = [e["data"] for e in log if e["channel"] == "presence-room"]
    assert presence == {"count": 1, "me": {"id": "ada", "info": {"name": "ada"}}}
    got_events = [(e["channel"], e["event"], e["data"]) for e in log if e["event"] == "ping"]
    assert sorted(got_events) == sorted(
        (name, "ping", {"on": name})
        for name in ("orders", "private-orders", "private-encrypted-vault")
    ), "the encrypted one decrypted by pusher-js' nacl"
    assert {"channel": "user", "event": "notice", "data": {"text": "for ada"}} in log
    paths = sorted({r["path"] for r in backend.requests})
    assert paths == ["/pusher/auth", "/pusher/user-auth", "/trigger"]


async def test_laravel_echo_in_chromium(browser: Any, pserver: ServerProcess) -> None:
    scripts_installed()
    async with pb.Backend(pserver.port) as backend:
        ada = await pusher_page(browser, backend)
        await ada.evaluate(ECHO, [pb.KEY, pserver.port, "ada", MS])
        bob = await pusher_page(browser, backend)
        await bob.evaluate(ECHO, [pb.KEY, pserver.port, "bob", MS])
        await ada.wait_for_function("window.log.some((e) => e.joining)", timeout=MS)

        # Events from the app's server side, as Laravel's broadcaster sends them: a
        # broadcastAs name (listened to with a leading dot) and a class name.
        await backend.trigger({"channels": ["orders"], "event": "order.placed", "data": {"id": 1}})
        await backend.trigger(
            {"channels": ["orders"], "event": "App\\Events\\OrderShipped", "data": {"id": 1}}
        )
        await backend.trigger(
            {"channels": ["private-orders"], "event": "refunded", "data": {"id": 2}}
        )
        # Whispers (client events) from bob's page reach ada's, not his own.
        await bob.evaluate("echo.private('orders').whisper('typing', {name: 'bob'})")
        await bob.evaluate("echo.join('room').whisper('wave', {from: 'bob'})")
        await ada.wait_for_function("window.log.filter((e) => e.on).length === 5", timeout=MS)
        await bob.wait_for_function("window.log.filter((e) => e.on).length === 3", timeout=MS)
        await bob.evaluate("echo.leave('room')")
        await ada.wait_for_function("window.log.some((e) => e.leaving)", timeout=MS)
        await asyncio.sleep(scaled(0.5))
        ada_log = await ada.evaluate("window.log")
        bob_log = await bob.evaluate("window.log")

    assert [e for e in ada_log if "on" not in e] == [
        {"here": [{"name": "ada"}]},
        {"joining": {"name": "bob"}},
        {"leaving": {"name": "bob"}},
    ]
    assert [e for e in ada_log if "on" in e] == [
        {"on": "orders", "event": ".order.placed", "e": {"id": 1}},
        {"on": "orders", "event": "OrderShipped", "e": {"id": 1}},
        {"on": "private-orders", "event": ".refunded", "e": {"id": 2}},
        {"on": "private-orders", "whisper": {"name": "bob"}},
        {"on": "presence-room", "whisper": {"from": "bob"}},
    ]
    here = [e["here"] for e in bob_log if "here" in e]
    assert len(here) == 1
    assert sorted(u["name"] for u in here[0]) == ["ada", "bob"]
    assert [e for e in bob_log if "on" in e] == [
        {"on": "orders", "event": ".order.placed", "e": {"id": 1}},
        {"on": "orders", "event": "OrderShipped", "e": {"id": 1}},
        {"on": "private-orders", "event": ".refunded", "e": {"id": 2}},
    ], "no whisper comes back to its sender"
    assert not [e for e in bob_log if "joining" in e or "leaving" in e or "error" in e]
    users = sorted(r["form"]["user"] for r in backend.requests if r["path"] == "/broadcasting/auth")
    assert users == ["ada", "ada", "bob", "bob"], "private-orders and presence-room each"
