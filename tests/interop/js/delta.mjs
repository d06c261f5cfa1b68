// centrifuge-js (npm, unchanged) with delta compression ({delta: "fossil"}) against hubbub.
// Usage: node --experimental-websocket delta.mjs PORT FORMAT CHANNEL API_KEY
//   FORMAT: json or protobuf (the build "centrifuge/build/protobuf").
//   CHANNEL: in a namespace with allowed_delta_types = ["fossil"], history and force_recovery.
// Publishes documents through the server API (b64data: their JSON text as JSON.stringify
// writes it, non-ASCII characters raw), some marked delta and one not; a subscriber with
// delta (through a proxy that drops its connection for a while, so that it recovers) and one
// without get them. Prints one JSON object as its last line: what was published, what each
// subscriber got, and the SDK's delta statistics.
import { Centrifuge as JsonCentrifuge } from "centrifuge";
import { Centrifuge as ProtobufCentrifuge } from "centrifuge/build/protobuf";
import { flakyProxy } from "./proxy.mjs";

const [port, format, channel, apiKey] = [Number(process.argv[2]), ...process.argv.slice(3)];
const Centrifuge = format === "protobuf" ? ProtobufCentrifuge : JsonCentrifuge;
const decoder = new TextDecoder("utf-8", { fatal: true });
const dec = format === "protobuf" ? (d) => JSON.parse(decoder.decode(d)) : (d) => d;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function doc(n) {
  const rows = [];
  for (let i = 0; i < 30; i++) rows.push({ id: i, label: `row ${i} é€𝄞`, v: i * n });
  return { n, rows };
}

async function publish(data, delta) {
  const b64data = Buffer.from(JSON.stringify(data), "utf-8").toString("base64");
  const resp = await fetch(`http://127.0.0.1:${port}/api/publish`, {
    method: "POST",
    headers: { "X-API-Key": apiKey, "Content-Type": "application/json" },
    body: JSON.stringify({ channel, b64data, delta }),
  });
  const body = await resp.json();
  if (body.error) throw new Error(`publish: ${JSON.stringify(body.error)}`);
}

function inbox(sub) {
  const items = [];
  sub.on("publication", (ctx) => items.push(dec(ctx.data)));
  return {
    items,
    async take(n, ms = 10000) {
      const deadline = Date.now() + ms;
      while (items.length < n) {
        if (Date.now() > deadline) throw new Error(`only ${items.length} of ${n} publications`);
        await sleep(20);
      }
      return items.splice(0, n);
    },
  };
}

async function subscriber(p, options) {
  const client = new Centrifuge(`ws://127.0.0.1:${p}/connection/websocket`, {
    minReconnectDelay: 50,
    maxReconnectDelay: 300,
  });
  const sub = client.newSubscription(channel, options);
  const box = inbox(sub);
  const subscribed = [];
  sub.on("subscribed", (ctx) =>
    subscribed.push({ wasRecovering: ctx.wasRecovering, recovered: ctx.recovered }),
  );
  client.connect();
  sub.subscribe();
  await sub.ready(10000);
  return { client, sub, box, subscribed };
}

const proxy = await flakyProxy(port);
const withDelta = await subscriber(proxy.port, { delta: "fossil" });
const plain = await subscriber(port, {});
const published = [];
const got = { withDelta: [], plain: [] };
async function step(marks) {
  for (const mark of marks) {
    const data = doc(published.length);
    published.push({ data, delta: mark });
    await publish(data, mark);
  }
}
let error = null;
try {
  await step([true, true, true, false, true]);
  got.withDelta.push(...(await withDelta.box.take(5)));
  got.plain.push(...(await plain.box.take(5)));
  proxy.cut();
  await sleep(100);
  await step([true, true, true]);
  await sleep(300);
  proxy.restore();
  got.withDelta.push(...(await withDelta.box.take(3)));
  await step([true, true]);
  got.withDelta.push(...(await withDelta.box.take(2)));
  got.plain.push(...(await plain.box.take(5)));
  await sleep(200);
} catch (err) {
  error = String(err && err.stack ? err.stack : err);
} finally {
  withDelta.client.disconnect();
  plain.client.disconnect();
  proxy.close();
}
console.log(
  JSON.stringify({
    error,
    published,
    got,
    extra: withDelta.box.items.length + plain.box.items.length,
    stats: withDelta.sub.deltaStats(),
    plainStats: plain.sub.deltaStats(),
    subscribed: withDelta.subscribed,
    accepted: proxy.accepted,
  }),
);
process.exit(0);
