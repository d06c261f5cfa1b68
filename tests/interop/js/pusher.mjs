// pusher-js (npm, unchanged, its Node build) against hubbub's Pusher endpoint /app/{key}.
// Usage: node --experimental-websocket pusher.mjs CONFIG_JSON
//   CONFIG_JSON: {key, sharedKey, port, backend, sharedBackend, cluster: [portA, portB],
//   clusterBackend}: port is a hubbub node of its own, cluster two nodes sharing one Redis;
//   each backend (tests/interop/pusher_backend.py) signs subscriptions and sign-ins and
//   triggers events with the `pusher` PyPI library for its node (POST /trigger).
// Prints one JSON line per scenario, {scenario, ok, detail} or {scenario, ok: false, error},
// then {"done": true}; tests/interop/test_pusher_js.py asserts each detail. What is recorded
// is what pusher-js handed the application (callbacks' arguments, members), nothing judged
// here but timeouts. The Centrifugo side of the shared-channel scenario is centrifuge-js
// (global WebSocket: Node's --experimental-websocket).
import Pusher from "pusher-js";
import { Centrifuge } from "centrifuge";

const cfg = JSON.parse(process.argv[2] ?? "null");
if (!cfg || !cfg.port || !cfg.backend) {
  console.error("usage: pusher.mjs CONFIG_JSON");
  process.exit(2);
}
const STEP_MS = cfg.stepMs ?? 10000; // the longest wait of any one step
const QUIET_MS = cfg.quietMs ?? 700; // how long "nothing more arrives" is watched for

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function until(cond, what, ms = STEP_MS) {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

// Every client a scenario opened, disconnected when it ends (pass or fail).
let opened = [];

function newPusher(port, user, { key = cfg.key, backend = cfg.backend } = {}) {
  const p = new Pusher(key, {
    wsHost: "127.0.0.1",
    wsPort: port,
    forceTLS: false,
    enabledTransports: ["ws"],
    cluster: "mt1",
    channelAuthorization: {
      endpoint: `${backend}/pusher/auth`,
      transport: "ajax",
      params: { user },
    },
    userAuthentication: {
      endpoint: `${backend}/pusher/user-auth`,
      transport: "ajax",
      params: { user },
    },
  });
  p.errors = [];
  p.connection.bind("error", (e) => p.errors.push(e.data ?? { type: e.type }));
  opened.push(p);
  return p;
}

async function connected(p) {
  await until(() => p.connection.state === "connected", "connected");
  return p;
}

// Subscribe and record every event the channel emits ({event, data, meta?}) in ch.log.
function watch(p, name) {
  const ch = p.subscribe(name);
  ch.log = [];
  ch.bind_global((event, data) => {
    if (event === "pusher:subscription_succeeded" && data && data.members) {
      data = members(data);
    }
    ch.log.push({ event, data: data ?? null });
  });
  return ch;
}

// A presence channel's members as plain JSON: {count, me, members: {id: info}}.
function members(m) {
  return { count: m.count, me: m.me, members: { ...m.members } };
}

const succeeded = (ch) =>
  until(() => ch.log.some((e) => e.event === "pusher:subscription_succeeded"), `${ch.name} subscribed`);
const subError = (ch) =>
  until(() => ch.log.some((e) => e.event === "pusher:subscription_error"), `${ch.name} refused`);
const eventsOf = (ch, prefix = "") =>
  ch.log.filter((e) => !e.event.startsWith("pusher:") && e.event.startsWith(prefix));
const count = (ch, event) => ch.log.filter((e) => e.event === event).length;

async function trigger(body, backend = cfg.backend) {
  const resp = await fetch(`${backend}/trigger`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  const answer = await resp.json();
  if (!resp.ok) throw new Error(`trigger ${JSON.stringify(body)}: ${answer.error}`);
  return answer.result;
}

const ODD_NAME = "Odd-_=@,.;Name09";

// -- scenarios -------------------------------------------------------------------------

const scenarios = {};

scenarios.connect = async () => {
  const p = await connected(newPusher(cfg.port, "ada"));
  return {
    socketId: p.connection.socket_id,
    state: p.connection.state,
    transport: p.connection.connection?.transport?.name ?? null,
    activityTimeout: p.connection.activityTimeout,
    errors: p.errors,
  };
};

scenarios.public = async () => {
  const a = await connected(newPusher(cfg.port, "ada"));
  const b = await connected(newPusher(cfg.port, "bob"));
  const ca = watch(a, "orders");
  const cb = watch(b, "orders");
  await succeeded(ca);
  await succeeded(cb);
  // Excluding a's socket, then to everyone, then a string that is not JSON.
  await trigger({ channels: ["orders"], event: "placed", data: { n: 1 }, socket_id: a.connection.socket_id });
  await trigger({ channels: ["orders"], event: "placed", data: { n: 2, item: "tea ☕" } });
  await trigger({ channels: ["orders", "other"], event: "note", data: "just text" });
  await until(() => eventsOf(cb).length === 3 && eventsOf(ca).length === 2, "3 and 2 events");
  // Every character a channel name may have.
  const odd = watch(a, ODD_NAME);
  await succeeded(odd);
  await trigger({ channels: [ODD_NAME], event: "odd", data: [1, "two"] });
  await until(() => eventsOf(odd).length === 1, "the odd channel's event");
  await sleep(QUIET_MS);
  return { a: eventsOf(ca), b: eventsOf(cb), succeeded: ca.log[0], odd: eventsOf(odd) };
};

scenarios.private = async () => {
  const a = await connected(newPusher(cfg.port, "ada"));
  const ch = watch(a, "private-orders");
  await succeeded(ch);
  await trigger({ channels: ["private-orders"], event: "shipped", data: { id: 7 } });
  await until(() => eventsOf(ch).length === 1, "the event");
  return { events: eventsOf(ch), socketId: a.connection.socket_id, errors: a.errors };
};

scenarios.refused = async () => {
  const a = await connected(newPusher(cfg.port, "ada"));
  const forbidden = watch(a, "private-forbidden-vault");
  const badsig = watch(a, "private-badsig-vault");
  await subError(forbidden);
  await until(
    () => badsig.log.length > 0 || a.errors.length > 0,
    "hubbub's answer to a bad signature",
  );
  await sleep(QUIET_MS);
  // The connection is still usable.
  const after = watch(a, "after-refusal");
  await succeeded(after);
  return {
    forbidden: forbidden.log,
    badsig: badsig.log,
    badsigSubscribed: badsig.subscribed,
    errors: a.errors,
    state: a.connection.state,
  };
};

scenarios.presence = async () => {
  const a = await connected(newPusher(cfg.port, "ada"));
  const b = await connected(newPusher(cfg.port, "bob"));
  const ca = watch(a, "presence-room");
  await succeeded(ca);
  const cb = watch(b, "presence-room");
  await succeeded(cb);
  await until(() => count(ca, "pusher:member_added") === 1, "bob added");
  const typing = [];
  ca.bind("client-typing", (data, meta) => typing.push({ data, meta }));
  const echoed = [];
  cb.bind("client-typing", (data, meta) => echoed.push({ data, meta }));
  const sent = cb.trigger("client-typing", { typing: true });
  await until(() => typing.length === 1, "bob's client event");
  const bView = members(cb.members);
  // bob's second connection on this node: no second member_added, no member_removed when
  // it leaves while the first stays.
  const b2 = await connected(newPusher(cfg.port, "bob"));
  const cb2 = watch(b2, "presence-room");
  await succeeded(cb2);
  const b2View = members(cb2.members);
  await sleep(QUIET_MS);
  b2.unsubscribe("presence-room");
  await sleep(QUIET_MS);
  const afterSecondLeft = ca.log.length;
  b.unsubscribe("presence-room");
  await until(() => count(ca, "pusher:member_removed") === 1, "bob removed");
  await sleep(QUIET_MS);
  return {
    a: ca.log,
    afterSecondLeft,
    bView,
    b2View,
    aView: members(ca.members),
    sent,
    typing,
    echoed,
    errors: [...a.errors, ...b.errors, ...b2.errors],
  };
};

scenarios.clientEvents = async () => {
  const a = await connected(newPusher(cfg.port, "ada"));
  const b = await connected(newPusher(cfg.port, "bob"));
  const ca = watch(a, "private-chat");
  const cb = watch(b, "private-chat");
  await succeeded(ca);
  await succeeded(cb);
  ca.trigger("client-hello", { text: "hi bob" });
  await until(() => eventsOf(cb).length === 1, "ada's client event");
  // Not allowed on a public channel: hubbub answers pusher:error, nobody gets it.
  const pa = watch(a, "lobby");
  const pb = watch(b, "lobby");
  await succeeded(pa);
  await succeeded(pb);
  pa.trigger("client-shout", { text: "HELLO" });
  await until(() => a.errors.length > 0, "the refusal of a public client event");
  await sleep(QUIET_MS);
  return {
    a: eventsOf(ca),
    b: eventsOf(cb),
    publicB: eventsOf(pb),
    errors: a.errors,
    state: a.connection.state,
  };
};

scenarios.encrypted = async () => {
  const a = await connected(newPusher(cfg.port, "ada"));
  const ch = watch(a, "private-encrypted-vault");
  await succeeded(ch);
  await trigger({ channels: ["private-encrypted-vault"], event: "secret", data: { gold: 24, note: "é" } });
  await until(() => eventsOf(ch).length === 1, "the decrypted event");
  return { events: eventsOf(ch), errors: a.errors };
};

scenarios.cache = async () => {
  const a = await connected(newPusher(cfg.port, "ada"));
  const first = watch(a, "cache-prices");
  await until(() => count(first, "pusher:cache_miss") === 1, "cache miss");
  await trigger({ channels: ["cache-prices"], event: "price", data: { v: 1 } });
  await trigger({ channels: ["cache-prices"], event: "price", data: { v: 2 } });
  await until(() => eventsOf(first).length === 2, "two prices");
  const b = await connected(newPusher(cfg.port, "bob"));
  const late = watch(b, "cache-prices");
  await until(() => eventsOf(late).length === 1, "the kept price");
  // An authorized cache channel keeps its last event too.
  await trigger({ channels: ["private-cache-stock"], event: "level", data: { left: 3 } });
  const stock = watch(b, "private-cache-stock");
  await until(() => eventsOf(stock).length === 1, "the kept stock level");
  await sleep(QUIET_MS);
  return { first: first.log, late: late.log, stock: stock.log };
};

scenarios.signin = async () => {
  const a = await connected(newPusher(cfg.port, "carol"));
  const a2 = await connected(newPusher(cfg.port, "carol"));
  const other = await connected(newPusher(cfg.port, "dave"));
  const got = { a: [], a2: [], other: [] };
  const signinErrors = [];
  for (const [name, p] of [["a", a], ["a2", a2], ["other", other]]) {
    p.user.bind("notice", (data) => got[name].push(data));
    p.user.bind("pusher:signin_error", (e) => signinErrors.push(e));
  }
  a.signin();
  a2.signin();
  other.signin();
  await until(
    () => [a, a2, other].every((p) => p.user.user_data && p.user.serverToUserChannel?.subscribed),
    "sign-in and the server-to-user channel",
  );
  await trigger({ user: "carol", event: "notice", data: { text: "for carol" } });
  await trigger({ user: "dave", event: "notice", data: { text: "for dave" } });
  await until(() => got.a.length === 1 && got.a2.length === 1 && got.other.length === 1, "notices");
  await sleep(QUIET_MS);
  return {
    userData: a.user.user_data,
    channel: a.user.serverToUserChannel.name,
    got,
    signinErrors,
    errors: [...a.errors, ...a2.errors, ...other.errors],
  };
};

scenarios.cluster = async () => {
  const [portA, portB] = cfg.cluster;
  const backend = cfg.clusterBackend;
  const t0 = Date.now();
  const marks = {};
  const mark = (name) => (marks[name] = Date.now() - t0);
  const stamped = (ch) => {
    ch.stamped = [];
    ch.bind_global((event, data) => ch.stamped.push({ event, data, at: Date.now() - t0 }));
    return ch;
  };
  const wa = await connected(newPusher(portA, "watcher-a", { backend }));
  const wb = await connected(newPusher(portB, "watcher-b", { backend }));
  const oa = stamped(watch(wa, "presence-lobby"));
  await succeeded(oa);
  const ob = stamped(watch(wb, "presence-lobby"));
  await succeeded(ob);
  await until(() => count(oa, "pusher:member_added") === 1, "watcher-b on node A");
  // bob's first tab on node A, his second on node B.
  const tab1 = await connected(newPusher(portA, "bob", { backend }));
  const t1 = watch(tab1, "presence-lobby");
  await succeeded(t1);
  mark("tab1");
  await until(() => count(oa, "pusher:member_added") === 2 && count(ob, "pusher:member_added") === 1, "bob added");
  const tab2 = await connected(newPusher(portB, "bob", { backend }));
  const t2 = watch(tab2, "presence-lobby");
  await succeeded(t2);
  mark("tab2");
  const tab2View = members(t2.members);
  await sleep(QUIET_MS);
  // A client event from node A reaches node B, with its user; a server event sent through
  // node A reaches node B's members too.
  const waves = [];
  ob.bind("client-wave", (data, meta) => waves.push({ data, meta }));
  oa.trigger("client-wave", { hi: "from a" });
  await trigger({ channels: ["presence-lobby"], event: "announce", data: { n: 1 } }, backend);
  await until(() => waves.length === 1 && eventsOf(t2, "announce").length === 1, "cross-node events");
  // The first tab goes away: bob is still there (tab 2).
  tab1.disconnect();
  mark("tab1Gone");
  await sleep(QUIET_MS * 2);
  mark("tab2Leaves");
  tab2.disconnect();
  await until(
    () => count(oa, "pusher:member_removed") === 1 && count(ob, "pusher:member_removed") === 1,
    "bob removed",
  );
  await sleep(QUIET_MS);
  const pick = (ch) => ch.stamped.filter((e) => e.event.startsWith("pusher:member_"));
  return {
    marks,
    a: pick(oa),
    b: pick(ob),
    tab2View,
    waves,
    announce: eventsOf(t2, "announce"),
    errors: [...wa.errors, ...wb.errors, ...tab1.errors, ...tab2.errors],
  };
};

scenarios.shared = async () => {
  const p = await connected(newPusher(cfg.port, "ada", { key: cfg.sharedKey, backend: cfg.sharedBackend }));
  const news = watch(p, "news");
  await succeeded(news);
  const centrifuge = new Centrifuge(`ws://127.0.0.1:${cfg.port}/connection/websocket`, {
    minReconnectDelay: 100,
  });
  const pubs = [];
  const sub = centrifuge.newSubscription("shared:news");
  sub.on("publication", (ctx) => pubs.push({ data: ctx.data, tags: ctx.tags ?? null }));
  // The unmapped app's channels are apart: no Centrifugo client may subscribe to them.
  const apart = centrifuge.newSubscription(`pusher-${cfg.appId}:news`);
  const apartErrors = [];
  apart.on("error", (ctx) => apartErrors.push({ type: ctx.type, code: ctx.error?.code ?? null }));
  apart.on("unsubscribed", (ctx) => apartErrors.push({ unsubscribed: ctx.code }));
  try {
    centrifuge.connect();
    sub.subscribe();
    apart.subscribe();
    await sub.ready(STEP_MS);
    await until(() => apartErrors.length > 0, "the refusal of an unmapped app's channel");
    await sub.publish({ text: "from centrifugo" });
    await until(() => eventsOf(news).length === 1, "the Centrifugo publication on the Pusher side");
    await trigger({ channels: ["news"], event: "headline", data: { text: "from pusher" } }, cfg.sharedBackend);
    await until(() => pubs.length >= 1 && eventsOf(news).length === 2, "the Pusher event on both sides");
    await sleep(QUIET_MS);
    return { pusher: eventsOf(news), centrifugo: pubs, apart: apartErrors, errors: p.errors };
  } finally {
    centrifuge.disconnect();
  }
};

// -- main ------------------------------------------------------------------------------

const only = cfg.only ?? Object.keys(scenarios);
for (const name of only) {
  opened = [];
  const deadline = cfg.scenarioMs ?? 20000;
  let timer;
  try {
    const detail = await Promise.race([
      scenarios[name](),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`scenario took over ${deadline} ms`)), deadline);
      }),
    ]);
    console.log(JSON.stringify({ scenario: name, ok: true, detail }));
  } catch (e) {
    console.log(JSON.stringify({ scenario: name, ok: false, error: String(e?.stack ?? e) }));
  } finally {
    clearTimeout(timer);
    for (const p of opened) p.disconnect();
  }
}
console.log(JSON.stringify({ done: true }));
process.exit(0);
