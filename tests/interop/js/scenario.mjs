// centrifuge-js (npm, unchanged) against hubbub serving examples/chat_hub.py.
// Usage: node --experimental-websocket scenario.mjs PORT
// Prints one JSON object {scenario: {ok, detail}}; the pytest side asserts every scenario.
import net from "node:net";
import { Centrifuge } from "centrifuge";

const port = Number(process.argv[2]);
const urlFor = (p) => `ws://127.0.0.1:${p}/connection/websocket`;
const results = {};

function makeClient(p, name) {
  const client = new Centrifuge(urlFor(p), {
    data: { name },
    websocket: WebSocket,
    minReconnectDelay: 50,
    maxReconnectDelay: 300,
  });
  client.connect();
  return client;
}

// A queue of publications with an awaitable take(n).
function inbox(sub) {
  const items = [];
  let wake = null;
  sub.on("publication", (ctx) => {
    items.push(ctx.data);
    if (wake) wake();
  });
  return {
    items,
    async take(n, ms = 10000) {
      const deadline = Date.now() + ms;
      while (items.length < n) {
        if (Date.now() > deadline) throw new Error(`only ${items.length} of ${n} publications`);
        await new Promise((resolve) => {
          wake = resolve;
          setTimeout(resolve, 50);
        });
      }
      return items.splice(0, n);
    },
  };
}

async function subscribed(client, channel, options = {}) {
  const sub = client.newSubscription(channel, options);
  const box = inbox(sub);
  sub.subscribe();
  await sub.ready(10000);
  return { sub, box };
}

async function expectError(promise) {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error("expected an error");
}

// A TCP proxy that can drop every connection abruptly and refuse new ones for a while.
function flakyProxy(targetPort) {
  const sockets = new Set();
  let refusing = false;
  let accepted = 0;
  const server = net.createServer((downstream) => {
    if (refusing) return downstream.destroy();
    accepted += 1;
    const upstream = net.connect(targetPort, "127.0.0.1");
    for (const s of [downstream, upstream]) {
      sockets.add(s);
      s.on("error", () => {});
      s.on("close", () => sockets.delete(s));
    }
    downstream.pipe(upstream);
    upstream.pipe(downstream);
    downstream.on("close", () => upstream.destroy());
    upstream.on("close", () => downstream.destroy());
  });
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () =>
      resolve({
        port: server.address().port,
        get accepted() {
          return accepted;
        },
        cut() {
          refusing = true;
          for (const s of sockets) s.resetAndDestroy ? s.resetAndDestroy() : s.destroy();
        },
        restore() {
          refusing = false;
        },
        close() {
          this.cut();
          server.close();
        },
      }),
    ),
  );
}

const scenarios = {
  async pubsub_two_channels() {
    const ada = makeClient(port, "ada");
    const bob = makeClient(port, "bob");
    try {
      const a = await subscribed(ada, "chat:a");
      const b = await subscribed(ada, "chat:b");
      const bobA = await subscribed(bob, "chat:a");
      const bobB = await subscribed(bob, "chat:b");
      await bobA.sub.publish({ text: "to a" });
      await bobB.sub.publish({ text: "to b" });
      const gotA = await a.box.take(1);
      const gotB = await b.box.take(1);
      return { gotA, gotB };
    } finally {
      ada.disconnect();
      bob.disconnect();
    }
  },

  async history() {
    const ada = makeClient(port, "ada");
    try {
      const { sub } = await subscribed(ada, "chat:hist");
      for (let i = 0; i < 5; i++) await sub.publish({ text: `m${i}` });
      const all = await sub.history({ limit: 10 });
      const reverse = await sub.history({ limit: 2, reverse: true });
      const since = await sub.history({ limit: 10, since: { offset: 3, epoch: all.epoch } });
      const wrongEpoch = await expectError(
        sub.history({ limit: 10, since: { offset: 3, epoch: "other" } }),
      );
      return {
        all: all.publications.map((p) => [p.offset, p.data.text]),
        top: all.offset,
        reverse: reverse.publications.map((p) => p.offset),
        since: since.publications.map((p) => p.offset),
        wrongEpochCode: wrongEpoch.code,
      };
    } finally {
      ada.disconnect();
    }
  },

  async presence_join_leave() {
    const ada = makeClient(port, "ada");
    const joins = [];
    const leaves = [];
    try {
      const { sub } = await subscribed(ada, "chat:room", { joinLeave: true });
      sub.on("join", (ctx) => joins.push(ctx.info.user));
      sub.on("leave", (ctx) => leaves.push(ctx.info.user));
      const bob = makeClient(port, "bob");
      await subscribed(bob, "chat:room");
      const presence = await sub.presence();
      const stats = await sub.presenceStats();
      bob.disconnect();
      const deadline = Date.now() + 10000;
      while (!leaves.includes("bob") && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 20));
      }
      const after = await sub.presenceStats();
      return {
        users: Object.values(presence.clients).map((c) => c.user).sort(),
        stats: [stats.numClients, stats.numUsers],
        after: [after.numClients, after.numUsers],
        joins,
        leaves,
      };
    } finally {
      ada.disconnect();
    }
  },

  async rpc() {
    const ada = makeClient(port, "ada");
    try {
      await ada.ready(10000);
      const result = await ada.rpc("whoami", {});
      const missing = await expectError(ada.rpc("no_such_method", {}));
      return { user: result.data.user, missingCode: missing.code };
    } finally {
      ada.disconnect();
    }
  },

  async rejected_publish() {
    const ada = makeClient(port, "ada");
    try {
      const { sub } = await subscribed(ada, "chat:a");
      const err = await expectError(sub.publish({ text: "buy spam now" }));
      return { code: err.code, message: err.message };
    } finally {
      ada.disconnect();
    }
  },

  async recovery() {
    const proxy = await flakyProxy(port);
    const ada = makeClient(proxy.port, "ada");
    const bob = makeClient(port, "bob");
    const subscribedEvents = [];
    try {
      const sub = ada.newSubscription("chat:rec");
      sub.on("subscribed", (ctx) =>
        subscribedEvents.push({ wasRecovering: ctx.wasRecovering, recovered: ctx.recovered }),
      );
      const box = inbox(sub);
      sub.subscribe();
      await sub.ready(10000);
      const { sub: pub } = await subscribed(bob, "chat:rec");
      for (let i = 0; i < 3; i++) await pub.publish({ text: `m${i}` });
      const before = await box.take(3);
      proxy.cut();
      for (let i = 3; i < 8; i++) await pub.publish({ text: `m${i}` });
      await new Promise((r) => setTimeout(r, 300));
      proxy.restore();
      const missed = await box.take(5);
      await pub.publish({ text: "m8" });
      const live = await box.take(1);
      await new Promise((r) => setTimeout(r, 200));
      return {
        texts: [...before, ...missed, ...live].map((d) => d.text),
        extra: box.items.length,
        accepted: proxy.accepted,
        lastSubscribed: subscribedEvents[subscribedEvents.length - 1],
      };
    } finally {
      ada.disconnect();
      bob.disconnect();
      proxy.close();
    }
  },
};

for (const [name, run] of Object.entries(scenarios)) {
  try {
    results[name] = { ok: true, detail: await run() };
  } catch (err) {
    results[name] = { ok: false, detail: String(err && err.stack ? err.stack : JSON.stringify(err)) };
  }
}
console.log(JSON.stringify(results));
process.exit(0);
