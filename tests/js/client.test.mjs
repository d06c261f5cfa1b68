// hubbub.js against a live hubbub: connection states, pub/sub, calls, errors.
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { test } from "node:test";

import {
  HTTP,
  HubbubError,
  MODULE,
  WS,
  client,
  connected,
  errorCodes,
  mint,
  nextEvent,
  sleep,
  startProxy,
  uniqueChannel,
} from "./helpers.mjs";

test("the server serves the module at /static/hubbub.js", async () => {
  const response = await fetch(`${HTTP}/static/hubbub.js`);
  assert.equal(response.status, 200);
  const mine = await readFile(new URL(MODULE, import.meta.url), "utf8");
  assert.equal(await response.text(), mine);
});

test("state events come in the documented order on connect and disconnect", async () => {
  const c = client(WS.replace(/^ws/, "http")); // an http URL is turned into ws
  const log = [];
  for (const name of ["state", "connecting", "connected", "disconnected"]) {
    c.on(name, (event) => log.push({ name, event }));
  }
  assert.equal(c.state, "disconnected");
  c.connect();
  assert.equal(c.state, "connecting");
  await c.ready(5000);
  c.disconnect();
  assert.equal(c.state, "disconnected");
  const names = log.map(({ name, event }) =>
    name === "state" ? `${event.from}>${event.to}` : name,
  );
  assert.deepEqual(names, [
    "disconnected>connecting",
    "connecting",
    "connecting>connected",
    "connected",
    "connected>disconnected",
    "disconnected",
  ]);
  assert.deepEqual(log[1].event, { code: 0, reason: "connect called" });
  assert.equal(typeof log[3].event.client, "string");
  assert.deepEqual(log[5].event, { code: 0, reason: "disconnect called" });
  await assert.rejects(c.ready(100), (err) => err.code === errorCodes.disconnected);
  await assert.rejects(c.publish("x", 1), (err) => err.code === errorCodes.disconnected);
});

test("publish and subscribe round trip, with join and leave", async () => {
  const channel = uniqueChannel();
  const alice = await connected(WS, { token: mint({ sub: "alice" }) });
  const bob = await connected(WS, { token: mint({ sub: "bob" }) });
  const sub = alice.newSubscription(channel);
  assert.equal(alice.getSubscription(channel), sub);
  assert.throws(() => alice.newSubscription(channel), HubbubError);
  const states = [];
  sub.on("state", ({ from, to }) => states.push(`${from}>${to}`));
  const subscribed = nextEvent(sub, "subscribed");
  sub.subscribe();
  const ctx = await subscribed;
  assert.equal(sub.state, "subscribed");
  assert.equal(ctx.channel, channel);
  assert.equal(ctx.recovered, false);
  assert.equal(typeof ctx.streamPosition.epoch, "string");

  const joined = nextEvent(sub, "join", (e) => e.info.user === "bob");
  const bobSub = bob.newSubscription(channel);
  bobSub.subscribe();
  await bobSub.ready(5000);
  await joined;

  const got = nextEvent(sub, "publication");
  assert.deepEqual(await bob.publish(channel, { text: "hi" }), {});
  const pub = await got;
  assert.deepEqual(pub.data, { text: "hi" });
  assert.equal(pub.channel, channel);
  assert.equal(pub.offset, 1);
  assert.equal(pub.info.user, "bob");

  const again = nextEvent(bobSub, "publication");
  await sub.publish("from alice");
  assert.equal((await again).data, "from alice");

  const left = nextEvent(sub, "leave", (e) => e.info.user === "bob");
  bob.removeSubscription(bobSub);
  assert.equal(bobSub.state, "unsubscribed");
  assert.equal(bob.getSubscription(channel), null);
  await left;
  sub.unsubscribe();
  assert.deepEqual(states, [
    "unsubscribed>subscribing",
    "subscribing>subscribed",
    "subscribed>unsubscribed",
  ]);
});

test("history, presence and presence stats", async () => {
  const channel = uniqueChannel();
  const c = await connected(WS, { token: mint({ sub: "carol", info: { role: "tester" } }) });
  const sub = c.newSubscription(channel);
  sub.subscribe();
  await sub.ready(5000);
  for (const n of [1, 2, 3]) await c.publish(channel, { n });
  const all = await sub.history({ limit: 10 });
  assert.deepEqual(all.publications.map((p) => p.data.n), [1, 2, 3]);
  assert.equal(all.offset, 3);
  const since = await c.history(channel, { limit: 10, since: { offset: 1, epoch: all.epoch } });
  assert.deepEqual(since.publications.map((p) => p.offset), [2, 3]);
  const reverse = await c.history(channel, { limit: 2, reverse: true });
  assert.deepEqual(reverse.publications.map((p) => p.data.n), [3, 2]);
  await assert.rejects(
    c.history(channel, { limit: 1, since: { offset: 1, epoch: "other" } }),
    (err) => err instanceof HubbubError && err.code === 112,
  );
  const { clients } = await sub.presence();
  const entries = Object.values(clients).map((i) => [i.user, i.connInfo]);
  assert.deepEqual(entries, [["carol", { role: "tester" }]]);
  assert.deepEqual(await sub.presenceStats(), { numClients: 1, numUsers: 1 });
});

