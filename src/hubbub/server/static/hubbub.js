/*
 * hubbub.js: a small client for hubbub's channel protocol (the JSON variant of the
 * Centrifugo client protocol) over WebSocket, or over HTTP streaming or SSE where a WebSocket
 * cannot get through. A plain ES module with no dependencies (its transports are in
 * hubbub-transports.js beside it), for browsers and Node 20+ (global WebSocket and fetch, or
 * pass them as options.websocket, options.fetch).
 *
 *   import { Hubbub } from "/static/hubbub.js";
 *   const client = new Hubbub("ws://localhost:8765/connection/websocket");
 *   const sub = client.newSubscription("chat:lobby");
 *   sub.on("publication", ({ data }) => console.log(data));
 *   sub.subscribe();
 *   client.connect();
 *
 * Instead of one URL, a list of transports to try in order, as centrifuge-js takes it:
 *
 *   new Hubbub([
 *     { transport: "websocket", endpoint: "wss://rt.example.com/connection/websocket" },
 *     { transport: "http_stream", endpoint: "https://rt.example.com/connection/http_stream" },
 *     { transport: "sse", endpoint: "https://rt.example.com/connection/sse" },
 *   ], { emulationEndpoint: "https://rt.example.com/emulation" });
 *
 * http_stream and sse carry the server's replies on a stream and the client's commands in
 * POST requests to emulationEndpoint (default "/emulation", resolved against the transport's
 * endpoint). The first time, the client moves on to the next transport whenever one closes
 * before it carried a connection (a WebSocket open, a connect reply, or a close code of the
 * server's), at once; once all failed it starts again from the first, with backoff. Once one
 * worked, it keeps to it. sse needs an EventSource (the browser's, or options.eventsource);
 * without one it is skipped.
 *
 * The client answers the server's pings and reconnects when they stop, reconnects with
 * exponential backoff and full jitter, refreshes expiring tokens, and resubscribes after a
 * reconnect, recovering the publications it missed. hubbub.d.ts describes the API.
 */

import { ABNORMAL, TRANSPORTS, WEBSOCKET } from "./hubbub-transports.js";

/** Codes of errors made by the client itself (the server's codes are 100 and up). */
export const errorCodes = Object.freeze({
  timeout: 1,
  connectionClosed: 2,
  disconnected: 3,
  unsubscribed: 4,
  badArgument: 5,
});

/** Every failed call rejects with one of these. */
export class HubbubError extends Error {
  constructor(code, message, temporary = false) {
    super(message);
    this.name = "HubbubError";
    this.code = code;
    this.temporary = temporary;
  }
}

const TEMPORARY_ERRORS = new Set([100, 111]);
const TOKEN_EXPIRED = 109;

function serverError(error) {
  const temporary = Boolean(error.temporary) || TEMPORARY_ERRORS.has(error.code);
  return new HubbubError(error.code, error.message || "", temporary);
}

/** Close codes 3500-3999 and 4500-4999 tell the client not to reconnect. */
const isTerminal = (code) => (code >= 3500 && code < 4000) || (code >= 4500 && code < 5000);

/** Exponential backoff with full jitter: uniform between min and min * 2^attempt (<= max). */
function backoff(attempt, min, max) {
  const cap = Math.min(max, min * 2 ** Math.min(attempt, 30));
  return min + Math.random() * Math.max(0, cap - min);
}

/** When to refresh a token that expires in ttl seconds: halfway, at most 10 s before. */
const refreshDelay = (ttl) => Math.max(0, ttl * 1000 - Math.min(ttl * 500, 10000));

const clientInfo = (i) =>
  i && { client: i.client, user: i.user, connInfo: i.conn_info, chanInfo: i.chan_info };

const publication = (channel, p) => ({
  channel,
  data: p.data,
  offset: p.offset || 0,
  info: clientInfo(p.info),
  tags: p.tags,
  time: p.time,
});

/** Moves a stream position past a publication; false when it was seen already. */
function advance(position, pub) {
  if (!position || !pub.offset) return true;
  if (pub.offset <= position.offset) return false;
  position.offset = pub.offset;
  return true;
}

