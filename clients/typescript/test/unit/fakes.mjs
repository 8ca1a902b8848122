// Test doubles: a WebSocket whose server side the test drives, and timers the test advances.

/** A fresh fake WebSocket class; `sockets` lists every instance, newest last. */
export function fakeWebSocket() {
  const sockets = [];
  class FakeSocket {
    constructor(url, protocols) {
      this.url = url;
      this.protocols = protocols;
      this.readyState = 0;
      this.sent = [];
      this.closeCalls = [];
      this.onopen = this.onmessage = this.onclose = this.onerror = null;
      sockets.push(this);
    }
    send(data) {
      if (this.readyState !== 1) throw new Error("send on a socket that is not open");
      this.sent.push(JSON.parse(data));
    }
    close(code, reason) {
      this.closeCalls.push(code);
      if (this.readyState >= 2) return;
      this.readyState = 2;
      // The server answers the close handshake on a later turn.
      queueMicrotask(() => this.ended(code ?? 1005, reason ?? ""));
    }
    // --- the server side ---
    open() {
      this.readyState = 1;
      this.onopen?.({ type: "open" });
    }
    receive(message) {
      this.onmessage?.({ data: typeof message === "string" ? message : JSON.stringify(message) });
    }
    ended(code, reason = "") {
      if (this.readyState === 3) return;
      this.readyState = 3;
      this.onclose?.({ code, reason });
    }
    fail() {
      this.onerror?.({ type: "error" });
      this.ended(1006);
    }
    /** Frames sent, without the heartbeats. */
    get messages() {
      return this.sent.filter((m) => m.msg_type !== "heartbeat");
    }
  }
  return { WebSocket: FakeSocket, sockets };
}

/** Timers on a virtual clock; `pending` counts what is scheduled. */
export class FakeTimers {
  now = 0;
  #seq = 0;
  #tasks = new Map();
  setTimeout = (fn, ms) => this.#add(fn, ms, 0);
  setInterval = (fn, ms) => this.#add(fn, ms, ms);
  clearTimeout = (id) => void this.#tasks.delete(id);
  clearInterval = (id) => void this.#tasks.delete(id);
  #add(fn, ms, every) {
    const id = ++this.#seq;
    this.#tasks.set(id, { at: this.now + ms, fn, every, ms });
    return id;
  }
  get pending() {
    return this.#tasks.size;
  }
  /** Delays (ms) of the one-shot timers now scheduled, sorted. */
  get timeouts() {
    return [...this.#tasks.values()].filter((t) => !t.every).map((t) => t.ms).sort((a, b) => a - b);
  }
  get intervals() {
    return [...this.#tasks.values()].filter((t) => t.every).map((t) => t.every);
  }
  /** Advance the clock, running what falls due in order. */
  tick(ms) {
    const end = this.now + ms;
    for (;;) {
      let next;
      for (const [id, task] of this.#tasks) if (task.at <= end && (!next || task.at < next[1].at)) next = [id, task];
      if (!next) break;
      const [id, task] = next;
      this.now = task.at;
      if (task.every) task.at += task.every;
      else this.#tasks.delete(id);
      task.fn();
    }
    this.now = end;
  }
}

/** Let queued microtasks (fake close handshakes, promise reactions) run. */
export const flush = () => new Promise((resolve) => setImmediate(resolve));
