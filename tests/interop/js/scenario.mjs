// centrifuge-js (npm, unchanged) against hubbub serving examples/chat_hub.py.
// Usage: node --experimental-websocket scenario.mjs PORT FORMAT VERBATIM_PORT
//   FORMAT: json (the default build) or protobuf (the build "centrifuge/build/protobuf",
//   subprotocol centrifuge-protobuf: data goes as Uint8Array, JSON text encoded here).
//   VERBATIM_PORT: a server of tests/interop/verbatim_hub.py, for the mixed-format scenario.
// Prints one JSON object {scenario: {ok, detail}} as its last line; the pytest side asserts
// every scenario. The restart scenario asks the pytest side to stop the server (prints
// "STOP", waits for a line on stdin) and to start it again on the same port ("START").
import readline from "node:readline";
import { Centrifuge as JsonCentrifuge } from "centrifuge";
import { Centrifuge as ProtobufCentrifuge } from "centrifuge/build/protobuf";
import { flakyProxy } from "./proxy.mjs";

const port = Number(process.argv[2]);
const format = process.argv[3];
const verbatimPort = Number(process.argv[4]);
const urlFor = (p) => `ws://127.0.0.1:${p}/connection/websocket`;
const results = {};

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });
// A wire format as the SDK build exposes it: JSON values as they are, or as JSON text bytes.
const WIRES = {
  json: { Centrifuge: JsonCentrifuge, enc: (v) => v, dec: (d) => d },
  protobuf: {
    Centrifuge: ProtobufCentrifuge,
    enc: (v) => encoder.encode(JSON.stringify(v)),
    dec: (d) => {
      if (!(d instanceof Uint8Array)) throw new Error(`not bytes: ${JSON.stringify(d)}`);
      return JSON.parse(decoder.decode(d));
    },
  },
};
if (!(format in WIRES) || !port || !verbatimPort) {
  console.error("usage: scenario.mjs PORT json|protobuf VERBATIM_PORT");
  process.exit(2);
}
const wire = WIRES[format];
const bytesOf = (d) => (d instanceof Uint8Array ? Array.from(d) : { notBytes: d });

// The subprotocols (the server's answer) the WebSockets of each kind of client opened with:
// tag FORMAT for the scenarios' clients, mixed-json and mixed-protobuf for the mixed ones.
const negotiated = {};
function recordingWebSocket(tag) {
  negotiated[tag] ??= new Set();
  return class extends WebSocket {
    constructor(url, protocols) {
      super(url, protocols);
      this.addEventListener("open", () => negotiated[tag].add(this.protocol));
    }
  };
}

function makeClient(p, name, fmt = format, tag = fmt) {
  const { Centrifuge, enc } = WIRES[fmt];
  const client = new Centrifuge(urlFor(p), {
    data: enc({ name }),
    websocket: recordingWebSocket(tag),
    minReconnectDelay: 50,
    maxReconnectDelay: 300,
  });
  client.connect();
  return client;
}

