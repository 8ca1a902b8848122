// The Aether V3 WebSocket client: connect(), typed handlers, heartbeats, recovery, reconnects.

import {
  FIELD_PATTERNS,
  type ErrorMessage,
  type HeartbeatMessage,
  type MsgType,
  type PresenceEventMessage,
  type PresenceListMessage,
  type ServerMessage,
  type WSMessageV3,
} from "./generated.js";
import { backoffDelay, shouldRetry, type ReconnectOptions } from "./policy.js";
import type {
  CmdMessage,
  MsgMessage,
  Position,
  Positions,
  PresenceEvent,
  ResyncReason,
  StreamName,
} from "./derived-types.js";

// ---------------------------------------------------------------------------------------------
// Public types

/**
 * The part of the standard WebSocket API this client uses. Browsers' `WebSocket`, Node 22's
 * global one and the `ws` package's class all fit.
 */
export interface WebSocketLike {
  readonly readyState: number;
  binaryType?: string;
  // Handlers take `any`: each runtime types its events differently.
  onopen: ((event: any) => unknown) | null;
  onmessage: ((event: any) => unknown) | null;
  onclose: ((event: any) => unknown) | null;
  onerror: ((event: any) => unknown) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;

/** Timer functions (injectable for tests). Defaults to the global ones. */
export interface Timers {
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
  setInterval(callback: () => void, ms: number): unknown;
  clearInterval(handle: unknown): void;
}

export interface ConnectOptions {
  /**
   * Base URL of the gateway (`ws://host:8000`, `wss://host/prefix`; `http(s)://` is turned into
   * `ws(s)://`), or several: each reconnect moves on to the next one.
   */
  url: string | readonly string[];
  groupId: string;
  clientId: string;
  /** A JWT, or a function returning one (called before every connect). */
  token?: string | (() => string | Promise<string>);
  /**
   * How the token travels: `?token=` (default; the gateway strips it before logging), or the
   * subprotocols `aether.bearer, TOKEN` (kept out of URLs altogether). A refused token shows
   * as 4501 either way: the gateway echoes `aether.bearer` on a refusal too.
   */
  tokenTransport?: "protocol" | "query";
  /** The WebSocket class; required where there is no global one (Node 20: the `ws` package). */
  WebSocket?: WebSocketConstructor;
  /** Heartbeat period; 0 turns periodic heartbeats off. Default 45000 (guide: 30–60 s). */
  heartbeatMs?: number;
  /**
   * What `send.*` does while not connected: hold up to this many frames and send them, in
   * order, once the next connection is answered; or, with 0 (the default), refuse them.
   */
  queue?: number;
  /** Backoff tunables, or `false` to never reconnect. */
  reconnect?: false | ReconnectOptions;
  /** Positions to recover from on the first connection (e.g. saved in sessionStorage). */
  recover?: Positions;
  /** A connection not open after this long is abandoned (and retried). Default 10000. */
  openTimeoutMs?: number;
  /** How long `members()` waits for the answer. Default 5000. */
  membersTimeoutMs?: number;
  /** Random source of the jitter, in [0, 1). Default `Math.random`. */
  random?: () => number;
  /** Timer functions. Default: the global ones. */
  timers?: Timers;
}

/** The fields an application sets on a message; the gateway sets the rest. */
export type SendBody = Pick<WSMessageV3, "msg" | "cmd" | "payload"> & {
  /** Default: `"cmd"` when `cmd` is given, else `"msg"`. */
  msg_type?: Extract<MsgType, "msg" | "cmd">;
};

/** A text (sent as `msg`) or a body. */
export type SendInput = string | SendBody;

/**
 * `sent`: written to the open socket. `queued`: held until the next connection is answered.
 * `refused`: not connected and no queue (or the queue is full), or the client is closed.
 */
export type SendResult = "sent" | "queued" | "refused";

export interface Sender {
  /** Every connection of your group, on every node, this one included. */
  group(body: SendInput): SendResult;
  /** Every connection of `toId` (any group); not this connection. */
  direct(toId: string, body: SendInput): SendResult;
  /** Every connection on the platform, this one included. */
  broadcast(body: SendInput): SendResult;
  /** This connection only (never leaves the node). */
  echo(body: SendInput): SendResult;
}

/** `connecting` → `open` (socket open) → `ready` (the server answered) → `reconnecting` ... `closed`. */
export type ClientState = "connecting" | "open" | "ready" | "reconnecting" | "closed";

export interface OpenInfo {
  /** The URL connected to (a query token shown as `token=*`). */
  url: string;
  /** false on the first connection. */
  reconnect: boolean;
  /** The positions sent in `?recover=` (empty: none). */
  recover: Positions;
}

export interface CloseInfo {
  code: number;
  reason: string;
  /** In how many ms the next attempt starts; null when the client stops. */
  reconnectInMs: number | null;
}

export interface ResyncInfo {
  reason: ResyncReason;
  /** The one stream that may have lost messages; undefined: all of them may have. */
  stream?: StreamName;
  /** true for this client's own notice (`no-position`), false for the server's. */
  local: boolean;
}

export interface ClientStats {
  /** Sockets opened. */
  opens: number;
  /** Positioned messages received twice (dropped, not delivered again). */
  duplicates: number;
  /** Positioned messages that skipped offsets on the same epoch. */
  gaps: number;
  /** Frames that were not JSON objects, or objects outside the schema it could not read (ignored). */
  unreadable: number;
}

/** Handler arguments per event name. */
export interface ClientEvents {
  msg: [message: MsgMessage];
  cmd: [message: CmdMessage];
  presence: [event: PresenceEvent, message: PresenceEventMessage];
  members: [clients: string[], message: PresenceListMessage];
  heartbeat: [message: HeartbeatMessage];
  error: [message: ErrorMessage];
  resync: [info: ResyncInfo];
  open: [info: OpenInfo];
  close: [info: CloseInfo];
}

export type EventName = keyof ClientEvents;
export type Handler<K extends EventName> = (...args: ClientEvents[K]) => void;

export interface AetherClient {
  readonly groupId: string;
  readonly clientId: string;
  readonly state: ClientState;
  readonly send: Sender;
  /** Add a handler; returns a function that removes it. */
  on<K extends EventName>(event: K, handler: Handler<K>): () => void;
  /** Messages may have been lost (server notice or a reconnect without a position): refetch. */
  onResync(handler: Handler<"resync">): () => void;
  /**
   * The group's members, sorted: sends a presence echo (once connected, if not now) and resolves
   * with the next member list the server sends. Rejects after `timeoutMs` (e.g. during a Redis
   * outage, when the gateway answers `publish-failed` instead) or on close().
   */
  members(timeoutMs?: number): Promise<string[]>;
  /** Resolves once a connection is answered by the server (at once if it is now). */
  ready(): Promise<void>;
  /** The last position of each stream, e.g. to keep in sessionStorage. */
  positions(): Positions;
  stats(): ClientStats;
  /** Stop: no reconnect, no timer left. Resolves when the socket has closed. */
  close(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// Helpers

const VISION_ID = new RegExp(FIELD_PATTERNS["from_id"] ?? "^(?!-?\\d+$)[A-Za-z0-9_-]{1,64}$");
const STREAM_OF: Partial<Record<string, StreamName>> = {
  group: "group",
  direct: "client",
  broadcast: "broadcast",
};
const STREAMS: readonly StreamName[] = ["group", "client", "broadcast"];
const OPEN = 1;
const BEARER = "aether.bearer";

export function isVisionId(id: unknown): id is string {
  return typeof id === "string" && VISION_ID.test(id);
}

/** `group:e:o,client:e:o,...` for the streams that have a position. */
export function recoverParam(positions: Positions): string {
  return STREAMS.filter((s) => positions[s])
    .map((s) => `${s}:${positions[s]!.epoch}:${positions[s]!.offset}`)
    .join(",");
}

/** The socket URL for one base URL. */
export function socketUrl(
  base: string,
  groupId: string,
  clientId: string,
  positions: Positions = {},
  token?: string,
): string {
  const url = new URL(base);
  if (url.protocol === "http:") url.protocol = "ws:";
  else if (url.protocol === "https:") url.protocol = "wss:";
  if (url.protocol !== "ws:" && url.protocol !== "wss:") {
    throw new TypeError(`url must be ws://, wss://, http:// or https://: ${base}`);
  }
  if (url.pathname.includes("/v3/ws/")) {
    throw new TypeError(`url must be the gateway's base URL, without /v3/ws/...: ${base}`);
  }
  url.pathname = `${url.pathname.replace(/\/+$/, "")}/v3/ws/group/${groupId}/client/${clientId}`;
  const query = url.search.replace(/^\?/, "").split("&").filter(Boolean);
  const recover = recoverParam(positions);
  if (recover) query.push(`recover=${recover}`); // epochs and offsets need no escaping
  if (token !== undefined) query.push(`token=${encodeURIComponent(token)}`);
  url.search = query.length ? `?${query.join("&")}` : "";
  url.hash = "";
  return url.toString();
}

function frameOf(target: WSMessageV3["target"], input: SendInput, toId?: string): WSMessageV3 {
  const body: SendBody = typeof input === "string" ? { msg: input } : input;
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new TypeError("a message is a string or an object");
  }
  const msgType = body.msg_type ?? (body.cmd != null ? "cmd" : "msg");
  const frame: WSMessageV3 = { msg_type: msgType, target };
  if (toId !== undefined) frame.to_id = toId;
  if (body.cmd != null) frame.cmd = body.cmd;
  if (body.msg != null) frame.msg = body.msg;
  if (body.payload != null) frame.payload = body.payload;
  return frame;
}

function textOf(data: unknown): string | undefined {
  if (typeof data === "string") return data;
  const Decoder = (globalThis as { TextDecoder?: new () => { decode(b: unknown): string } })
    .TextDecoder;
  if (!Decoder) return undefined;
  if (data instanceof ArrayBuffer || ArrayBuffer.isView(data)) return new Decoder().decode(data);
  return undefined;
}

function rethrowLater(error: unknown): void {
  queueMicrotask(() => {
    throw error;
  });
}

const globalTimers: Timers = {
  setTimeout: (callback, ms) => globalThis.setTimeout(callback, ms),
  clearTimeout: (handle) => globalThis.clearTimeout(handle as ReturnType<typeof setTimeout>),
  setInterval: (callback, ms) => globalThis.setInterval(callback, ms),
  clearInterval: (handle) => globalThis.clearInterval(handle as ReturnType<typeof setInterval>),
};

interface MembersWaiter {
  resolve(clients: string[]): void;
  reject(error: Error): void;
  timer: unknown;
  done: boolean;
}

// ---------------------------------------------------------------------------------------------
// The client

class Client implements AetherClient {
  readonly groupId: string;
  readonly clientId: string;
  readonly send: Sender;