/** The constructor's url: a string (a WebSocket) or centrifuge-js's list of transports. */
function transportList(url) {
  const list = typeof url === "string" ? [{ transport: WEBSOCKET, endpoint: url }] : url;
  if (!Array.isArray(list) || !list.length) {
    throw new HubbubError(errorCodes.badArgument, "url: a string or a list of transports");
  }
  return list.map(({ transport, endpoint } = {}) => {
    if (!(transport in TRANSPORTS) || typeof endpoint !== "string") {
      const known = Object.keys(TRANSPORTS).join(", ");
      throw new HubbubError(errorCodes.badArgument, `transports: {transport: ${known}, endpoint}`);
    }
    const scheme = transport === WEBSOCKET ? [/^http/, "ws"] : [/^ws/, "http"];
    return { transport, endpoint: endpoint.replace(...scheme) };
  });
}

class Emitter {
  constructor() {
    this._listeners = new Map();
  }

  on(name, fn) {
    if (!this._listeners.has(name)) this._listeners.set(name, new Set());
    this._listeners.get(name).add(fn);
    return this;
  }

  /** Removes one listener, or every listener of the event when fn is left out. */
  off(name, fn) {
    if (fn === undefined) this._listeners.delete(name);
    else this._listeners.get(name)?.delete(fn);
    return this;
  }

  _emit(name, event) {
    for (const fn of [...(this._listeners.get(name) || [])]) {
      try {
        fn(event);
      } catch (err) {
        queueMicrotask(() => {
          throw err; // a listener's bug is reported, but does not break the client
        });
      }
    }
  }

  /** Changes state and emits "state" ({from, to}), then `name` with `event`. */
  _setState(to, name, event) {
    const from = this.state;
    if (from === to) return false;
    this.state = to;
    this._emit("state", { from, to });
    this._emit(name, event);
    return true;
  }

  /** Resolves once in state `want`; rejects on state `fail` or after `timeout` ms. */
  _when(want, fail, timeout) {
    if (this.state === want) return Promise.resolve();
    if (this.state === fail) return Promise.reject(new HubbubError(errorCodes[fail], fail));
    return new Promise((resolve, reject) => {
      let timer = null;
      const done = (settle, value) => {
        clearTimeout(timer);
        this.off("state", onState);
        settle(value);
      };
      const onState = ({ to }) => {
        if (to === want) done(resolve);
        else if (to === fail) done(reject, new HubbubError(errorCodes[fail], fail));
      };
      const timeoutError = new HubbubError(errorCodes.timeout, "timeout", true);
      if (timeout) timer = setTimeout(() => done(reject, timeoutError), timeout);
      this.on("state", onState);
    });
  }
}

export class Hubbub extends Emitter {
  constructor(url, options = {}) {
    super();
    this._transports = transportList(url);
    this._index = 0; // the transport in use, or tried next
    this._worked = false; // one of them carried a connection: keep to it
    this._triedAll = false; // the first round through the transports is over
    this.transport = this._transports[0].transport;
    this.url = this._transports[0].endpoint;
    this.options = {
      minReconnectDelay: 500,
      maxReconnectDelay: 20000,
      timeout: 10000,
      pingSlack: 10000,
      emulationEndpoint: "/emulation",
      ...options,
    };
    this.state = "disconnected";
    this._token = options.token ?? null;
    this._subs = new Map(); // channel -> Subscription
    this._serverSubs = new Map(); // channel -> {epoch, offset, recoverable}
    this._calls = new Map(); // id -> call sent and waiting for its reply
    this._queue = []; // calls waiting for the connection
    this._outbox = []; // JSON lines to write in the next frame
    this._nextId = 1;
    this._transport = null; // the transport object of the current connection
    this._conn = 0; // bumped whenever a connection attempt starts or ends
    this._attempt = 0;
    this._timers = { reconnect: null, connect: null, ping: null, refresh: null };
    this._offline = false;
    this._network = null;
  }

  // -- connection ---------------------------------------------------------------------

  connect() {
    if (this.state !== "disconnected") return;
    this._watchNetwork(true);
    this._setState("connecting", "connecting", { code: 0, reason: "connect called" });
    this._attempt = 0;
    this._open();
  }

  disconnect() {
    if (this.state !== "disconnected") this._disconnect(0, "disconnect called");
  }

  /** Resolves once connected; rejects when disconnected or after `timeout` ms. */
  ready(timeout) { return this._when("connected", "disconnected", timeout); }

