// hubbub.js over http_stream (the server's bidirectional emulation), and falling back to it
// from a WebSocket that does not open, as centrifuge-js does.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  HTTP,
  HubbubError,
  WS,
  api,
  client,
  connected,
  emulated,
  mint,
  nextEvent,
  sleep,
  startProxy,
  uniqueChannel,
  until,
} from "./helpers.mjs";

const HTTP_STREAM = emulated("http_stream");
/** A path that answers the WebSocket upgrade with 404: a WebSocket that never opens. */
const blocked = (port) => ({
  transport: "websocket",
  endpoint: `ws://127.0.0.1:${port}/blocked/websocket`,
});

test("over http_stream: subscribe, publications both ways, history, presence, RPC", async () => {
  const channel = uniqueChannel();
  const c = client([HTTP_STREAM], { token: mint({ sub: "hana", info: { role: "streamer" } }) });
  assert.equal(c.transport, "http_stream");
  assert.equal(c.url, HTTP_STREAM.endpoint);
  const connectedEvent = nextEvent(c, "connected");
  c.connect();
  assert.equal((await connectedEvent).transport, "http_stream");
  const ws = await connected(WS, { token: mint({ sub: "ws-user" }) });

  const sub = c.newSubscription(channel);
  const got = [];
  sub.on("publication", (p) => got.push(p.data));
  sub.subscribe();
  await sub.ready(5000);
  const wsSub = ws.newSubscription(channel);
  const wsGot = [];
  wsSub.on("publication", (p) => wsGot.push(p.data));
  wsSub.subscribe();
  await wsSub.ready(5000);

  await ws.publish(channel, "from ws");
  await until(() => got.length === 1, 5000, "the publication over the stream");
  assert.deepEqual(await sub.publish("from http_stream"), {});
  await until(() => wsGot.length === 2, 5000, "the stream's publication over the WebSocket");
  assert.deepEqual(got, ["from ws", "from http_stream"]);
  assert.deepEqual(wsGot, ["from ws", "from http_stream"]);

  const history = await sub.history({ limit: 10 });
  assert.deepEqual(history.publications.map((p) => p.data), ["from ws", "from http_stream"]);
  assert.equal(history.publications[1].info.user, "hana");
  const { clients } = await sub.presence();
  const users = Object.values(clients).map((i) => [i.user, i.connInfo]);
  assert.deepEqual(users.sort(), [["hana", { role: "streamer" }], ["ws-user", undefined]]);
  assert.deepEqual(await sub.presenceStats(), { numClients: 2, numUsers: 2 });
  assert.deepEqual(await c.rpc("echo", { x: 1 }), { data: { x: 1 }, user: "hana" });
  const notFound = (err) => err instanceof HubbubError && err.code === 104;
  await assert.rejects(c.rpc("no-such-method"), notFound);
  assert.equal(c.state, "connected");
});

test("over http_stream the server's pings are answered through /emulation", async () => {
  const c = await connected([HTTP_STREAM], { pingSlack: 500 });
  const lost = [];
  c.on("connecting", (e) => lost.push(e));
  // The server pings every 2 s and disconnects a session with no request within 1 s of a
  // ping (see test_hubbub_js.py); the client's missing-ping watch would notice a dead stream.
  await sleep(4500);
  assert.deepEqual(lost, []);
  assert.equal(c.state, "connected");
  assert.equal((await c.presenceStats(uniqueChannel())).numClients, 0);
});

test("commands go to /emulation one request at a time, in the order they were made", async () => {
  let inFlight = 0;
  let most = 0;
  let requests = 0;
  const counting = async (url, init) => {
    if (!String(url).endsWith("/emulation")) return fetch(url, init);
    requests++;
    most = Math.max(most, ++inFlight);
    try {
      return await fetch(url, init);
    } finally {
      inFlight--;
    }
  };
  const channel = uniqueChannel();
  const c = await connected([HTTP_STREAM], { fetch: counting });
  const replies = [];
  for (let n = 0; n < 30; n++) {
    replies.push(c.publish(channel, n));
    await new Promise((resolve) => setImmediate(resolve)); // each in a task of its own
  }
  await Promise.all(replies);
  const history = await c.history(channel, { limit: 100 });
  assert.deepEqual(history.publications.map((p) => p.data), [...Array(30).keys()]);
  assert.equal(most, 1);
  assert.ok(requests > 1 && requests <= 31, `${requests} requests`);
});