test("rpc errors carry the server's code and message", async () => {
  const c = await connected();
  await assert.rejects(c.rpc("no-such-method", { x: 1 }), (err) => {
    assert.ok(err instanceof HubbubError);
    assert.equal(err.code, 104);
    assert.equal(err.message, "method not found");
    assert.equal(err.temporary, false);
    return true;
  });
  assert.equal(c.state, "connected");
});

test("calls made while connecting are queued, then sent together in one frame", async () => {
  const frames = [];
  class Recording extends WebSocket {
    send(data) {
      frames.push(data);
      super.send(data);
    }
  }
  const channel = uniqueChannel();
  const c = client(WS, { websocket: Recording });
  c.connect();
  const replies = [c.publish(channel, 1), c.publish(channel, 2), c.presenceStats(channel)];
  assert.equal(c.state, "connecting");
  const [, , stats] = await Promise.all(replies);
  assert.deepEqual(stats, { numClients: 0, numUsers: 0 });
  const lines = frames.map((f) => f.split("\n").map((l) => Object.keys(JSON.parse(l)).join()));
  assert.deepEqual(lines[0], ["id,connect"]);
  assert.deepEqual(lines[1], ["id,publish", "id,publish", "id,presence_stats"]);
  const history = await c.history(channel, { limit: 10 });
  assert.deepEqual(history.publications.map((p) => p.data), [1, 2]);
});

test("a call times out when no reply comes", async () => {
  const proxy = await startProxy();
  const c = await connected(proxy.url, { timeout: 300 });
  proxy.mode = "stall";
  await assert.rejects(c.publish(uniqueChannel(), 1), (err) => {
    assert.equal(err.code, errorCodes.timeout);
    assert.equal(err.temporary, true);
    return true;
  });
});

test("a terminal close code ends the connection without reconnecting", async () => {
  const c = await connected(WS, { minReconnectDelay: 20, maxReconnectDelay: 50 });
  const disconnected = nextEvent(c, "disconnected");
  await c.send({ hello: true }); // no on_message hook: the server closes with 3508
  const { code } = await disconnected;
  assert.equal(code, 3508);
  await sleep(200);
  assert.equal(c.state, "disconnected");
});

test("a refused subscription ends with the error's code", async () => {
  const c = await connected(WS, { token: mint({ sub: "dave" }) });
  const sub = c.newSubscription("private:refused");
  const error = nextEvent(sub, "error");
  const unsubscribed = nextEvent(sub, "unsubscribed");
  sub.subscribe();
  await assert.rejects(sub.ready(5000), (err) => err.code === errorCodes.unsubscribed);
  assert.equal((await error).error.code, 103);
  assert.deepEqual(await unsubscribed, { code: 103, reason: "permission denied" });
});

test("server-side subscriptions from the token's channels claim", async () => {
  const channel = uniqueChannel();
  const c = client(WS, { token: mint({ sub: "erin", channels: [channel] }) });
  const subscribed = nextEvent(c, "subscribed");
  c.connect();
  assert.equal((await subscribed).channel, channel);
  const other = await connected();
  const got = nextEvent(c, "publication");
  await other.publish(channel, "server-side");
  const pub = await got;
  assert.equal(pub.channel, channel);
  assert.equal(pub.data, "server-side");
  assert.equal(pub.offset, 1);
});

test("offline waits in connecting; online reconnects at once", async (t) => {
  globalThis.window = new EventTarget();
  t.after(() => delete globalThis.window);
  const c = await connected(WS, { minReconnectDelay: 10, maxReconnectDelay: 20 });
  const connecting = nextEvent(c, "connecting");
  window.dispatchEvent(new Event("offline"));
  assert.deepEqual(await connecting, { code: 3, reason: "offline" });
  await sleep(150); // many reconnect delays: it must not try while offline
  assert.equal(c.state, "connecting");
  const before = Date.now();
  window.dispatchEvent(new Event("online"));
  await c.ready(5000);
  assert.ok(Date.now() - before < 1000);
});