  async _open() {
    this._closeTransport();
    clearTimeout(this._timers.connect);
    const conn = ++this._conn;
    if (this.state !== "connecting" || this._offline) return;
    if (this._token == null && this.options.getToken) {
      let token;
      try {
        token = await this.options.getToken({});
      } catch (error) {
        if (conn !== this._conn) return;
        this._emit("error", { type: "token", error });
        return this._lose(1, "getToken failed");
      }
      if (conn !== this._conn) return;
      if (!token) return this._disconnect(101, "unauthorized");
      this._token = token;
    }
    const found = this._findTransport(this._index);
    if (!found) {
      const error = new HubbubError(errorCodes.badArgument, "none of the transports is available");
      this._emit("error", { type: "transport", error });
      return this._lose(1, error.message);
    }
    this._index = found.index;
    this._triedAll ||= found.wrapped;
    const { transport, endpoint } = this._transports[found.index];
    this.transport = transport;
    this.url = endpoint;
    const current = (fn) => (...args) => conn === this._conn && fn(...args);
    const events = {
      onOpen: current(() => {
        this._worked = true; // as centrifuge-js: an open WebSocket is a working transport
        this._sendConnect(conn, (line) => this._write(line));
      }),
      onMessage: current((data) => this._onFrame(data)),
      onClose: current((code, reason) => this._onClose(code, reason)),
    };
    const connectTimeout = () => this._lose(5, "connect timeout", this._nextTransport());
    this._timers.connect = setTimeout(connectTimeout, this.options.timeout);
    try {
      this._transport = TRANSPORTS[transport].make(endpoint, this.options, events);
      let first;
      if (TRANSPORTS[transport].emulated) this._sendConnect(conn, (line) => (first = line));
      this._transport.open(first);
    } catch (error) {
      this._emit("error", { type: "transport", error });
      this._lose(1, `cannot open ${transport}`, this._nextTransport());
    }
  }

  /** The first transport at or after `start` (round the list) that this runtime can make;
   * `wrapped` when the search passed the end of the list. */
  _findTransport(start) {
    const n = this._transports.length;
    for (let k = 0; k < n; k++) {
      const index = (start + k) % n;
      const { transport } = this._transports[index];
      if (TRANSPORTS[transport].supported(this.options)) return { index, wrapped: start + k >= n };
    }
    return null;
  }

  /** The transport closed before it ever carried a connection: move on to the next one.
   * True when that one is to be tried at once (the first round through the list). */
  _nextTransport() {
    if (this._worked) return false;
    const found = this._findTransport(this._index + 1);
    if (!found) return false;
    this._index = found.index;
    this._triedAll ||= found.wrapped;
    return !this._triedAll;
  }

  /** Sends the connect command with `write` (the emulated transports take it as the body of
   * the request that opens their stream). */
  _sendConnect(conn, write) {
    const params = {};
    if (this._token) params.token = this._token;
    if (this.options.data !== undefined) params.data = this.options.data;
    if (this.options.name) params.name = this.options.name;
    const subs = {};
    for (const [channel, pos] of this._serverSubs) {
      if (pos.recoverable) subs[channel] = { recover: true, epoch: pos.epoch, offset: pos.offset };
    }
    if (Object.keys(subs).length) params.subs = subs;
    this._call("connect", params, write).then(
      (result) => conn === this._conn && this._onConnected(result),
      (error) => conn === this._conn && this._onConnectError(error),
    );
  }

  _onConnected(result) {
    clearTimeout(this._timers.connect);
    this._worked = true;
    this._transport.connected(result);
    this._attempt = 0;
    this._pong = Boolean(result.pong);
    this._pingWindow = result.ping > 0 ? result.ping * 1000 + this.options.pingSlack : 0;
    this._lastSeen = Date.now();
    this._watchPing();
    if (result.expires) this._scheduleRefresh(result.ttl);
    // Commands queued while connecting go out first, then the listeners hear of it.
    const from = this.state;
    this.state = "connected";
    for (const call of this._queue.splice(0)) this._send(call);
    this._emit("state", { from, to: "connected" });
    const { client, data } = result;
    this._emit("connected", { client, data, transport: this.transport });
    if (this.state !== "connected") return; // a listener disconnected
    this._serverSubsFromConnect(result.subs || {});
    for (const sub of this._subs.values()) if (sub.state === "subscribing") sub._send();
  }

  _onConnectError(error) {
    if (error.code !== errorCodes.timeout) this._worked = true; // the server answered
    if (error.code === TOKEN_EXPIRED) {
      if (!this.options.getToken) return this._disconnect(TOKEN_EXPIRED, error.message);
      this._token = null;
    } else if (!error.temporary) {
      return this._disconnect(error.code, error.message);
    }
    this._emit("error", { type: "connect", error });
    this._lose(error.code, error.message);
  }