const stdinLines = readline.createInterface({ input: process.stdin });
const pendingLines = [];
const lineWaiters = [];
stdinLines.on("line", (line) => {
  if (lineWaiters.length) lineWaiters.shift()(line);
  else pendingLines.push(line);
});
// Ask the pytest side to do something to the server; resolves with its answer.
function ask(request) {
  console.log(request);
  const answer = pendingLines.length
    ? Promise.resolve(pendingLines.shift())
    : new Promise((resolve) => lineWaiters.push(resolve));
  return answer.then((line) => {
    if (line !== "done") throw new Error(`${request}: ${line}`);
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function until(cond, what, ms = 10000) {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

// A queue of publications with an awaitable take(n) (JSON values) and takeRaw(n) (data as
// the SDK gave it).
function inbox(sub, dec = wire.dec) {
  const items = [];
  let wake = null;
  sub.on("publication", (ctx) => {
    items.push(ctx.data);
    if (wake) wake();
  });
  const box = {
    items,
    async takeRaw(n, ms = 10000) {
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
    async take(n, ms = 10000) {
      return (await box.takeRaw(n, ms)).map(dec);
    },
  };
  return box;
}

async function subscribed(client, channel, options = {}, dec = wire.dec) {
  const sub = client.newSubscription(channel, options);
  const box = inbox(sub, dec);
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

const { enc, dec } = wire;

const scenarios = {
  async pubsub_two_channels() {
    const ada = makeClient(port, "ada");
    const bob = makeClient(port, "bob");
    try {
      const a = await subscribed(ada, "chat:a");
      const b = await subscribed(ada, "chat:b");
      const bobA = await subscribed(bob, "chat:a");
      const bobB = await subscribed(bob, "chat:b");
      await bobA.sub.publish(enc({ text: "to a" }));
      await bobB.sub.publish(enc({ text: "to b" }));
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
      for (let i = 0; i < 5; i++) await sub.publish(enc({ text: `m${i}` }));
      const all = await sub.history({ limit: 10 });
      const reverse = await sub.history({ limit: 2, reverse: true });
      const since = await sub.history({ limit: 10, since: { offset: 3, epoch: all.epoch } });
      const wrongEpoch = await expectError(
        sub.history({ limit: 10, since: { offset: 3, epoch: "other" } }),
      );
      return {
        all: all.publications.map((p) => [p.offset, dec(p.data).text]),
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
        await sleep(20);
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
      const result = await ada.rpc("whoami", enc({}));
      const missing = await expectError(ada.rpc("no_such_method", enc({})));
      return { user: dec(result.data).user, missingCode: missing.code };
    } finally {
      ada.disconnect();
    }
  },

  // The `headers` option (headers emulation): sent in the connect command, they reach the
  // verbatim hub's on_connect as emulated headers, which it echoes in the connect data.
  async emulated_headers() {
    const client = new wire.Centrifuge(urlFor(verbatimPort), {
      data: enc({ name: "hal" }),
      headers: { Authorization: "Bearer js-token", "X-Tenant": "acme" },
      websocket: recordingWebSocket(format),
    });
    const connected = new Promise((resolve) => client.on("connected", resolve));
    client.connect();
    try {
      const ctx = await Promise.race([
        connected,
        sleep(10000).then(() => Promise.reject(new Error("not connected"))),
      ]);
      return dec(ctx.data);
    } finally {
      client.disconnect();
    }
  },

  async rejected_publish() {
    const ada = makeClient(port, "ada");
    try {
      const { sub } = await subscribed(ada, "chat:a");
      const err = await expectError(sub.publish(enc({ text: "buy spam now" })));
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
      for (let i = 0; i < 3; i++) await pub.publish(enc({ text: `m${i}` }));
      const before = await box.take(3);
      proxy.cut();
      for (let i = 3; i < 8; i++) await pub.publish(enc({ text: `m${i}` }));
      await sleep(300);
      proxy.restore();
      const missed = await box.take(5);
      await pub.publish(enc({ text: "m8" }));
      const live = await box.take(1);
      await sleep(200);
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

  // The server stops (SIGTERM) and starts again on the same port and data directory; ada
  // (through a proxy that refuses connections while the server is down, so that the middle
  // batch is certainly published before ada is back) recovers what was published meanwhile.
  // Waits are long: Node 20's WebSocket reports a connection refused (or closed before the
  // handshake) with an error event but no close event, so the SDK gives such an attempt up
  // only at its connect timeout (5 s) before it tries again.
  async recovery_after_restart() {
    const proxy = await flakyProxy(port);
    const ada = makeClient(proxy.port, "ada");
    const bob = makeClient(port, "bob");
    const adaSubscribed = [];
    let bobSubscribed = 0;
    const t0 = Date.now();
    const phases = {}; // ms since the start, for a slow run's diagnosis
    const phase = (name) => (phases[name] = Date.now() - t0);
    try {
      const sub = ada.newSubscription("chat:restart");
      sub.on("subscribed", (ctx) =>
        adaSubscribed.push({
          wasRecovering: ctx.wasRecovering,
          recovered: ctx.recovered,
          epoch: ctx.streamPosition && ctx.streamPosition.epoch,
          offset: ctx.streamPosition && Number(ctx.streamPosition.offset),
        }),
      );
      const box = inbox(sub);
      sub.subscribe();
      await sub.ready(10000);
      const pub = bob.newSubscription("chat:restart");
      pub.on("subscribed", () => (bobSubscribed += 1));
      pub.subscribe();
      await pub.ready(10000);
      for (let i = 0; i < 3; i++) await pub.publish(enc({ text: `m${i}` }));
      const before = await box.take(3);
      phase("live");
      await ask("STOP");
      phase("stopped");
      proxy.cut();
      await ask("START");
      phase("started");
      await until(() => bobSubscribed >= 2, "bob to resubscribe", 20000);
      phase("bobBack");
      for (let i = 3; i < 8; i++) await pub.publish(enc({ text: `m${i}` }));
      const early = box.items.length; // ada is still away: 0
      proxy.restore();
      const missed = await box.take(5, 20000);
      phase("recovered");
      await pub.publish(enc({ text: "m8" }));
      const live = await box.take(1);
      await sleep(200);
      return {
        texts: [...before, ...missed, ...live].map((d) => d.text),
        early,
        extra: box.items.length,
        accepted: proxy.accepted,
        subscribed: adaSubscribed,
        phases,
      };
    } finally {
      ada.disconnect();
      bob.disconnect();
      proxy.close();
    }
  },

  // A JSON client (jay) and a Protobuf client (pat) of centrifuge-js on the same channels of
  // the verbatim hub: chat:mix goes through the chat hook, raw:mix is published as sent.
  async mixed_formats() {
    const jay = makeClient(verbatimPort, "jay", "json", "mixed-json");
    const pat = makeClient(verbatimPort, "pat", "protobuf", "mixed-protobuf");
    const J = WIRES.json;
    const P = WIRES.protobuf;
    try {
      const jayChat = await subscribed(jay, "chat:mix", {}, J.dec);
      const jayRaw = await subscribed(jay, "raw:mix", {}, J.dec);
      const patChat = await subscribed(pat, "chat:mix", {}, P.dec);
      const patRaw = await subscribed(pat, "raw:mix", {}, P.dec);
      await jayChat.sub.publish({ text: "from json" });
      await patChat.sub.publish(encoder.encode('{"text": "from protobuf"}'));
      await patRaw.sub.publish(encoder.encode('{"a": 1}'));
      await jayRaw.sub.publish({ b: [1, "two"] });
      const codes = [];
      for (const data of [new Uint8Array([0xff, 0x6e, 0x6f]), encoder.encode("not json")]) {
        for (const { sub } of [patChat, patRaw]) codes.push((await expectError(sub.publish(data))).code);
      }
      const patHistory = await patRaw.sub.history({ limit: 10 });
      const jayHistory = await jayRaw.sub.history({ limit: 10 });
      const got = {
        jayChat: await jayChat.box.take(2),
        patChat: await patChat.box.take(2),
        jayRaw: await jayRaw.box.takeRaw(2),
        patRaw: (await patRaw.box.takeRaw(2)).map(bytesOf),
        patHistory: patHistory.publications.map((p) => bytesOf(p.data)),
        jayHistory: jayHistory.publications.map((p) => p.data),
        codes,
      };
      await sleep(200);
      got.extra = [jayChat, jayRaw, patChat, patRaw].map(({ box }) => box.items.length);
      return got;
    } finally {
      jay.disconnect();
      pat.disconnect();
    }
  },
};

// SCENARIOS=name,name runs only those (when debugging by hand).
const only = process.env.SCENARIOS ? process.env.SCENARIOS.split(",") : null;
for (const [name, run] of Object.entries(scenarios)) {
  if (only && !only.includes(name)) continue;
  try {
    results[name] = { ok: true, detail: await run() };
  } catch (err) {
    results[name] = { ok: false, detail: String(err && err.stack ? err.stack : JSON.stringify(err)) };
  }
}
results.negotiated = {
  ok: true,
  detail: Object.fromEntries(Object.entries(negotiated).map(([f, set]) => [f, [...set].sort()])),
};
console.log(JSON.stringify(results));
process.exit(0);
