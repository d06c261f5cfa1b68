// hubbub.js and tokens: getToken at connect, after error 109, and before expiry.
import assert from "node:assert/strict";
import { test } from "node:test";

import { WS, client, connected, mint, nextEvent, sleep, uniqueChannel } from "./helpers.mjs";

test("getToken gives the token when there is none", async () => {
  const asked = [];
  const c = client(WS, {
    getToken: async (ctx) => {
      asked.push(ctx);
      return mint({ sub: "hana" });
    },
  });
  c.connect();
  await c.ready(5000);
  assert.equal(asked.length, 1);
  const { clients } = await c.presence(await subscribedChannel(c));
  assert.deepEqual(Object.values(clients).map((i) => i.user), ["hana"]);
});

test("an expired token (error 109) makes the client get a new one", async () => {
  let calls = 0;
  const c = client(WS, {
    token: mint({ sub: "ivan", ttl: -10 }),
    getToken: async () => {
      calls += 1;
      return mint({ sub: "ivan", ttl: 600 });
    },
    minReconnectDelay: 20,
  });
  const errors = [];
  c.on("error", ({ error }) => errors.push(error.code));
  c.connect();
  await c.ready(5000);
  assert.equal(calls, 1);
  assert.deepEqual(errors, [109]);
});

test("without getToken an expired token ends in disconnected", async () => {
  const c = client(WS, { token: mint({ sub: "ivan", ttl: -10 }) });
  const disconnected = nextEvent(c, "disconnected");
  c.connect();
  assert.equal((await disconnected).code, 109);
});

test("the connection token is refreshed before it expires", async () => {
  let calls = 0;
  const c = await connected(WS, {
    token: mint({ sub: "jane", ttl: 2 }),
    getToken: async () => {
      calls += 1;
      return mint({ sub: "jane", ttl: 3 });
    },
  });
  const expiresAt = Date.now() + 2000;
  const lost = [];
  c.on("connecting", (e) => lost.push(e));
  await sleep(expiresAt - Date.now() + 1500); // past the first token's expiry
  assert.deepEqual(lost, []);
  assert.equal(c.state, "connected");
  assert.ok(calls >= 1, `getToken was called ${calls} times`);
  await c.publish(uniqueChannel(), "still here");
});

test("a subscription token is fetched with getToken and refreshed before it expires", async () => {
  const channel = `private:${uniqueChannel()}`;
  const c = await connected(WS, { token: mint({ sub: "kai" }) });
  const asked = [];
  const sub = c.newSubscription(channel, {
    getToken: async (ctx) => {
      asked.push(ctx.channel);
      return mint({ sub: "kai", channel, ttl: 2, info: { seat: asked.length } });
    },
  });
  const states = [];
  sub.on("state", ({ to }) => states.push(to));
  sub.subscribe();
  await sub.ready(5000);
  await sleep(3000); // past the first subscription token's expiry
  assert.deepEqual(states, ["subscribing", "subscribed"]);
  assert.ok(asked.length >= 2, `getToken was called ${asked.length} times`);
  assert.deepEqual(new Set(asked), new Set([channel]));
  const got = nextEvent(sub, "publication");
  await sub.publish("after refresh");
  assert.equal((await got).data, "after refresh");
});

test("a subscription refused with 109 gets a new token", async () => {
  const channel = `private:${uniqueChannel()}`;
  const c = await connected(WS, { token: mint({ sub: "lea" }), minReconnectDelay: 20 });
  const sub = c.newSubscription(channel, {
    token: mint({ sub: "lea", channel, ttl: -10 }),
    getToken: async () => mint({ sub: "lea", channel, ttl: 600 }),
  });
  const errors = [];
  sub.on("error", ({ error }) => errors.push(error.code));
  sub.subscribe();
  await sub.ready(5000);
  assert.deepEqual(errors, [109]);
});

async function subscribedChannel(c) {
  const sub = c.newSubscription(uniqueChannel());
  sub.subscribe();
  await sub.ready(5000);
  return sub.channel;
}
