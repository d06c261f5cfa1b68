// Type declarations for hubbub.js, the client of hubbub's channel protocol (the JSON variant of
// the Centrifugo client protocol). Hand-written; keep in step with hubbub.js.

/** Codes of errors made by the client itself; the server's codes are 100 and up. */
export declare const errorCodes: Readonly<{
  /** No reply within `timeout` (temporary). */
  timeout: 1;
  /** The connection was lost before the reply came (temporary). */
  connectionClosed: 2;
  /** The client is (or became) disconnected. */
  disconnected: 3;
  /** The subscription is (or became) unsubscribed. */
  unsubscribed: 4;
  /** A misuse, e.g. a second subscription to the same channel. */
  badArgument: 5;
}>;

/** What every failed call rejects with. */
export declare class HubbubError extends Error {
  constructor(code: number, message: string, temporary?: boolean);
  readonly name: "HubbubError";
  /** A server error code (100-112, or an application's >= 400) or one of `errorCodes`. */
  code: number;
  /** True when trying again later may succeed (errors 100 and 111, timeouts, lost connections). */
  temporary: boolean;
}

export type ClientState = "disconnected" | "connecting" | "connected";
export type SubscriptionState = "unsubscribed" | "subscribing" | "subscribed";

/** Who a publication, join, leave or presence entry is about. */
export interface ClientInfo {
  client: string;
  user: string;
  connInfo?: unknown;
  chanInfo?: unknown;
}

export interface StreamPosition {
  offset: number;
  epoch: string;
}

export interface PublicationContext {
  channel: string;
  data: any;
  /** 0 in channels without history. */
  offset: number;
  info?: ClientInfo;
  tags?: Record<string, string>;
  /** When the server took the publication, in milliseconds since 1970 (hubbub sends it for
   * every publication, live or from history). */
  time?: number;
}

export interface StateContext<S> {
  from: S;
  to: S;
}

/**
 * Why the state changed. `code` is 0 when the application asked ("connect called", "disconnect
 * called", "subscribe called", "unsubscribe called"); the WebSocket close code (e.g. 1006, or
 * the server's 3000-4999), the code of the server's disconnect push on http_stream and sse
 * (1006 when their stream fails or ends without one), or the server's error or unsubscribe
 * code when the server decided; else one of the client's own: 1 getToken failed or no
 * transport could be made, 2 no ping, 3 offline, 4 subscribe timeout, 5 connect timeout.
 */
export interface ReasonContext {
  code: number;
  reason: string;
}

export interface ConnectedContext {
  /** The client id the server gave this connection. */
  client: string;
  /** The `data` of the connect reply (from the server's on_connect hook), if any. */
  data?: any;
  /** The transport that carries the connection. */
  transport: TransportName;
}

export interface SubscribedContext {
  channel: string;
  /** True when every publication missed since the last position was delivered. */
  recovered: boolean;
  /** True when the subscribe asked to recover from a position. */
  wasRecovering: boolean;
  /** The `data` of the subscribe reply (from the server's on_subscribe hook), if any. */
  data?: any;
  /** The channel's position, in channels with history. */
  streamPosition?: StreamPosition;
}

export interface ErrorContext {
  /** What failed: "token", "transport", "connect", "refresh", "protocol" or "subscribe". */
  type: string;
  error: Error;
}

export interface ServerSubscriptionContext {
  channel: string;
}

export interface JoinLeaveContext {
  channel: string;
  info: ClientInfo;
}

export interface HistoryOptions {
  /** How many publications at most (0, the default: only the position; at most 1000). */
  limit?: number;
  /** Only publications after this position (error 112 when it cannot be continued). */
  since?: StreamPosition;
  /** Newest first. */
  reverse?: boolean;
}

export interface HistoryResult {
  publications: PublicationContext[];
  offset: number;
  epoch: string;
}

export interface PresenceResult {
  /** Keyed by client id. */
  clients: Record<string, ClientInfo>;
}

export interface PresenceStatsResult {
  numClients: number;
  numUsers: number;
}

/** How a connection is carried: `http_stream` and `sse` are the server's bidirectional
 * emulation (replies on a stream, commands POSTed to `emulationEndpoint`). */
export type TransportName = "websocket" | "http_stream" | "sse";

/** One entry of the list of transports the constructor takes (centrifuge-js's form). */
export interface TransportEndpoint {
  transport: TransportName;
  /** ws(s)://HOST/connection/websocket, http(s)://HOST/connection/http_stream or
   * http(s)://HOST/connection/sse (an http(s) URL is turned into ws(s) for a WebSocket and
   * the other way round for the others; relative ones resolve against the page). */
  endpoint: string;
}

export interface HubbubOptions {
  /** A connection token (JWT); without one and without getToken the connection is anonymous. */
  token?: string;
  /** Returns a connection token: called when there is none, after error 109 (token expired)
   * and before the token expires. An empty result means "not allowed": the client
   * disconnects (code 101). */
  getToken?: (ctx: {}) => Promise<string>;
  /** `data` of the connect command (for the server's on_connect hook). */
  data?: any;
  /** `name` of the connect command. */
  name?: string;
  /** Reconnect delays grow from this (ms, default 500)... */
  minReconnectDelay?: number;
  /** ...doubling up to this (ms, default 20000), each drawn at random between min and its cap. */
  maxReconnectDelay?: number;
  /** Timeout of every call and of connecting (ms, default 10000). */
  timeout?: number;
  /** How long past the server's ping interval a missing ping is waited for (ms, default
   * 10000) before the connection is taken for dead and reconnected. */
  pingSlack?: number;
  /** The WebSocket constructor (default: the global WebSocket). */
  websocket?: typeof WebSocket;
  /** Where http_stream and sse POST the client's commands (default "/emulation"), resolved
   * against the transport's endpoint (so the default is on the endpoint's host). */
  emulationEndpoint?: string;
  /** The fetch function of http_stream and of the commands of both emulated transports
   * (default: the global fetch). */
  fetch?: typeof fetch;
  /** The EventSource constructor of sse (default: the global EventSource; with none, as in
   * Node 20, sse is skipped). */
  eventsource?: typeof EventSource;
}

