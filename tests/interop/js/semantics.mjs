// centrifuge-js (npm, unchanged) against two hubbub nodes sharing an engine: Centrifugo's
// per-namespace subscription semantics (tags filters, cache recovery, positioning).
// Usage: node --experimental-websocket semantics.mjs SETUP
//   SETUP (JSON): {"format": "json"|"protobuf", "node": PORT, "api": "http://...", "apiKey": ...,
//                  "filters": {...}, "tags": [...]} (the tags filter scenario's, see below)
//   Clients connect to the node at PORT; publications go through the server API of the other
//   node (`api`), so each one crosses the engine.
// Prints one JSON object {scenario: {ok, detail}} as its last line; the pytest side
// (tests/interop/test_centrifuge_js_semantics.py) asserts what each subscriber got. The
// positioning scenario asks the pytest side to lose a publication on purpose: it prints
// "LOSE CHANNEL" and waits for a line "done" on stdin.
import readline from "node:readline";
import { Centrifuge as JsonCentrifuge } from "centrifuge";
import { Centrifuge as ProtobufCentrifuge } from "centrifuge/build/protobuf";

const setup = JSON.parse(process.argv[2] || "{}");
const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });
// A wire format as the SDK build exposes it: JSON values as they are, or as JSON text bytes.
const WIRES = {
  json: { Centrifuge: JsonCentrifuge, dec: (d) => d },
  protobuf: {
    Centrifuge: ProtobufCentrifuge,
    dec: (d) => {
      if (!(d instanceof Uint8Array)) throw new Error(`not bytes: ${JSON.stringify(d)}`);
      return JSON.parse(decoder.decode(d));
    },
  },
};
if (!(setup.format in WIRES) || !setup.node || !setup.api || !setup.filters || !setup.tags) {
  console.error("usage: semantics.mjs SETUP (see the top of this file)");
  process.exit(2);
}
const wire = WIRES[setup.format];
const protocols = new Set(); // the subprotocols every WebSocket opened with

class RecordingWebSocket extends WebSocket {
  constructor(url, protocols_) {
    super(url, protocols_);
    this.addEventListener("open", () => protocols.add(this.protocol));
  }
}