  /** The transport closed, or the server sent a disconnect push (then ends the stream). */
  _onClose(code, reason) {
    reason = reason || "connection closed";
    if (code >= 3000) this._worked = true; // the server's code: the transport works
    if (isTerminal(code)) return this._disconnect(code, reason);
    if (code === 3005 && this.options.getToken) this._token = null; // connection expired
    this._lose(code, reason, this._nextTransport());
  }

  /** The connection is gone but the client goes on: back to connecting, then reconnect
   * (`now`: at once, with the next transport of the first round). */
  _lose(code, reason, now = false) {
    if (this.state === "disconnected") return;
    this._drop(new HubbubError(errorCodes.connectionClosed, reason, true));
    for (const sub of this._subs.values()) sub._lost(code, reason);
    this._setState("connecting", "connecting", { code, reason });
    clearTimeout(this._timers.reconnect);
    if (this._offline) return; // the online event reconnects
    const { minReconnectDelay, maxReconnectDelay } = this.options;
    const delay = now ? 0 : backoff(this._attempt++, minReconnectDelay, maxReconnectDelay);
    this._timers.reconnect = setTimeout(() => this._open(), delay);
  }

  /** The end: no reconnect until connect() is called again. */
  _disconnect(code, reason) {
    this._drop(new HubbubError(errorCodes.disconnected, reason));
    clearTimeout(this._timers.reconnect);
    this._watchNetwork(false);
    const error = new HubbubError(errorCodes.disconnected, reason);
    for (const call of this._queue.splice(0)) this._fail(call, error);
    for (const sub of this._subs.values()) sub._lost(code, reason);
    this._setState("disconnected", "disconnected", { code, reason });
  }

  /** Closes the transport and fails the calls waiting for a reply on it. */
  _drop(error) {
    this._conn++;
    this._closeTransport();
    for (const name of ["connect", "ping", "refresh"]) clearTimeout(this._timers[name]);
    this._outbox = [];
    const calls = [...this._calls.values()];
    this._calls.clear();
    for (const call of calls) this._fail(call, error);
  }

  _closeTransport() {
    const transport = this._transport;
    this._transport = null;
    transport?.close();
  }

  /** The server pings every `ping` seconds; without any frame for that long (plus slack), the
   * connection is taken for dead. */
  _watchPing() {
    clearTimeout(this._timers.ping);
    if (!this._pingWindow) return;
    const left = this._lastSeen + this._pingWindow - Date.now();
    if (left <= 0) return this._lose(2, "no ping");
    this._timers.ping = setTimeout(() => this._watchPing(), left);
  }

  _scheduleRefresh(ttl) {
    clearTimeout(this._timers.refresh);
    this._timers.refresh = setTimeout(() => this._refresh(), refreshDelay(ttl));
  }

  async _refresh() {
    const conn = this._conn;
    if (!this.options.getToken) return; // the server will close the connection (3005)
    try {
      const token = await this.options.getToken({});
      if (conn !== this._conn) return;
      if (!token) return this._disconnect(101, "unauthorized");
      this._token = token;
      const result = await this._call("refresh", { token });
      if (conn === this._conn && result.expires) this._scheduleRefresh(result.ttl);
    } catch (error) {
      if (conn !== this._conn) return;
      this._emit("error", { type: "refresh", error });
      const delay = backoff(1, this.options.minReconnectDelay, this.options.maxReconnectDelay);
      this._timers.refresh = setTimeout(() => this._refresh(), delay);
    }
  }

  /** Reacts to the browser's online/offline events (when there is a window). */
  _watchNetwork(on) {
    const w = globalThis.window;
    if (!w || typeof w.addEventListener !== "function") return;
    if (on && !this._network) {
      this._network = {
        offline: () => {
          this._offline = true;
          this._lose(3, "offline");
        },
        online: () => {
          this._offline = false;
          if (this.state !== "connecting") return;
          clearTimeout(this._timers.reconnect);
          this._attempt = 0;
          this._open();
        },
      };
      for (const [name, fn] of Object.entries(this._network)) w.addEventListener(name, fn);
    } else if (!on && this._network) {
      for (const [name, fn] of Object.entries(this._network)) w.removeEventListener(name, fn);
      this._network = null;
      this._offline = false;
    }
  }