export interface SubscriptionOptions {
  /** A subscription token (JWT) for channels that need one. */
  token?: string;
  /** Returns a subscription token: called when there is none, after error 109, when the server
   * unsubscribes with 2501 (token expired) and before the token expires. An empty result ends
   * the subscription (code 103). */
  getToken?: (ctx: { channel: string }) => Promise<string>;
  /** `data` of the subscribe command (for the server's on_subscribe hook). */
  data?: any;
  /** Ask for join and leave events (default true). */
  joinLeave?: boolean;
  /** Ask for a position and recover missed publications after a reconnect (default true). */
  recoverable?: boolean;
}

interface ClientEvents {
  state: StateContext<ClientState>;
  connecting: ReasonContext;
  connected: ConnectedContext;
  disconnected: ReasonContext;
  error: ErrorContext;
  /** Publications of server-side subscriptions. */
  publication: PublicationContext;
  /** Server-side subscriptions (the token's or the on_connect hook's channels). */
  subscribed: ServerSubscriptionContext & SubscribedContext;
  unsubscribed: ServerSubscriptionContext & ReasonContext;
  join: JoinLeaveContext;
  leave: JoinLeaveContext;
  /** A message push from the server. */
  message: { data: any };
}

interface SubscriptionEvents {
  state: StateContext<SubscriptionState>;
  subscribing: ReasonContext;
  subscribed: SubscribedContext;
  unsubscribed: ReasonContext;
  publication: PublicationContext;
  join: JoinLeaveContext;
  leave: JoinLeaveContext;
  error: ErrorContext;
}

/**
 * A connection to hubbub at ws(s)://HOST:PORT/connection/websocket (an http(s) URL is turned
 * into ws(s)), or over the first of a list of transports that works: while none has carried
 * a connection yet, the client moves on to the next one whenever one closes first (a
 * WebSocket that did not open, an emulated stream that brought no connect reply), at once
 * through the first round and then with backoff; once one has (a WebSocket open, a connect
 * reply, a close code of the server's), it keeps to it for every reconnect. Transports the
 * runtime cannot make are skipped. "state" is emitted before the event of the new state.
 */
export declare class Hubbub {
  constructor(url: string | TransportEndpoint[], options?: HubbubOptions);
  /** The endpoint of the transport in use, or being tried. */
  readonly url: string;
  /** The transport in use, or being tried. */
  readonly transport: TransportName;
  readonly state: ClientState;

  /** Starts connecting (and reconnecting until disconnect() or a terminal close code). */
  connect(): void;
  /** Closes the connection; subscriptions wait in "subscribing" for the next connect(). */
  disconnect(): void;
  /** Resolves once connected; rejects when disconnected or after `timeout` ms. */
  ready(timeout?: number): Promise<void>;

  on<K extends keyof ClientEvents>(name: K, fn: (ctx: ClientEvents[K]) => void): this;
  /** Removes `fn`, or every listener of `name` when `fn` is left out. */
  off<K extends keyof ClientEvents>(name: K, fn?: (ctx: ClientEvents[K]) => void): this;

  /** A subscription in state "unsubscribed"; throws when the channel has one already. */
  newSubscription(channel: string, options?: SubscriptionOptions): Subscription;
  getSubscription(channel: string): Subscription | null;
  /** Unsubscribes and forgets the subscription. */
  removeSubscription(sub: Subscription | null): void;

  // Calls made while connecting wait for the connection; all reject with HubbubError.
  publish(channel: string, data: any): Promise<{}>;
  history(channel: string, options?: HistoryOptions): Promise<HistoryResult>;
  presence(channel: string): Promise<PresenceResult>;
  presenceStats(channel: string): Promise<PresenceStatsResult>;
  /** Calls the server's RPC handler `method` and resolves with its result (error 104 when
   * there is no such method). */
  rpc(method: string, data?: any): Promise<any>;
  /** A message for the server's on_message hook; resolves once written, there is no reply. */
  send(data: any): Promise<void>;
}

/**
 * A subscription to one channel. After a reconnect it resubscribes by itself, recovering the
 * publications missed since the last one it saw.
 */
export declare class Subscription {
  readonly client: Hubbub;
  readonly channel: string;
  readonly state: SubscriptionState;

  subscribe(): void;
  unsubscribe(): void;
  /** Resolves once subscribed; rejects when unsubscribed or after `timeout` ms. */
  ready(timeout?: number): Promise<void>;

  on<K extends keyof SubscriptionEvents>(name: K, fn: (ctx: SubscriptionEvents[K]) => void): this;
  off<K extends keyof SubscriptionEvents>(name: K, fn?: (ctx: SubscriptionEvents[K]) => void): this;

  publish(data: any): Promise<{}>;
  history(options?: HistoryOptions): Promise<HistoryResult>;
  presence(): Promise<PresenceResult>;
  presenceStats(): Promise<PresenceStatsResult>;
}