  private readonly urls: readonly string[];
  private readonly Ctor: WebSocketConstructor;
  private readonly timers: Timers;
  private readonly random: () => number;
  private readonly heartbeatMs: number;
  private readonly queueMax: number;
  private readonly reconnectOptions: false | ReconnectOptions;
  private readonly openTimeoutMs: number;
  private readonly membersTimeoutMs: number;
  private readonly token: ConnectOptions["token"];
  private readonly tokenTransport: "protocol" | "query";

  private ws: WebSocketLike | null = null;
  private current: ClientState = "connecting";
  private stopped = false;
  private urlIndex = 0;
  private attempt = 0; // failed connections since the last answered one
  private last: Positions;
  private queue: string[] = [];
  private awaitingAnswer = false; // a heartbeat went out and no frame has come since
  private heartbeatTimer: unknown = undefined;
  private reconnectTimer: unknown = undefined;
  private openTimer: unknown = undefined;
  private errorTimer: unknown = undefined;
  private readonly handlers = new Map<EventName, Set<(...args: any[]) => void>>();
  private membersWaiting: MembersWaiter[] = [];
  private membersInflight: MembersWaiter[] = [];
  private readyWaiters: { resolve(): void; reject(error: Error): void }[] = [];
  private closeWaiters: (() => void)[] = [];
  private counters: ClientStats = { opens: 0, duplicates: 0, gaps: 0, unreadable: 0 };