  // -- frames -------------------------------------------------------------------------

  _onFrame(data) {
    this._lastSeen = Date.now();
    const conn = this._conn;
    const text = typeof data === "string" ? data : new TextDecoder().decode(data);
    for (const line of text.split("\n")) {
      if (conn !== this._conn) return; // the connection ended (a disconnect push, a listener)
      if (!line.trim()) continue;
      let msg;
      try {
        msg = JSON.parse(line);
      } catch (error) {
        this._emit("error", { type: "protocol", error });
        continue;
      }
      if (msg.id) this._onReply(msg);
      else if (msg.push) this._onPush(msg.push);
      else if (this._pong && Object.keys(msg).length === 0) this._write("{}"); // ping
    }
  }

  _onReply(msg) {
    const call = this._calls.get(msg.id);
    if (!call) return;
    this._calls.delete(msg.id);
    clearTimeout(call.timer);
    if (msg.error) call.reject(serverError(msg.error));
    else call.resolve(msg[call.method] || {});
  }

  _onPush(push) {
    const { channel } = push;
    const sub = this._subs.get(channel);
    const serverSub = this._serverSubs.get(channel);
    if (push.pub) {
      if (sub && sub.state === "subscribed") sub._onPublication(push.pub);
      else if (serverSub && advance(serverSub, push.pub)) {
        this._emit("publication", publication(channel, push.pub));
      }
    } else if (push.join || push.leave) {
      const kind = push.join ? "join" : "leave";
      const event = { channel, info: clientInfo((push.join || push.leave).info) };
      if (sub && sub.state === "subscribed") sub._emit(kind, event);
      else if (serverSub) this._emit(kind, event);
    } else if (push.unsubscribe) {
      const { code, reason } = push.unsubscribe;
      if (sub && sub.state !== "unsubscribed") sub._onUnsubscribe(code, reason);
      else if (serverSub) {
        this._serverSubs.delete(channel);
        this._emit("unsubscribed", { channel, code, reason });
      }
    } else if (push.subscribe) {
      this._serverSubscribed(channel, push.subscribe);
    } else if (push.message) {
      this._emit("message", { data: push.message.data });
    } else if (push.disconnect) {
      // What the emulated transports get instead of a close code: the same, then the end.
      this._onClose(push.disconnect.code, push.disconnect.reason);
    }
  }

  /** Server-side subscriptions in a connect reply: the new list replaces the old. */
  _serverSubsFromConnect(subs) {
    for (const channel of [...this._serverSubs.keys()]) {
      if (channel in subs) continue;
      this._serverSubs.delete(channel);
      this._emit("unsubscribed", { channel, code: 0, reason: "not in the connect reply" });
    }
    for (const [channel, result] of Object.entries(subs)) this._serverSubscribed(channel, result);
  }

  _serverSubscribed(channel, result) {
    const old = this._serverSubs.get(channel);
    const pos = { epoch: result.epoch || "", offset: result.offset || 0 };
    this._serverSubs.set(channel, { ...pos, recoverable: Boolean(result.recoverable) });
    this._emit("subscribed", subscribedEvent(channel, result));
    const seen = old && old.epoch === pos.epoch ? { offset: old.offset } : null;
    for (const pub of result.publications || []) {
      if (advance(seen, pub)) this._emit("publication", publication(channel, pub));
    }
  }

  // -- calls --------------------------------------------------------------------------

  /** Sends a command and resolves with its result. While connecting the command waits in a
   * queue; with `write` it goes at once, through `write` (the connect command). */
  _call(method, params, write) {
    return new Promise((resolve, reject) => {
      if (this.state === "disconnected") {
        return reject(new HubbubError(errorCodes.disconnected, "client is disconnected"));
      }
      const call = { id: this._nextId++, method, params, resolve, reject };
      call.timer = setTimeout(() => {
        this._calls.delete(call.id);
        this._queue = this._queue.filter((c) => c !== call);
        reject(new HubbubError(errorCodes.timeout, `${method} timed out`, true));
      }, this.options.timeout);
      if (write || this.state === "connected") this._send(call, write);
      else this._queue.push(call);
    });
  }

  _send(call, write = (line) => this._write(line)) {
    if (call.method === "send") {
      clearTimeout(call.timer);
      write(JSON.stringify({ send: call.params }));
      return call.resolve();
    }
    this._calls.set(call.id, call);
    write(JSON.stringify({ id: call.id, [call.method]: call.params }));
  }