const stdinLines = readline.createInterface({ input: process.stdin });
const pendingLines = [];
const lineWaiters = [];
stdinLines.on("line", (line) => {
  if (lineWaiters.length) lineWaiters.shift()(line);
  else pendingLines.push(line);
});
// Ask the pytest side to do something; resolves once it answered "done".
async function ask(request) {
  console.log(request);
  const line = pendingLines.length
    ? pendingLines.shift()
    : await new Promise((resolve) => lineWaiters.push(resolve));
  if (line !== "done") throw new Error(`${request}: ${line}`);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function until(cond, what, ms = 10000) {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

// The server API of the publishing node; the result, or an Error with the reply's error.
async function api(method, params) {
  const resp = await fetch(`${setup.api}/api/${method}`, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-API-Key": setup.apiKey },
    body: JSON.stringify(params),
  });
  const body = await resp.json();
  if (body.error) throw new Error(`${method}: ${JSON.stringify(body.error)}`);
  return body.result;
}
const publish = (channel, data, tags) => api("publish", { channel, data, ...(tags ? { tags } : {}) });

// A connected client; `clientId` is its current connection's id (from the connected event).
async function connect() {
  const client = new wire.Centrifuge(`ws://127.0.0.1:${setup.node}/connection/websocket`, {
    websocket: RecordingWebSocket,
    minReconnectDelay: 50,
    maxReconnectDelay: 300,
  });
  client.on("connected", (ctx) => (client.clientId = ctx.client));
  client.connect();
  await client.ready(10000);
  return client;
}

// A subscription (not yet subscribing) and the record of its events: publications as
// [offset, data as JSON, tags], and every subscribing, subscribed, unsubscribed and error
// event. take(n) waits for the next n publications.
function recorded(client, channel, options = {}) {
  const sub = client.newSubscription(channel, { minResubscribeDelay: 50, ...options });
  const rec = { sub, pubs: [], subscribing: [], subscribed: [], unsubscribed: [], errors: [] };
  sub.on("publication", (ctx) =>
    rec.pubs.push([Number(ctx.offset || 0), wire.dec(ctx.data), ctx.tags || {}]),
  );
  sub.on("subscribing", (ctx) => rec.subscribing.push(ctx.code));
  sub.on("subscribed", (ctx) =>
    rec.subscribed.push({
      wasRecovering: ctx.wasRecovering,
      recovered: ctx.recovered,
      recoverable: ctx.recoverable,
      positioned: ctx.positioned,
      hasRecoveredPublications: ctx.hasRecoveredPublications,
      epoch: ctx.streamPosition ? ctx.streamPosition.epoch : null,
      offset: ctx.streamPosition ? Number(ctx.streamPosition.offset) : null,
    }),
  );
  sub.on("unsubscribed", (ctx) => rec.unsubscribed.push([ctx.code, ctx.reason]));
  sub.on("error", (ctx) => rec.errors.push({ type: ctx.type, code: ctx.error && ctx.error.code }));
  rec.taken = 0;
  rec.take = async (n, ms = 10000) => {
    await until(() => rec.pubs.length >= rec.taken + n, `${n} publications on ${channel}`, ms);
    const got = rec.pubs.slice(rec.taken, rec.taken + n);
    rec.taken += n;
    return got;
  };
  return rec;
}
async function subscribed(client, channel, options = {}) {
  const rec = recorded(client, channel, options);
  rec.sub.subscribe();
  await rec.sub.ready(10000);
  return rec;
}
// What a record shows the pytest side, as it is now (the subscription object left out; a
// copy, so that the events of the client's disconnect at the end do not show).
const report = ({ sub, take, taken, ...rest }) => JSON.parse(JSON.stringify(rest));

// Several subscribers of one channel, each with its filter (SETUP's "filters": name -> the
// FilterNode as the JSON protocol has it, or null for none); publications with SETUP's
// "tags", in order (the pytest side makes the last one pass every filter).
const FILTERS = setup.filters;
const TAGS = setup.tags;

// The cache scenarios: three publications first; the subscriber gets the latest; a server
// disconnect (reconnect code) with nothing new gives nothing again; being away while two
// are published gives the latest of them only.
async function cacheFlow(channel, options) {
  for (const price of [100, 101, 102]) await publish(channel, { price });
  const client = await connect();
  try {
    const rec = await subscribed(client, channel, options);
    const first = await rec.take(1);
    await api("disconnect", {
      user: "",
      client: client.clientId,
      disconnect: { code: 3001, reason: "back" },
    });
    await until(() => rec.subscribed.length === 2, "the resubscribe after the disconnect");
    await publish(channel, { price: 103 });
    const afterDisconnect = await rec.take(1);
    client.disconnect();
    await publish(channel, { price: 104 });
    await publish(channel, { price: 105 });
    client.connect();
    await until(() => rec.subscribed.length === 3, "the resubscribe after connect()");
    const afterAway = await rec.take(1);
    await publish(channel, { price: 106 });
    const live = await rec.take(1);
    await sleep(200);
    return { first, afterDisconnect, afterAway, live, ...report(rec) };
  } finally {
    client.disconnect();
  }
}

const scenarios = {
  async tags_filter() {
    const channel = "tagged:board";
    const clients = [];
    try {
      const recs = {};
      for (const [name, tf] of Object.entries(FILTERS)) {
        const client = await connect();
        clients.push(client);
        recs[name] = await subscribed(client, channel, tf ? { tagsFilter: tf } : {});
      }
      const offsets = [];
      for (let n = 0; n < TAGS.length; n++) {
        offsets.push(Number((await publish(channel, { n }, TAGS[n])).offset));
      }
      const last = TAGS.length - 1;
      await until(
        () => Object.values(recs).every((r) => r.pubs.some(([, d]) => d.n === last)),
        "the last publication everywhere",
      );
      await sleep(200);
      return {
        offsets,
        got: Object.fromEntries(Object.entries(recs).map(([name, r]) => [name, report(r)])),
      };
    } finally {
      for (const client of clients) client.disconnect();
    }
  },

  async tags_filter_recovery() {
    const channel = "tagged:away";
    const client = await connect();
    try {
      const rec = await subscribed(client, channel, {
        recoverable: true,
        tagsFilter: { key: "team", cmp: "eq", val: "eng" },
      });
      await publish(channel, { n: 0 }, { team: "eng" });
      const before = await rec.take(1);
      client.disconnect();
      const teams = ["ops", "eng", "ops", "eng", "ops"];
      for (let i = 0; i < teams.length; i++) await publish(channel, { n: i + 1 }, { team: teams[i] });
      client.connect();
      await until(() => rec.subscribed.length === 2, "the resubscribe");
      const recovered = await rec.take(2);
      await publish(channel, { n: 6 }, { team: "eng" });
      const live = await rec.take(1);
      await sleep(200);
      return { before, recovered, live, ...report(rec) };
    } finally {
      client.disconnect();
    }
  },

  async tags_filter_refused() {
    const client = await connect();
    try {
      const outcome = async (channel, tagsFilter) => {
        const rec = recorded(client, channel, { tagsFilter });
        rec.sub.subscribe();
        let readyError = null;
        try {
          await rec.sub.ready(5000);
        } catch (err) {
          readyError = err.code;
        }
        return { readyError, state: rec.sub.state, ...report(rec) };
      };
      const notAllowed = await outcome("untagged:board", { key: "team", cmp: "eq", val: "eng" });
      const malformed = await outcome("tagged:board", { key: "team", cmp: "eq", val: "" });
      const plain = await subscribed(client, "untagged:other");
      await publish("untagged:other", { still: "here" }, { team: "eng" });
      const after = await plain.take(1);
      return { notAllowed, malformed, after, clientState: client.state };
    } finally {
      client.disconnect();
    }
  },

  cache_since: () => cacheFlow("prices:aapl", { since: {} }),
  cache_auto: () => cacheFlow("scores:final", {}),

  async cache_not_asked() {
    await publish("prices:msft", { price: 1 });
    const client = await connect();
    try {
      const rec = await subscribed(client, "prices:msft");
      await publish("prices:msft", { price: 2 });
      const live = await rec.take(1);
      await sleep(200);
      return { live, ...report(rec) };
    } finally {
      client.disconnect();
    }
  },

  // Three subscribers on the node that does not publish: one asks positioned+recoverable,
  // one is in a namespace that forces positioning and recovery, one is neither. A
  // publication (offset 3) is lost between the engine and that node.
  async positioning() {
    const subscribers = [
      ["h:feed", { positioned: true, recoverable: true }],
      ["forced:feed", {}],
      ["h:feed", {}],
    ];
    const channels = ["forced:feed", "h:feed"];
    const epochs = {};
    for (const ch of channels) epochs[ch] = (await publish(ch, { n: 1 })).epoch;
    const clients = [];
    try {
      const recs = [];
      for (const [channel, options] of subscribers) {
        const client = await connect();
        clients.push(client);
        recs.push(await subscribed(client, channel, options));
      }
      for (const ch of channels) await publish(ch, { n: 2 });
      const live = [];
      for (const rec of recs) live.push(await rec.take(1));
      for (const ch of channels) await ask(`LOSE ${ch}`);
      for (const n of [4, 5]) for (const ch of channels) await publish(ch, { n });
      const afterLoss = [];
      for (const [i, rec] of recs.entries()) afterLoss.push(await rec.take(i < 2 ? 3 : 2));
      for (const ch of channels) await publish(ch, { n: 6 });
      const last = [];
      for (const rec of recs) last.push(await rec.take(1));
      await sleep(200);
      return { epochs, live, afterLoss, last, records: recs.map(report) };
    } finally {
      for (const client of clients) client.disconnect();
    }
  },
};

// SCENARIOS=name,name runs only those (when debugging by hand).
const only = process.env.SCENARIOS ? process.env.SCENARIOS.split(",") : null;
const results = {};
for (const [name, run] of Object.entries(scenarios)) {
  if (only && !only.includes(name)) continue;
  try {
    results[name] = { ok: true, detail: await run() };
  } catch (err) {
    results[name] = { ok: false, detail: String(err && err.stack ? err.stack : JSON.stringify(err)) };
  }
}
results.protocols = { ok: true, detail: [...protocols].sort() };
console.log(JSON.stringify(results));
process.exit(0);