  constructor(options: ConnectOptions) {
    const urls = typeof options.url === "string" ? [options.url] : [...options.url];
    if (urls.length === 0) throw new TypeError("url: give at least one base URL");
    if (!isVisionId(options.groupId)) throw new TypeError(`groupId is not a Vision ID: ${options.groupId}`);
    if (!isVisionId(options.clientId)) throw new TypeError(`clientId is not a Vision ID: ${options.clientId}`);
    for (const url of urls) socketUrl(url, options.groupId, options.clientId); // fail fast
    const Ctor =
      options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (!Ctor) {
      throw new TypeError(
        "no global WebSocket here (Node < 22): pass { WebSocket } from the 'ws' package",
      );
    }
    const queue = options.queue ?? 0;
    if (!Number.isInteger(queue) || queue < 0) throw new TypeError("queue: a whole number ≥ 0");
    const heartbeatMs = options.heartbeatMs ?? 45_000;
    if (!(heartbeatMs >= 0)) throw new TypeError("heartbeatMs: a number ≥ 0");

    this.groupId = options.groupId;
    this.clientId = options.clientId;
    this.urls = urls;
    this.Ctor = Ctor;
    this.timers = options.timers ?? globalTimers;
    this.random = options.random ?? Math.random;
    this.heartbeatMs = heartbeatMs;
    this.queueMax = queue;
    this.reconnectOptions = options.reconnect ?? {};
    this.openTimeoutMs = options.openTimeoutMs ?? 10_000;
    this.membersTimeoutMs = options.membersTimeoutMs ?? 5_000;
    this.token = options.token;
    this.tokenTransport = options.tokenTransport ?? "query";
    this.last = { ...(options.recover ?? {}) };

    this.send = {
      group: (body) => this.write(frameOf("group", body)),
      direct: (toId, body) => {
        if (!isVisionId(toId)) throw new TypeError(`toId is not a Vision ID: ${String(toId)}`);
        return this.write(frameOf("direct", body, toId));
      },
      broadcast: (body) => this.write(frameOf("broadcast", body)),
      echo: (body) => this.write(frameOf("echo", body)),
    };
    void this.open();
  }