  _fail(call, error) {
    clearTimeout(call.timer);
    call.reject(error);
  }

  /** Lines written in the same task go out together, in one frame. */
  _write(line) {
    this._outbox.push(line);
    if (this._outbox.length === 1) queueMicrotask(() => this._flush());
  }

  _flush() {
    const lines = this._outbox;
    this._outbox = [];
    if (!lines.length || !this._transport) return;
    try {
      this._transport.send(lines.join("\n"));
    } catch (error) {
      this._emit("error", { type: "transport", error });
    }
  }

  publish(channel, data) {
    return this._call("publish", { channel, data }).then(() => ({}));
  }

  async history(channel, { limit, since, reverse } = {}) {
    const params = { channel };
    if (limit !== undefined) params.limit = limit;
    if (since) params.since = { offset: since.offset, epoch: since.epoch };
    if (reverse) params.reverse = true;
    const result = await this._call("history", params);
    return {
      publications: (result.publications || []).map((p) => publication(channel, p)),
      offset: result.offset || 0,
      epoch: result.epoch || "",
    };
  }

  async presence(channel) {
    const result = await this._call("presence", { channel });
    const clients = {};
    for (const [id, info] of Object.entries(result.presence || {})) clients[id] = clientInfo(info);
    return { clients };
  }

  async presenceStats(channel) {
    const result = await this._call("presence_stats", { channel });
    return { numClients: result.num_clients || 0, numUsers: result.num_users || 0 };
  }

  async rpc(method, data) {
    const result = await this._call("rpc", { method, data });
    return result.data;
  }

  /** A message for the server's on_message hook; there is no reply. */
  send(data) {
    return this._call("send", { data });
  }

  // -- subscriptions ------------------------------------------------------------------

  newSubscription(channel, options = {}) {
    if (this._subs.has(channel)) {
      throw new HubbubError(errorCodes.badArgument, `a subscription to ${channel} exists already`);
    }
    const sub = new Subscription(this, channel, options);
    this._subs.set(channel, sub);
    return sub;
  }

  getSubscription(channel) { return this._subs.get(channel) || null; }

  removeSubscription(sub) {
    if (!sub) return;
    sub.unsubscribe();
    if (this._subs.get(sub.channel) === sub) this._subs.delete(sub.channel);
  }
}

function subscribedEvent(channel, result) {
  const positioned = result.epoch !== undefined;
  return {
    channel,
    recovered: Boolean(result.recovered),
    wasRecovering: Boolean(result.was_recovering),
    data: result.data,
    streamPosition: positioned ? { offset: result.offset || 0, epoch: result.epoch } : undefined,
  };
}

export class Subscription extends Emitter {
  constructor(client, channel, options = {}) {
    super();
    this.client = client;
    this.channel = channel;
    this.options = { joinLeave: true, recoverable: true, ...options };
    this.state = "unsubscribed";
    this._token = options.token ?? null;
    this._position = null; // {epoch, offset} of the last publication seen
    this._gen = 0; // bumped whenever the subscription changes state, to drop stale replies
    this._attempt = 0;
    this._timers = { retry: null, refresh: null };
  }

  subscribe() {
    if (this.state !== "unsubscribed") return;
    this._setState("subscribing", "subscribing", { code: 0, reason: "subscribe called" });
    if (this.client.state === "connected") this._send();
  }

  unsubscribe() {
    if (this.state === "unsubscribed") return;
    if (this.client.state === "connected") {
      this.client._call("unsubscribe", { channel: this.channel }).catch(() => {});
    }
    this._end(0, "unsubscribe called");
  }

  /** Resolves once subscribed; rejects when unsubscribed or after `timeout` ms. */
  ready(timeout) { return this._when("subscribed", "unsubscribed", timeout); }

  // Calls about this subscription's channel (see the client's methods of the same names).
  publish(data) { return this.client.publish(this.channel, data); }
  history(options) { return this.client.history(this.channel, options); }
  presence() { return this.client.presence(this.channel); }
  presenceStats() { return this.client.presenceStats(this.channel); }

  _end(code, reason) {
    this._reset();
    this._position = null;
    this._setState("unsubscribed", "unsubscribed", { code, reason });
  }

  _reset() {
    this._gen++;
    clearTimeout(this._timers.retry);
    clearTimeout(this._timers.refresh);
  }

