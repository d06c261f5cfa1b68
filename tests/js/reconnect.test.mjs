// hubbub.js losing its connection: backoff, recovery of missed publications, dead links.
import assert from "node:assert/strict";
import { test } from "node:test";

import { connected, mint, nextEvent, sleep, startProxy, uniqueChannel, until } from "./helpers.mjs";

test("reconnects with exponential backoff and full jitter, capped at the maximum", async (t) => {
  // Math.random drives the jitter: near 1 the delays are their caps (doubling up to the
  // maximum), then 0 and 0.5 show the jitter reaching down to the minimum.
  const draws = [0.999, 0.999, 0.999, 0.999, 0.999, 0, 0.5];
  const random = Math.random;
  Math.random = () => (draws.length ? draws.shift() : 0.999);
  t.after(() => (Math.random = random));
  const min = 100;
  const max = 800;
  const proxy = await startProxy();
  const c = await connected(proxy.url, { minReconnectDelay: min, maxReconnectDelay: max });
  const connecting = nextEvent(c, "connecting");
  proxy.mode = "refuse";
  proxy.cut();
  const { code } = await connecting;
  const lostAt = Date.now();
  assert.equal(code, 1006);
  const seen = proxy.accepts.length;
  await until(() => proxy.accepts.length >= seen + 7, 10000, "7 reconnect attempts");
  const times = [lostAt, ...proxy.accepts.slice(seen, seen + 7)];
  const gaps = times.slice(1).map((at, i) => at - times[i]);
  // expected delays: 100, 200, 400, 800, 800, 100, 450 (plus the time a refused try takes)
  const slack = 250;
  const near = (gap, want) => gap >= want - 15 && gap <= want + slack;
  assert.ok(near(gaps[0], min), `first delay is the minimum: ${gaps}`);
  assert.ok(gaps[0] < gaps[1] && gaps[1] < gaps[2] && gaps[2] < gaps[3], `delays grow: ${gaps}`);
  assert.ok(near(gaps[3], max) && near(gaps[4], max), `delays stop at the maximum: ${gaps}`);
  assert.ok(near(gaps[5], min) && near(gaps[6], 450), `jitter spans min to cap: ${gaps}`);
  assert.equal(c.state, "connecting");
  proxy.mode = "pass";
  await c.ready(5000);
});

test("after a reconnect a subscription recovers exactly the missed publications", async () => {
  const proxy = await startProxy();
  const channel = uniqueChannel();
  const c = await connected(proxy.url, { minReconnectDelay: 50, maxReconnectDelay: 200 });
  const publisher = await connected();
  const sub = c.newSubscription(channel);
  const got = [];
  const subscribedEvents = [];
  const states = [];
  sub.on("publication", (p) => got.push(p.data));
  sub.on("subscribed", (e) => subscribedEvents.push(e));
  sub.on("state", ({ to }) => states.push(to));
  sub.subscribe();
  await sub.ready(5000);
  await publisher.publish(channel, 0);
  await until(() => got.length === 1, 5000, "the first publication");

  const subscribing = nextEvent(sub, "subscribing");
  proxy.mode = "refuse";
  proxy.cut();
  assert.equal((await subscribing).code, 1006);
  for (const n of [1, 2, 3]) await publisher.publish(channel, n);
  const resubscribed = nextEvent(sub, "subscribed");
  proxy.mode = "pass";
  const again = await resubscribed;
  assert.equal(again.recovered, true);
  assert.equal(again.wasRecovering, true);
  assert.equal(again.streamPosition.offset, 4);
  await publisher.publish(channel, 4);
  await until(() => got.length >= 5, 5000, "five publications");
  assert.deepEqual(got, [0, 1, 2, 3, 4]);
  assert.deepEqual(states, ["subscribing", "subscribed", "subscribing", "subscribed"]);
  assert.equal(subscribedEvents[0].recovered, false);
  const history = await sub.history({ limit: 0 });
  assert.equal(history.offset, 5);
});

test("server-side subscriptions recover through the connect command", async () => {
  const proxy = await startProxy();
  const channel = uniqueChannel();
  const token = mint({ sub: "frank", channels: [channel] });
  const c = await connected(proxy.url, { token, minReconnectDelay: 50, maxReconnectDelay: 200 });
  const publisher = await connected();
  const got = [];
  c.on("publication", (p) => got.push(p.data));
  await publisher.publish(channel, "a");
  await until(() => got.length === 1, 5000, "the first publication");
  const connecting = nextEvent(c, "connecting");
  proxy.mode = "refuse";
  proxy.cut();
  await connecting;
  await publisher.publish(channel, "b");
  await publisher.publish(channel, "c");
  const subscribed = nextEvent(c, "subscribed");
  proxy.mode = "pass";
  const event = await subscribed;
  assert.equal(event.channel, channel);
  assert.equal(event.recovered, true);
  await publisher.publish(channel, "d");
  await until(() => got.length >= 4, 5000, "four publications");
  assert.deepEqual(got, ["a", "b", "c", "d"]);
});

test("pings are answered; a link that goes silent is noticed by the missing pings", async () => {
  const proxy = await startProxy();
  const c = await connected(proxy.url, { pingSlack: 300, minReconnectDelay: 50 });
  // The server pings every 2 s and closes a connection whose ping is not answered within 1 s
  // (see test_hubbub_js.py).
  const lost = [];
  c.on("connecting", (e) => lost.push(e));
  await sleep(3500); // unanswered, the first ping would close the connection at 3 s
  assert.deepEqual(lost, []);
  c.off("connecting");
  const connecting = nextEvent(c, "connecting");
  const stalledAt = Date.now();
  proxy.mode = "stall";
  assert.deepEqual(await connecting, { code: 2, reason: "no ping" });
  assert.ok(Date.now() - stalledAt < 2000 + 300 + 500, "noticed within ping + slack");
  proxy.mode = "pass";
  await c.ready(5000);
});
