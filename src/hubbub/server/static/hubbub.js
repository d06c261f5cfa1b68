/*
 * hubbub.js: a small client for hubbub's channel protocol (the JSON variant of the
 * Centrifugo client protocol) over WebSocket. A plain ES module with no dependencies, for
 * browsers and Node 20+ (global WebSocket, or pass one as options.websocket).
 *
 *   import { Hubbub } from "/static/hubbub.js";
 *   const client = new Hubbub("ws://localhost:8765/connection/websocket");
 *   const sub = client.newSubscription("chat:lobby");
 *   sub.on("publication", ({ data }) => console.log(data));
 *   sub.subscribe();
 *   client.connect();
 *
 * The client answers the server's pings and reconnects when they stop, reconnects with
 * exponential backoff and full jitter, refreshes expiring tokens, and resubscribes after a
 * reconnect, recovering the publications it missed. hubbub.d.ts describes the API.
 */

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
});

/** Moves a stream position past a publication; false when it was seen already. */
function advance(position, pub) {
  if (!position || !pub.offset) return true;
  if (pub.offset <= position.offset) return false;
  position.offset = pub.offset;
  return true;
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
    this.url = url.replace(/^http/, "ws");
    this.options = {
      minReconnectDelay: 500,
      maxReconnectDelay: 20000,
      timeout: 10000,
      pingSlack: 10000,
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
    this._ws = null;
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
    this._closeSocket();
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
    let ws;
    try {
      ws = new (this.options.websocket || globalThis.WebSocket)(this.url);
    } catch (error) {
      this._emit("error", { type: "transport", error });
      return this._lose(1, "cannot open a WebSocket");
    }
    this._ws = ws;
    ws.binaryType = "arraybuffer";
    this._timers.connect = setTimeout(() => this._lose(5, "connect timeout"), this.options.timeout);
    let opened = false;
    ws.onopen = () => {
      opened = true;
      if (conn === this._conn) this._sendConnect(conn);
    };
    ws.onmessage = (ev) => {
      if (conn === this._conn) this._onFrame(ev.data);
    };
    ws.onclose = (ev) => {
      if (conn === this._conn) this._onClose(ev.code, ev.reason);
    };
    ws.onerror = () => {
      // Browsers follow an error with a close event; Node 20 does not when the handshake fails.
      if (conn === this._conn && !opened) this._onClose(1006, "connection failed");
    };
  }

  _sendConnect(conn) {
    const params = {};
    if (this._token) params.token = this._token;
    if (this.options.data !== undefined) params.data = this.options.data;
    if (this.options.name) params.name = this.options.name;
    const subs = {};
    for (const [channel, pos] of this._serverSubs) {
      if (pos.recoverable) subs[channel] = { recover: true, epoch: pos.epoch, offset: pos.offset };
    }
    if (Object.keys(subs).length) params.subs = subs;
    this._call("connect", params, true).then(
      (result) => conn === this._conn && this._onConnected(result),
      (error) => conn === this._conn && this._onConnectError(error),
    );
  }

  _onConnected(result) {
    clearTimeout(this._timers.connect);
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
    this._emit("connected", { client: result.client, data: result.data });
    if (this.state !== "connected") return; // a listener disconnected
    this._serverSubsFromConnect(result.subs || {});
    for (const sub of this._subs.values()) if (sub.state === "subscribing") sub._send();
  }

  _onConnectError(error) {
    if (error.code === TOKEN_EXPIRED) {
      if (!this.options.getToken) return this._disconnect(TOKEN_EXPIRED, error.message);
      this._token = null;
    } else if (!error.temporary) {
      return this._disconnect(error.code, error.message);
    }
    this._emit("error", { type: "connect", error });
    this._lose(error.code, error.message);
  }

  _onClose(code, reason) {
    reason = reason || "connection closed";
    if (isTerminal(code)) return this._disconnect(code, reason);
    if (code === 3005 && this.options.getToken) this._token = null; // connection expired
    this._lose(code, reason);
  }

  /** The connection is gone but the client goes on: back to connecting, then reconnect. */
  _lose(code, reason) {
    if (this.state === "disconnected") return;
    this._drop(new HubbubError(errorCodes.connectionClosed, reason, true));
    for (const sub of this._subs.values()) sub._lost(code, reason);
    this._setState("connecting", "connecting", { code, reason });
    clearTimeout(this._timers.reconnect);
    if (this._offline) return; // the online event reconnects
    const { minReconnectDelay, maxReconnectDelay } = this.options;
    const delay = backoff(this._attempt++, minReconnectDelay, maxReconnectDelay);
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

  /** Closes the socket and fails the calls waiting for a reply on it. */
  _drop(error) {
    this._conn++;
    this._closeSocket();
    for (const name of ["connect", "ping", "refresh"]) clearTimeout(this._timers[name]);
    this._outbox = [];
    const calls = [...this._calls.values()];
    this._calls.clear();
    for (const call of calls) this._fail(call, error);
  }

  _closeSocket() {
    const ws = this._ws;
    this._ws = null;
    if (!ws) return;
    ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
    try {
      ws.close(1000);
    } catch {
      // already closed
    }
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
    const text = typeof data === "string" ? data : new TextDecoder().decode(data);
    for (const line of text.split("\n")) {
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
   * queue; `now` sends it at once (the connect command). */
  _call(method, params, now = false) {
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
      if (now || this.state === "connected") this._send(call);
      else this._queue.push(call);
    });
  }

  _send(call) {
    if (call.method === "send") {
      clearTimeout(call.timer);
      this._write(JSON.stringify({ send: call.params }));
      return call.resolve();
    }
    this._calls.set(call.id, call);
    this._write(JSON.stringify({ id: call.id, [call.method]: call.params }));
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
    if (!lines.length || !this._ws || this._ws.readyState !== 1) return;
    try {
      this._ws.send(lines.join("\n"));
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