  /** The connection is gone: wait for the next one (which resubscribes). */
  _lost(code, reason) {
    this._reset();
    if (this.state === "subscribed") this._setState("subscribing", "subscribing", { code, reason });
  }

  async _send() {
    this._reset();
    const gen = this._gen;
    const { getToken, data, joinLeave, recoverable } = this.options;
    if (this._token == null && getToken) {
      let token;
      try {
        token = await getToken({ channel: this.channel });
      } catch (error) {
        if (gen !== this._gen) return;
        this._emit("error", { type: "token", error });
        return this._retry();
      }
      if (gen !== this._gen) return;
      if (!token) return this._end(103, "permission denied");
      this._token = token;
    }
    if (this.client.state !== "connected") return; // sent again once connected
    const params = { channel: this.channel };
    if (this._token) params.token = this._token;
    if (data !== undefined) params.data = data;
    if (joinLeave) params.join_leave = true;
    if (recoverable) {
      params.recoverable = true;
      if (this._position) Object.assign(params, { recover: true, ...this._position });
    }
    let result;
    try {
      result = await this.client._call("subscribe", params);
    } catch (error) {
      if (gen === this._gen) this._onSubscribeError(error);
      return;
    }
    if (gen === this._gen) this._onSubscribed(result);
  }

  _onSubscribeError(error) {
    const { code } = error;
    if (code === errorCodes.connectionClosed || code === errorCodes.disconnected) return;
    this._emit("error", { type: "subscribe", error });
    if (code === errorCodes.timeout) {
      // The server may yet subscribe us: only a fresh connection is certain to be clean.
      return this.client._lose(4, "subscribe timeout");
    }
    if (code === TOKEN_EXPIRED && this.options.getToken) {
      this._token = null;
      return this._retry();
    }
    if (error.temporary) return this._retry();
    this._end(code, error.message);
  }

  _retry() {
    const { minReconnectDelay, maxReconnectDelay } = this.client.options;
    const delay = backoff(this._attempt++, minReconnectDelay, maxReconnectDelay);
    clearTimeout(this._timers.retry);
    this._timers.retry = setTimeout(() => {
      if (this.state === "subscribing" && this.client.state === "connected") this._send();
    }, delay);
  }

  _onSubscribed(result) {
    this._attempt = 0;
    if (result.expires) this._scheduleRefresh(result.ttl);
    const seen = this._position && this._position.epoch === result.epoch ? this._position : null;
    const positioned = result.epoch !== undefined;
    this._position = positioned ? { epoch: result.epoch, offset: seen?.offset || 0 } : null;
    this._setState("subscribed", "subscribed", subscribedEvent(this.channel, result));
    for (const pub of result.publications || []) {
      if (this.state === "subscribed") this._onPublication(pub);
    }
    if (this._position && this.state === "subscribed") {
      this._position.offset = Math.max(this._position.offset, result.offset || 0);
    }
  }

  _onPublication(pub) {
    if (advance(this._position, pub)) this._emit("publication", publication(this.channel, pub));
  }

  /** An unsubscribe push: codes below 2500 end the subscription, the others resubscribe. */
  _onUnsubscribe(code, reason) {
    if (code < 2500) return this._end(code, reason);
    if (code === 2501 && this.options.getToken) this._token = null; // token expired
    this._reset();
    this._setState("subscribing", "subscribing", { code, reason });
    if (this.client.state === "connected") this._send();
  }

  _scheduleRefresh(ttl) {
    clearTimeout(this._timers.refresh);
    this._timers.refresh = setTimeout(() => this._refresh(), refreshDelay(ttl));
  }

  async _refresh() {
    const gen = this._gen;
    const { getToken } = this.options;
    if (!getToken) return; // the server unsubscribes with 2501 at expiry
    try {
      const token = await getToken({ channel: this.channel });
      if (gen !== this._gen) return;
      this._token = token;
      const result = await this.client._call("sub_refresh", { channel: this.channel, token });
      if (gen === this._gen && result.expires) this._scheduleRefresh(result.ttl);
    } catch (error) {
      if (gen !== this._gen) return;
      this._emit("error", { type: "refresh", error });
      const { minReconnectDelay, maxReconnectDelay } = this.client.options;
      const delay = backoff(1, minReconnectDelay, maxReconnectDelay);
      this._timers.refresh = setTimeout(() => this._refresh(), delay);
    }
  }
}
