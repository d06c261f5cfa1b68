// Shared bits of the hubbub.js tests: the server's address, HS256 tokens, the server API, a
// TCP proxy that can cut or stall connections, and small waiting helpers.
import crypto from "node:crypto";
import net from "node:net";
import { afterEach } from "node:test";

import { Hubbub } from "../../src/hubbub/server/static/hubbub.js";

export { Hubbub, HubbubError, errorCodes } from "../../src/hubbub/server/static/hubbub.js";
/** The module under test, relative to this directory. */
export const MODULE = "../../src/hubbub/server/static/hubbub.js";

export const HTTP = process.env.HUBBUB_URL;
export const SECRET = process.env.HUBBUB_SECRET;
export const API_KEY = process.env.HUBBUB_API_KEY;
if (!HTTP || !SECRET || !API_KEY) {
  throw new Error("set HUBBUB_URL (http base URL), HUBBUB_SECRET and HUBBUB_API_KEY");
}
export const PORT = Number(new URL(HTTP).port);
export const WS = wsUrl(PORT);

export function wsUrl(port) {
  return `ws://127.0.0.1:${port}/connection/websocket`;
}

/** The transport list entry of an emulated transport ("http_stream" or "sse") at `port`. */
export function emulated(transport, port = PORT) {
  return { transport, endpoint: `http://127.0.0.1:${port}/connection/${transport}` };
}

/** Calls the server API and resolves with its result (throws on an error). */
export async function api(method, body) {
  const response = await fetch(`${HTTP}/api/${method}`, {
    method: "POST",
    headers: { "X-API-Key": API_KEY, "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  const reply = await response.json();
  if (!response.ok || reply.error) throw new Error(`${method}: ${JSON.stringify(reply)}`);
  return reply.result;
}

let counter = 0;
/** A channel name no other test uses. */
export const uniqueChannel = (prefix = "js") => `${prefix}-${process.pid}-${++counter}`;

/** An HS256 JWT: a connection token, or a subscription token when `channel` is given. */
export function mint({ sub = "", ttl, channel, channels, info } = {}) {
  const b64 = (obj) => Buffer.from(JSON.stringify(obj)).toString("base64url");
  const now = Math.floor(Date.now() / 1000);
  const claims = { sub, iat: now };
  if (ttl !== undefined) claims.exp = now + ttl;
  if (channel !== undefined) claims.channel = channel;
  if (channels !== undefined) claims.channels = channels;
  if (info !== undefined) claims.info = info;
  const signed = `${b64({ alg: "HS256", typ: "JWT" })}.${b64(claims)}`;
  const signature = crypto.createHmac("sha256", SECRET).update(signed).digest("base64url");
  return `${signed}.${signature}`;
}

// Clients made by client() are disconnected, and proxies closed, after each test.
const clients = [];
const proxies = [];
afterEach(() => {
  for (const c of clients.splice(0)) c.disconnect();
  for (const p of proxies.splice(0)) p.close();
});

/** A new client (not connected yet) that is cleaned up after the test. */
export function client(url = WS, options = {}) {
  const c = new Hubbub(url, { timeout: 5000, ...options });
  clients.push(c);
  return c;
}

/** A connected client. */
export async function connected(url = WS, options = {}) {
  const c = client(url, options);
  c.connect();
  await c.ready(5000);
  return c;
}

/** Resolves with the next `name` event of `target` that satisfies `accept`. */
export function nextEvent(target, name, accept = () => true, timeout = 5000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      target.off(name, listener);
      reject(new Error(`no ${name} event within ${timeout} ms`));
    }, timeout);
    const listener = (event) => {
      if (!accept(event)) return;
      clearTimeout(timer);
      target.off(name, listener);
      resolve(event);
    };
    target.on(name, listener);
  });
}

/** Polls `check` until it returns true. */
export async function until(check, timeout = 5000, what = "condition") {
  const deadline = Date.now() + timeout;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * A TCP proxy in front of the server. Modes: "pass" forwards; "refuse" accepts new
 * connections and resets them at once; "stall" forwards nothing (a dead link that stays open).
 * cut() resets every open connection. `accepts` holds the time of each accepted connection.
 */
export async function startProxy(targetPort = PORT) {
  const pairs = new Set();
  const proxy = { mode: "pass", accepts: [], port: 0 };
  const reset = (socket) => (socket.resetAndDestroy ? socket.resetAndDestroy() : socket.destroy());
  const server = net.createServer((downstream) => {
    proxy.accepts.push(Date.now());
    if (proxy.mode === "refuse") return reset(downstream);
    const upstream = net.connect(targetPort, "127.0.0.1");
    const pair = { downstream, upstream };
    pairs.add(pair);
    const end = () => {
      pairs.delete(pair);
      downstream.destroy();
      upstream.destroy();
    };
    downstream.on("data", (chunk) => proxy.mode !== "stall" && upstream.write(chunk));
    upstream.on("data", (chunk) => proxy.mode !== "stall" && downstream.write(chunk));
    for (const socket of [downstream, upstream]) {
      socket.on("close", end);
      socket.on("error", end);
    }
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  proxy.port = server.address().port;
  proxy.url = wsUrl(proxy.port);
  proxy.cut = () => {
    for (const { downstream, upstream } of pairs) {
      reset(downstream);
      upstream.destroy();
    }
    pairs.clear();
  };
  proxy.close = () => {
    proxy.cut();
    server.close();
  };
  proxies.push(proxy);
  return proxy;
}