  get state(): ClientState {
    return this.current;
  }

  on<K extends EventName>(event: K, handler: Handler<K>): () => void {
    let set = this.handlers.get(event);
    if (!set) this.handlers.set(event, (set = new Set()));
    set.add(handler as (...args: any[]) => void);
    return () => set!.delete(handler as (...args: any[]) => void);
  }

  onResync(handler: Handler<"resync">): () => void {
    return this.on("resync", handler);
  }

  positions(): Positions {
    const copy: Positions = {};
    for (const s of STREAMS) if (this.last[s]) copy[s] = { ...this.last[s]! };
    return copy;
  }

  stats(): ClientStats {
    return { ...this.counters };
  }

  ready(): Promise<void> {
    if (this.current === "ready") return Promise.resolve();
    if (this.stopped) return Promise.reject(new Error("the client is closed"));
    return new Promise((resolve, reject) => this.readyWaiters.push({ resolve, reject }));
  }

  members(timeoutMs: number = this.membersTimeoutMs): Promise<string[]> {
    if (this.stopped) return Promise.reject(new Error("the client is closed"));
    return new Promise((resolve, reject) => {
      const waiter: MembersWaiter = { resolve, reject, timer: undefined, done: false };
      waiter.timer = this.timers.setTimeout(() => {
        waiter.done = true;
        this.membersWaiting = this.membersWaiting.filter((w) => w !== waiter);
        this.membersInflight = this.membersInflight.filter((w) => w !== waiter);
        reject(new Error(`members(): no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      if (this.ws && (this.current === "open" || this.current === "ready")) {
        this.raw({ msg_type: "presence", target: "echo" });
        this.membersInflight.push(waiter);
      } else {
        this.membersWaiting.push(waiter);
      }
    });
  }

  close(): Promise<void> {
    if (this.stopped) {
      return this.ws ? new Promise((resolve) => this.closeWaiters.push(resolve)) : Promise.resolve();
    }
    this.stopped = true;
    this.current = "closed";
    this.clearTimers();
    this.queue = [];
    this.failWaiters(new Error("the client is closed"));
    const ws = this.ws;
    const done = new Promise<void>((resolve) => {
      if (!ws || ws.readyState === 3) resolve();
      else this.closeWaiters.push(resolve);
    });
    if (ws) {
      ws.onopen = null;
      ws.onmessage = null;
      ws.onerror = () => {}; // some runtimes report an error when closing while connecting
      ws.onclose = () => {
        this.ws = null;
        this.closeWaiters.splice(0).forEach((resolve) => resolve());
      };
      try {
        ws.close(1000);
      } catch {
        // already closing
      }
    }
    this.emit("close", { code: 1000, reason: "closed by the client", reconnectInMs: null });
    return done;
  }

  // -- connection ----------------------------------------------------------------------------

  private async open(): Promise<void> {
    this.reconnectTimer = undefined;
    if (this.stopped) return;
    let token: string | undefined;
    try {
      token = typeof this.token === "function" ? await this.token() : this.token;
    } catch (error) {
      if (!this.stopped) this.ended(null, 1006, `the token provider failed: ${String(error)}`);
      return;
    }
    if (this.stopped) return;
    const recover = this.positions();
    const query = this.tokenTransport === "query" ? token : undefined;
    const url = socketUrl(this.urls[this.urlIndex]!, this.groupId, this.clientId, recover, query);
    const protocols = token !== undefined && this.tokenTransport === "protocol" ? [BEARER, token] : undefined;
    let ws: WebSocketLike;
    try {
      ws = protocols ? new this.Ctor(url, protocols) : new this.Ctor(url);
    } catch (error) {
      this.ended(null, 1006, `cannot open a socket: ${String(error)}`);
      return;
    }
    this.ws = ws;
    if ("binaryType" in ws) ws.binaryType = "arraybuffer";
    const reconnect = this.counters.opens > 0;
    this.openTimer = this.timers.setTimeout(() => {
      this.openTimer = undefined;
      this.abandon(ws, 1006, `not open after ${this.openTimeoutMs} ms`);
    }, this.openTimeoutMs);
    ws.onopen = () => {
      if (ws !== this.ws) return;
      this.timers.clearTimeout(this.openTimer);
      this.openTimer = undefined;
      this.counters.opens += 1;
      this.current = "open";
      this.raw({ msg_type: "heartbeat", target: "echo" }); // its echo shows the server serves us
      this.awaitingAnswer = true;
      if (this.heartbeatMs > 0) {
        this.heartbeatTimer = this.timers.setInterval(() => this.beat(ws), this.heartbeatMs);
      }
      for (const waiter of this.membersWaiting.splice(0)) {
        this.raw({ msg_type: "presence", target: "echo" });
        this.membersInflight.push(waiter);
      }
      const shown = url.replace(/([?&]token=)[^&]*/, "$1*");
      this.emit("open", { url: shown, reconnect, recover });
      if (reconnect) {
        // What a stream without a position carried meanwhile is neither replayed nor announced.
        for (const stream of STREAMS) {
          if (!recover[stream] && ws === this.ws) {
            this.emit("resync", { reason: "no-position", stream, local: true });
          }
        }
      }
    };
    ws.onmessage = (event: { data: unknown }) => {
      if (ws === this.ws) this.received(event.data);
    };
    ws.onerror = () => {
      // A close event normally follows, with the real code; some runtimes send none.
      if (ws !== this.ws || this.errorTimer !== undefined) return;
      this.errorTimer = this.timers.setTimeout(() => {
        this.errorTimer = undefined;
        this.abandon(ws, 1006, "connection failed");
      }, 1_000);
    };
    ws.onclose = (event: { code?: number; reason?: string }) => {
      this.ended(ws, event.code ?? 1006, event.reason ?? "");
    };
  }

  private beat(ws: WebSocketLike): void {
    if (ws !== this.ws) return;
    if (this.awaitingAnswer) {
      // Nothing came back since the last heartbeat: the connection is dead without knowing it.
      this.abandon(ws, 1006, `no answer to a heartbeat within ${this.heartbeatMs} ms`);
      return;
    }
    this.raw({ msg_type: "heartbeat", target: "echo" });
    this.awaitingAnswer = true;
  }

  /** Give up on a socket that did not report its end itself. */
  private abandon(ws: WebSocketLike, code: number, reason: string): void {
    if (ws !== this.ws) return;
    try {
      ws.close();
    } catch {
      // not open yet, or already closing
    }
    this.ended(ws, code, reason);
  }

  /** A socket ended (or could not be made: `ws` null). Decide whether and when to retry. */
  private ended(ws: WebSocketLike | null, code: number, reason: string): void {
    if (ws !== this.ws || this.stopped) return;
    if (ws) {
      ws.onopen = null;
      ws.onmessage = null;
      ws.onclose = null;
      ws.onerror = () => {};
    }
    this.ws = null;
    this.clearTimers();
    // Requests on the dead socket will not be answered: ask again on the next one.
    this.membersWaiting = [...this.membersInflight.filter((w) => !w.done), ...this.membersWaiting];
    this.membersInflight = [];
    const retry = this.reconnectOptions !== false && shouldRetry(code, reason, this.reconnectOptions);
    if (!retry) {
      this.stopped = true;
      this.current = "closed";
      this.queue = [];
      this.failWaiters(new Error(`connection closed (${code}${reason ? `: ${reason}` : ""})`));
      this.emit("close", { code, reason, reconnectInMs: null });
      return;
    }
    const delay = backoffDelay(code, this.attempt, this.reconnectOptions || {}, this.random);
    this.attempt += 1;
    this.urlIndex = (this.urlIndex + 1) % this.urls.length;
    this.current = "reconnecting";
    this.reconnectTimer = this.timers.setTimeout(() => void this.open(), delay);
    this.emit("close", { code, reason, reconnectInMs: delay });
  }

  private clearTimers(): void {
    for (const handle of [this.openTimer, this.reconnectTimer, this.errorTimer]) {
      if (handle !== undefined) this.timers.clearTimeout(handle);
    }
    if (this.heartbeatTimer !== undefined) this.timers.clearInterval(this.heartbeatTimer);
    this.openTimer = this.reconnectTimer = this.errorTimer = this.heartbeatTimer = undefined;
  }

  private failWaiters(error: Error): void {
    for (const waiter of [...this.membersInflight, ...this.membersWaiting]) {
      this.timers.clearTimeout(waiter.timer);
      if (!waiter.done) waiter.reject(error);
      waiter.done = true;
    }
    this.membersInflight = [];
    this.membersWaiting = [];
    this.readyWaiters.splice(0).forEach((w) => w.reject(error));
  }

  // -- sending -------------------------------------------------------------------------------

  private raw(frame: WSMessageV3): void {
    this.ws?.send(JSON.stringify(frame));
  }

  private write(frame: WSMessageV3): SendResult {
    if (this.stopped) return "refused";
    const text = JSON.stringify(frame);
    const open = this.ws !== null && this.ws.readyState === OPEN;
    if (this.queueMax === 0) {
      if (!open) return "refused";
      this.ws!.send(text);
      return "sent";
    }
    // With a queue, frames wait until the server has answered the new connection, so that a
    // node that accepts and closes at once (1013) does not swallow them; order is kept.
    if (open && this.current === "ready" && this.queue.length === 0) {
      this.ws!.send(text);
      return "sent";
    }
    if (this.queue.length >= this.queueMax) return "refused";
    this.queue.push(text);
    return "queued";
  }

  // -- receiving -----------------------------------------------------------------------------

  private received(data: unknown): void {
    const text = textOf(data);
    let message: unknown;
    try {
      message = text === undefined ? undefined : JSON.parse(text);
    } catch {
      message = undefined;
    }
    if (typeof message !== "object" || message === null || Array.isArray(message)) {
      this.counters.unreadable += 1;
      return;
    }
    this.awaitingAnswer = false;
    if (this.current === "open") this.answered();
    const m = message as ServerMessage;
    if (!this.track(m)) return;
    try {
      this.dispatch(m);
    } catch {
      // A frame outside the schema (the gateway's frames are tested against it): not fatal.
      this.counters.unreadable += 1;
    }
  }

  /** The server answered this connection: reset the backoff, flush the queue. */
  private answered(): void {
    this.current = "ready";
    this.attempt = 0;
    const ws = this.ws!;
    for (const text of this.queue.splice(0)) ws.send(text);
    this.readyWaiters.splice(0).forEach((w) => w.resolve());
  }

  /** Keep the stream's position; false for a copy of a message already received. */
  private track(m: ServerMessage): boolean {
    const stream = STREAM_OF[m.target];
    if (!stream || !("offset" in m) || typeof m.offset !== "number" || typeof m.epoch !== "string") {
      return true;
    }
    const before: Position | undefined = this.last[stream];
    if (before && before.epoch === m.epoch) {
      if (m.offset <= before.offset) {
        this.counters.duplicates += 1;
        return false;
      }
      if (m.offset > before.offset + 1) this.counters.gaps += 1;
    }
    this.last[stream] = { epoch: m.epoch, offset: m.offset };
    return true;
  }

  private dispatch(m: ServerMessage): void {
    switch (m.msg_type) {
      case "msg":
        this.emit("msg", m as MsgMessage);
        return;
      case "cmd":
        // The server's notice has no from_id; an echoed "resync" of your own carries yours.
        if (m.target === "echo" && m.cmd === "resync" && !("from_id" in m)) {
          const { reason, stream } = m.payload;
          this.emit("resync", { reason, ...(stream !== undefined ? { stream } : {}), local: false });
          return;
        }
        this.emit("cmd", m as CmdMessage);
        return;
      case "presence":
        if (m.target === "echo") {
          const listed = m.payload?.clients;
          const clients = Array.isArray(listed) ? listed : [];
          // Answers every pending call: a request refused with an error gets no list, so
          // matching lists to requests one by one could hand each later call an older list.
          for (const waiter of this.membersInflight.splice(0)) {
            if (waiter.done) continue;
            waiter.done = true;
            this.timers.clearTimeout(waiter.timer);
            waiter.resolve([...clients]);
          }
          this.emit("members", [...clients], m);
        } else {
          const event: PresenceEvent = { event: m.payload.event, client_id: m.payload.client_id };
          this.emit("presence", event, m);
        }
        return;
      case "heartbeat":
        this.emit("heartbeat", m);
        return;
      case "error":
        this.emit("error", m);
        return;
      default:
        return; // a msg_type from a newer gateway: ignored
    }
  }

  private emit<K extends EventName>(event: K, ...args: ClientEvents[K]): void {
    const set = this.handlers.get(event);
    if (!set) return;
    for (const handler of [...set]) {
      try {
        handler(...args);
      } catch (error) {
        rethrowLater(error); // a failing handler must not break the client
      }
    }
  }
}

/** Connect to the gateway; the client reconnects on its own until `close()`. */
export function connect(options: ConnectOptions): AetherClient {
  return new Client(options);
}