test("a server-side disconnect over http_stream: its code, a reconnect, recovery", async () => {
  const proxy = await startProxy();
  const channel = uniqueChannel();
  const user = `ivan-${process.pid}`;
  const options = { token: mint({ sub: user }), minReconnectDelay: 50, maxReconnectDelay: 100 };
  const c = await connected([emulated("http_stream", proxy.port)], options);
  const publisher = await connected();
  const sub = c.newSubscription(channel);
  const got = [];
  const subscribed = [];
  sub.on("publication", (p) => got.push(p.data));
  sub.on("subscribed", (e) => subscribed.push(e));
  sub.subscribe();
  await sub.ready(5000);
  await publisher.publish(channel, 0);
  await until(() => got.length === 1, 5000, "the first publication");

  // Reconnects are refused until the missed publications are in (the listener runs before
  // the reconnect timer can fire).
  const connecting = nextEvent(c, "connecting");
  c.on("connecting", () => (proxy.mode = "refuse"));
  await api("disconnect", { user, disconnect: { code: 3011, reason: "go away" } });
  assert.deepEqual(await connecting, { code: 3011, reason: "go away" });
  for (const n of [1, 2]) await publisher.publish(channel, n);
  const again = nextEvent(sub, "subscribed");
  c.off("connecting");
  proxy.mode = "pass";
  const event = await again;
  assert.equal(event.recovered, true);
  assert.equal(event.wasRecovering, true);
  assert.equal(c.transport, "http_stream");
  await publisher.publish(channel, 3);
  await until(() => got.length >= 4, 5000, "four publications");
  assert.deepEqual(got, [0, 1, 2, 3]);
  assert.equal(subscribed.length, 2);
});

test("a terminal disconnect push ends the connection without a reconnect", async () => {
  const user = `judy-${process.pid}`;
  const c = await connected([HTTP_STREAM], { token: mint({ sub: user }), minReconnectDelay: 20 });
  const disconnected = nextEvent(c, "disconnected");
  await api("disconnect", { user, disconnect: { code: 3503, reason: "banned" } });
  assert.deepEqual(await disconnected, { code: 3503, reason: "banned" });
  await sleep(200);
  assert.equal(c.state, "disconnected");
});

test("an /emulation request that fails ends the connection, which reconnects", async () => {
  let spoil = true;
  const spoiling = (url, init) => {
    if (spoil && String(url).endsWith("/emulation")) {
      spoil = false;
      const body = JSON.parse(init.body);
      return fetch(url, { ...init, body: JSON.stringify({ ...body, session: "nobody" }) });
    }
    return fetch(url, init);
  };
  const c = await connected([HTTP_STREAM], { fetch: spoiling, minReconnectDelay: 20 });
  const connecting = nextEvent(c, "connecting");
  const call = c.presenceStats(uniqueChannel());
  assert.deepEqual(await connecting, {
    code: 1006,
    reason: "emulation request failed: HTTP 404",
  });
  await assert.rejects(call, (err) => err.code === 2 && err.temporary);
  await c.ready(5000);
  assert.equal((await c.presenceStats(uniqueChannel())).numClients, 0);
});

