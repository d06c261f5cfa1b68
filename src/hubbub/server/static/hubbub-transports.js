/*
 * hubbub-transports.js: the transports of hubbub.js (imported by it; serve both files side
 * by side): a WebSocket, and Centrifugo's emulation over HTTP streaming or SSE with the
 * client's commands POSTed to the emulation endpoint. No dependencies.
 */

// -- transports -------------------------------------------------------------------------
//
// Each transport object makes one connection and reports through `events`: onOpen() (a
// WebSocket is open: the connect command can go), onMessage(data) (one or more replies,
// "\n"-separated), onClose(code, reason) (at most once, and never after close()).
// open(connect) starts it (the emulated ones carry the connect command in the request that
// opens their stream; a WebSocket sends it after onOpen), send(text) writes commands,
// close() ends it without a word, connected(result) hands it the connect result. A transport
// that cannot be made throws from its maker or from open().

export const WEBSOCKET = "websocket";
export const ABNORMAL = 1006; // what a stream that fails or ends without a disconnect push is taken for

function webSocketTransport(endpoint, options, events) {
  let ws = null;
  return {
    open() {
      ws = new (options.websocket || globalThis.WebSocket)(endpoint);
      ws.binaryType = "arraybuffer";
      let opened = false;
      ws.onopen = () => {
        opened = true;
        events.onOpen();
      };
      ws.onmessage = (ev) => events.onMessage(ev.data);
      ws.onclose = (ev) => events.onClose(ev.code, ev.reason);
      // Browsers follow an error with a close event; Node 20 does not when the handshake fails.
      ws.onerror = () => opened || events.onClose(ABNORMAL, "connection failed");
    },
    send(text) {
      if (ws && ws.readyState === 1) ws.send(text);
    },
    connected() {},
    close() {
      if (!ws) return;
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
      try {
        ws.close(1000);
      } catch {
        // already closed
      }
    },
  };
}

const fetcher = (options) => options.fetch || globalThis.fetch;
const absolute = (url) => new URL(url, globalThis.document?.baseURI);

/** The client's half of an emulated transport: commands POSTed to the emulation endpoint for
 * the session of the connect reply (given to connected(result)). One request at a time, so
 * that commands reach the server in the order they were written (lines written meanwhile go
 * together in the next); a request that fails or is refused ends the transport. */
function emulationSender(endpoint, options, fail) {
  const url = new URL(options.emulationEndpoint, absolute(endpoint)).href;
  const post = fetcher(options);
  const pending = [];
  let busy = false;
  const sender = {
    session: null,
    closed: false,
    send(text) {
      if (!sender.session || sender.closed) return;
      pending.push(text);
      if (!busy) pump();
    },
  };
  async function pump() {
    busy = true;
    while (pending.length && !sender.closed) {
      const { session, node } = sender.session;
      const body = JSON.stringify({ session, node, data: pending.splice(0).join("\n") });
      try {
        const response = await post(url, {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body,
          mode: "cors",
          credentials: "same-origin",
        });
        if (!response.ok) throw new Error(`HTTP ${response.status}`);
      } catch (error) {
        return fail(`emulation request failed: ${error.message}`);
      }
    }
    busy = false;
  }
  return sender;
}

/** Shared by the emulated transports: the sender, and close() / end() that stop both halves. */
function emulated(endpoint, options, events, stop) {
  const t = {
    end(code, reason) {
      if (t.closed) return;
      t.close();
      events.onClose(code, reason);
    },
    close() {
      t.closed = sender.closed = true;
      stop();
    },
    send: (text) => sender.send(text),
    connected: ({ session, node }) => (sender.session = { session, node }),
    closed: false,
  };
  const sender = emulationSender(endpoint, options, (reason) => t.end(ABNORMAL, reason));
  return t;
}

/** POST the connect command to /connection/http_stream; the response streams JSON lines. */
function httpStreamTransport(endpoint, options, events) {
  const abort = new AbortController();
  const t = emulated(endpoint, options, events, () => abort.abort());
  t.open = (connect) => {
    const url = absolute(endpoint).href;
    read(url, connect).then(
      () => t.end(ABNORMAL, "stream ended"),
      (error) => t.end(ABNORMAL, `stream failed: ${error.message}`),
    );
  };
  async function read(url, connect) {
    const response = await fetcher(options)(url, {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: connect,
      mode: "cors",
      credentials: "same-origin",
      signal: abort.signal,
    });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { done, value } = await reader.read();
      if (done || t.closed) return;
      buffer += decoder.decode(value, { stream: true });
      const end = buffer.lastIndexOf("\n");
      if (end < 0) continue;
      const lines = buffer.slice(0, end);
      buffer = buffer.slice(end + 1);
      events.onMessage(lines);
    }
  }
  return t;
}

/** GET /connection/sse?cf_connect=<connect command> with an EventSource, an event per reply. */
function sseTransport(endpoint, options, events) {
  let source = null;
  const t = emulated(endpoint, options, events, () => source?.close());
  t.open = (connect) => {
    const url = absolute(endpoint);
    url.searchParams.set("cf_connect", connect);
    source = new (options.eventsource || globalThis.EventSource)(url.href);
    source.onmessage = (ev) => t.closed || events.onMessage(ev.data);
    // An EventSource would reconnect by itself after an error, with the old connect command.
    source.onerror = () => t.end(ABNORMAL, "connection closed");
  };
  return t;
}

/** What each transport needs of the runtime, its maker, and whether it is emulated. */
export const TRANSPORTS = {
  websocket: {
    supported: (o) => Boolean(o.websocket || globalThis.WebSocket),
    make: webSocketTransport,
  },
  http_stream: {
    supported: (o) =>
      Boolean(fetcher(o) && globalThis.ReadableStream && globalThis.AbortController),
    make: httpStreamTransport,
    emulated: true,
  },
  sse: {
    supported: (o) => Boolean(fetcher(o) && (o.eventsource || globalThis.EventSource)),
    make: sseTransport,
    emulated: true,
  },
};