test("a WebSocket that does not open: on to http_stream at once, and it stays", async () => {
  const wsProxy = await startProxy();
  const streamProxy = await startProxy();
  const user = `kim-${process.pid}`;
  const transports = [blocked(wsProxy.port), emulated("http_stream", streamProxy.port)];
  const options = { token: mint({ sub: user }), minReconnectDelay: 2000, maxReconnectDelay: 2000 };
  const c = client(transports, options);
  assert.equal(c.transport, "websocket");
  const started = Date.now();
  c.connect();
  await c.ready(5000);
  assert.ok(Date.now() - started < 1500, "no reconnect delay before the next transport");
  assert.equal(c.transport, "http_stream");
  assert.equal(c.url, transports[1].endpoint);
  assert.equal(wsProxy.accepts.length, 1);

  // Lost, it reconnects over http_stream: the WebSocket is not tried again.
  c.options.minReconnectDelay = c.options.maxReconnectDelay = 50;
  const connecting = nextEvent(c, "connecting");
  const reconnected = nextEvent(c, "connected");
  streamProxy.cut();
  assert.equal((await connecting).code, 1006);
  assert.equal((await reconnected).transport, "http_stream");
  assert.equal(wsProxy.accepts.length, 1);
  c.disconnect();

  // So does a later connect() (as centrifuge-js, the transport that worked is kept).
  c.connect();
  await c.ready(5000);
  assert.equal(c.transport, "http_stream");
  assert.equal(wsProxy.accepts.length, 1);
});

test("when every transport fails it starts again from the first, with backoff", async () => {
  const wsProxy = await startProxy();
  const streamProxy = await startProxy();
  streamProxy.mode = "refuse";
  const transports = [blocked(wsProxy.port), emulated("http_stream", streamProxy.port)];
  const min = 600;
  const c = client(transports, { minReconnectDelay: min, maxReconnectDelay: min });
  c.connect();
  await until(() => wsProxy.accepts.length === 3, 10000, "three rounds");
  // ws, then http_stream at once; after that round each try waits for its backoff (as
  // centrifuge-js): ws, http_stream, ws.
  const [ws1, ws2, ws3] = wsProxy.accepts;
  const [stream1, stream2] = streamProxy.accepts;
  const times = [ws1, stream1, ws2, stream2, ws3].map((t) => t - ws1);
  assert.ok(stream1 - ws1 < min / 2, `the next transport at once: ${times}`);
  const gaps = [ws2 - stream1, stream2 - ws2, ws3 - stream2];
  assert.ok(gaps.every((gap) => gap >= min - 15), `then with backoff: ${times}`);
  assert.equal(c.state, "connecting");
  streamProxy.mode = "pass";
  const event = await nextEvent(c, "connected", () => true, 5000);
  assert.equal(event.transport, "http_stream");
});

test("a stream with no connect reply (a buffering proxy) times out: the next one", async () => {
  const proxy = await startProxy();
  proxy.mode = "stall";
  const websocket = { transport: "websocket", endpoint: WS };
  const transports = [emulated("http_stream", proxy.port), websocket];
  const c = client(transports, { timeout: 300, minReconnectDelay: 5000 });
  const started = Date.now();
  c.connect();
  const event = await nextEvent(c, "connected");
  assert.equal(event.transport, "websocket");
  const took = Date.now() - started;
  assert.ok(took >= 300 && took < 2000, `after the connect timeout, not a backoff: ${took} ms`);
});

test("sse is skipped where there is no EventSource (Node 20)", async () => {
  assert.equal(globalThis.EventSource, undefined);
  const c = client([emulated("sse"), HTTP_STREAM], { minReconnectDelay: 2000 });
  const started = Date.now();
  c.connect();
  await c.ready(5000);
  assert.equal(c.transport, "http_stream");
  assert.ok(Date.now() - started < 1500);
  const only = client([emulated("sse")], { minReconnectDelay: 20 });
  const error = nextEvent(only, "error");
  only.connect();
  const { type, error: why } = await error;
  assert.equal(type, "transport");
  assert.equal(why.message, "none of the transports is available");
  assert.equal(only.state, "connecting"); // and it tries again, with backoff
});

test("the constructor refuses a malformed list of transports", () => {
  for (const bad of [[], [{ transport: "sockjs", endpoint: HTTP }], [{ transport: "sse" }], {}]) {
    assert.throws(() => client(bad), (err) => err instanceof HubbubError && err.code === 5);
  }
});
