// Unit tests of the client against a fake socket and fake timers (node --test).
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { backoffDelay, connect, NO_RETRY_CODES, shouldRetry, socketUrl } from "../../dist/index.js";
import { FakeTimers, fakeWebSocket, flush } from "./fakes.mjs";

const GROUP = "team_a1";
const CLIENT = "alice";

/** A client on fakes; `random` fixed at 0.5 so delays are half their cap. */
function setup(options = {}) {
  const fake = fakeWebSocket();
  const timers = new FakeTimers();
  const client = connect({
    url: "ws://node-a:8000",
    groupId: GROUP,
    clientId: CLIENT,
    WebSocket: fake.WebSocket,
    timers,
    random: () => 0.5,
    ...options,
  });
  const events = [];
  for (const name of ["msg", "cmd", "presence", "members", "heartbeat", "error", "resync", "open", "close"]) {
    client.on(name, (...args) => events.push([name, ...args]));
  }
  const socket = () => fake.sockets.at(-1);
  /** Open the newest socket and answer its first heartbeat. */
  const answer = () => {
    socket().open();
    socket().receive({ version: "3", msg_type: "heartbeat", target: "echo", from_id: CLIENT, group_id: GROUP });
  };
  return { client, fake, timers, events, socket, answer, names: () => events.map((e) => e[0]) };
}

const msg = (target, offset, epoch, extra = {}) => ({
  version: "3",
  msg_type: "msg",
  target,
  from_id: "bob",
  group_id: GROUP,
  msg: `m${offset}`,
  offset,
  epoch,
  ...extra,
});

describe("connecting", () => {
  test("builds the socket URL from a base URL", () => {
    assert.equal(socketUrl("ws://h:1", "g1", "c1"), "ws://h:1/v3/ws/group/g1/client/c1");
    assert.equal(socketUrl("https://h/aether/", "g1", "c1"), "wss://h/aether/v3/ws/group/g1/client/c1");
    assert.equal(
      socketUrl("ws://h/?x=1", "g1", "c1", { group: { epoch: "e1", offset: 2 }, broadcast: { epoch: "b", offset: 9 } }, "a b"),
      "ws://h/v3/ws/group/g1/client/c1?x=1&recover=group:e1:2,broadcast:b:9&token=a%20b",
    );
    assert.throws(() => socketUrl("ftp://h", "g1", "c1"), TypeError);
    assert.throws(() => socketUrl("ws://h/v3/ws/group/g1/client/c1", "g1", "c1"), /base URL/);
  });

  test("refuses IDs that are not Vision IDs, and a missing WebSocket class", () => {
    const { WebSocket } = fakeWebSocket();
    assert.throws(() => connect({ url: "ws://h", groupId: "12345", clientId: "c1", WebSocket }), /groupId/);
    assert.throws(() => connect({ url: "ws://h", groupId: "g1", clientId: "a b", WebSocket }), /clientId/);
    assert.throws(() => connect({ url: [], groupId: "g1", clientId: "c1", WebSocket }), /url/);
    assert.throws(() => connect({ url: "ws://h", groupId: "g1", clientId: "c1", WebSocket, queue: -1 }), /queue/);
    const saved = globalThis.WebSocket;
    try {
      delete globalThis.WebSocket;
      assert.throws(() => connect({ url: "ws://h", groupId: "g1", clientId: "c1" }), /'ws' package/);
    } finally {
      if (saved) globalThis.WebSocket = saved;
    }
  });

  test("a token travels in the query, or as the aether.bearer subprotocol", async () => {
    const a = setup({ token: "jwt1", tokenTransport: "protocol" });
    assert.deepEqual(a.socket().protocols, ["aether.bearer", "jwt1"]);
    assert.ok(!a.socket().url.includes("token"));
    const b = setup({ token: () => "jwt2" });
    await flush();
    assert.match(b.socket().url, /\?token=jwt2$/);
    b.socket().open();
    assert.match(b.events.find((e) => e[0] === "open")[1].url, /token=\*$/); // never shown
    await a.client.close();
    await b.client.close();
  });

  test("open → heartbeat at once → ready on the first answer; ready() resolves", async () => {
    const { client, socket, timers } = setup({ heartbeatMs: 1000 });
    assert.equal(client.state, "connecting");
    const ready = client.ready();
    socket().open();
    assert.equal(client.state, "open");
    assert.deepEqual(socket().sent, [{ msg_type: "heartbeat", target: "echo" }]);
    socket().receive({ version: "3", msg_type: "heartbeat", target: "echo" });
    assert.equal(client.state, "ready");
    await ready;
    timers.tick(1000);
    assert.equal(socket().sent.length, 2); // the periodic heartbeat
    await client.close();
  });
});

describe("sending", () => {
  test("each target, from a text or a body", async () => {
    const { client, socket, answer } = setup();
    answer();
    assert.equal(client.send.group("Hello team!"), "sent");
    client.send.group({ cmd: "RELOAD_UI", payload: { force: true } });
    client.send.direct("bob", "Private");
    client.send.broadcast({ msg_type: "cmd", cmd: "MAINTENANCE_WARNING", msg: null });
    client.send.echo({ msg: "Ping!", payload: { n: 1 } });
    assert.deepEqual(socket().messages, [
      { msg_type: "msg", target: "group", msg: "Hello team!" },
      { msg_type: "cmd", target: "group", cmd: "RELOAD_UI", payload: { force: true } },
      { msg_type: "msg", target: "direct", to_id: "bob", msg: "Private" },
      { msg_type: "cmd", target: "broadcast", cmd: "MAINTENANCE_WARNING" },
      { msg_type: "msg", target: "echo", msg: "Ping!", payload: { n: 1 } },
    ]);
    assert.throws(() => client.send.direct("12345", "x"), /toId/);
    await client.close();
    assert.equal(client.send.group("late"), "refused");
  });

  test("without a queue, sends while not connected are refused", async () => {
    const { client, socket, answer } = setup();
    assert.equal(client.send.group("too early"), "refused");
    answer();
    socket().ended(1012, "server restarting");
    assert.equal(client.state, "reconnecting");
    assert.equal(client.send.group("while away"), "refused");
    await client.close();
  });

  test("with a queue: held up to the bound, sent in order once the new connection answers", async () => {
    const { client, socket, answer, timers } = setup({ queue: 2 });
    answer();
    assert.equal(client.send.group("live"), "sent");
    socket().ended(1006);
    assert.equal(client.send.group("q1"), "queued");
    assert.equal(client.send.direct("bob", "q2"), "queued");
    assert.equal(client.send.group("q3"), "refused"); // over the bound
    timers.tick(10_000);
    socket().open();
    assert.equal(client.send.group("q4"), "refused"); // open, not answered yet: queue still full
    assert.deepEqual(socket().messages, []); // not before the server answered
    socket().receive(msg("group", 7, "e1")); // a replayed message is an answer too
    assert.deepEqual(socket().messages.map((m) => m.msg), ["q1", "q2"]);
    assert.equal(client.send.group("q5"), "sent");
    await client.close();
  });
});

describe("receiving", () => {
  test("typed handlers per msg_type; a server resync goes to onResync, not to cmd", async () => {
    const { client, socket, answer, events } = setup();
    answer();
    events.length = 0;
    const resyncs = [];
    client.onResync((r) => resyncs.push(r));
    socket().receive(msg("group", 1, "g"));
    socket().receive({ ...msg("direct", 1, "c"), msg_type: "cmd", cmd: "RELOAD_UI" });
    socket().receive({ version: "3", msg_type: "presence", target: "group", group_id: GROUP, payload: { event: "join", client_id: "bob" }, offset: 2, epoch: "g" });
    socket().receive({ version: "3", msg_type: "presence", target: "group", group_id: GROUP, payload: { event: "leave", client_id: "bob" }, offset: 3, epoch: "g" });
    socket().receive({ version: "3", msg_type: "error", target: "echo", msg: "unknown field 'text'", payload: { code: "unknown-field" } });
    socket().receive({ version: "3", msg_type: "cmd", target: "echo", cmd: "resync", payload: { reason: "history-gap", stream: "broadcast" } });
    socket().receive({ version: "3", msg_type: "cmd", target: "echo", cmd: "resync", payload: { reason: "broker-restarted" } });
    // Our own echo of a "resync" cmd carries our from_id: an ordinary cmd.
    socket().receive({ version: "3", msg_type: "cmd", target: "echo", cmd: "resync", from_id: CLIENT });
    socket().receive({ version: "3", msg_type: "surprise", target: "echo" }); // a newer gateway's: ignored
    socket().receive("not json");
    // Outside the schema (no payload): counted and skipped, not thrown out of onmessage.
    socket().receive({ version: "3", msg_type: "presence", target: "group", group_id: GROUP });
    assert.deepEqual(
      events.map((e) => e[0]),
      ["msg", "cmd", "presence", "presence", "error", "resync", "resync", "cmd"],
    );
    assert.deepEqual(events[2].slice(1, 2), [{ event: "join", client_id: "bob" }]);
    assert.deepEqual(events[3][1], { event: "leave", client_id: "bob" });
    assert.equal(events[4][1].payload.code, "unknown-field");
    assert.deepEqual(resyncs, [
      { reason: "history-gap", stream: "broadcast", local: false },
      { reason: "broker-restarted", local: false },
    ]);
    assert.equal(client.stats().unreadable, 2);
    await client.close();
  });

  test("members(): a presence echo per call, waiting for a connection; the next list answers", async () => {
    const { client, socket, answer, events } = setup();
    const early = client.members(); // before the socket is open
    answer();
    assert.deepEqual(socket().messages, [{ msg_type: "presence", target: "echo" }]);
    const second = client.members();
    assert.equal(socket().messages.length, 2);
    const list = (clients) => ({ version: "3", msg_type: "presence", target: "echo", from_id: CLIENT, payload: { clients } });
    socket().receive({ version: "3", msg_type: "error", target: "echo", msg: "presence store unavailable; retry", payload: { code: "publish-failed" } });
    socket().receive(list(["alice", "bob"]));
    assert.deepEqual(await early, ["alice", "bob"]);
    assert.deepEqual(await second, ["alice", "bob"]);
    socket().receive(list(["alice", "bob"])); // the second answer: nobody waits, an event still
    assert.equal(events.filter((e) => e[0] === "members").length, 2);
    const third = client.members();
    socket().receive(list(["alice"]));
    assert.deepEqual(await third, ["alice"]);
    await client.close();
  });

  test("members(): asked again on the next connection; rejected on timeout and on close()", async () => {
    const { client, socket, answer, timers } = setup();
    answer();
    const pending = client.members(5000);
    socket().ended(1012);
    timers.tick(1000);
    answer();
    assert.deepEqual(socket().messages, [{ msg_type: "presence", target: "echo" }]); // asked again
    socket().receive({ version: "3", msg_type: "presence", target: "echo", payload: { clients: ["alice"] } });
    assert.deepEqual(await pending, ["alice"]);
    const slow = client.members(100);
    timers.tick(100);
    await assert.rejects(slow, /no answer within 100 ms/);
    const cut = client.members();
    await client.close();
    await assert.rejects(cut, /closed/);
  });
});

describe("positions and recovery", () => {
  test("positions kept per stream; recover sent on every reconnect; copies dropped", async () => {
    const { client, fake, socket, answer, timers, events } = setup();
    answer();
    assert.ok(!socket().url.includes("recover"));
    socket().receive(msg("group", 1, "g"));
    socket().receive(msg("group", 2, "g"));
    socket().receive(msg("direct", 5, "c"));
    socket().receive(msg("echo", undefined, undefined)); // echoes have no position
    assert.deepEqual(client.positions(), { group: { epoch: "g", offset: 2 }, client: { epoch: "c", offset: 5 } });
    socket().ended(1006);
    timers.tick(1000);
    assert.match(socket().url, /\?recover=group:g:2,client:c:5$/);
    answer();
    socket().receive(msg("group", 2, "g")); // a copy: dropped
    socket().receive(msg("group", 3, "g"));
    socket().receive(msg("broadcast", 1, "b"));
    socket().ended(1012);
    timers.tick(1000);
    assert.match(socket().url, /recover=group:g:3,client:c:5,broadcast:b:1$/);
    answer();
    socket().receive(msg("group", 1, "g2")); // a new epoch starts again at 1
    assert.deepEqual(client.positions().group, { epoch: "g2", offset: 1 });
    assert.equal(client.stats().duplicates, 1);
    assert.deepEqual(
      events.filter((e) => e[0] === "msg").map((e) => e[1].msg),
      ["m1", "m2", "m5", "mundefined", "m3", "m1", "m1"],
    );
    assert.equal(fake.sockets.length, 3);
    await client.close();
  });

  test("a reconnect without a position for a stream announces a local resync for it", async () => {
    const { client, socket, answer, timers } = setup({ recover: { group: { epoch: "g", offset: 4 } } });
    const resyncs = [];
    client.onResync((r) => resyncs.push(r));
    assert.match(socket().url, /recover=group:g:4$/); // initial positions are used at once
    answer();
    assert.deepEqual(resyncs, []); // the first connection has nothing to catch up
    socket().ended(1006);
    timers.tick(1000);
    answer();
    assert.deepEqual(resyncs, [
      { reason: "no-position", stream: "client", local: true },
      { reason: "no-position", stream: "broadcast", local: true },
    ]);
    await client.close();
  });
});

describe("reconnecting", () => {
  for (const code of [1000, 1007, 1008, 1009, 4501]) {
    test(`close ${code} is not retried`, async () => {
      const { client, fake, socket, answer, timers, events } = setup();
      answer();
      const ready = client.ready(); // resolved: already ready
      await ready;
      const members = client.members();
      socket().ended(code, "why");
      assert.equal(client.state, "closed");
      assert.deepEqual(events.at(-1), ["close", { code, reason: "why", reconnectInMs: null }]);
      await assert.rejects(members, new RegExp(`closed \\(${code}: why\\)`));
      assert.equal(timers.pending, 0);
      timers.tick(120_000);
      assert.equal(fake.sockets.length, 1);
      await client.close(); // harmless
    });
  }

  test("retried codes: full jitter up to a doubling cap, 250 ms base after 1012, pause after 4529", async () => {
    const { client, socket, answer, timers, events } = setup();
    const delays = () => events.filter((e) => e[0] === "close").map((e) => e[1].reconnectInMs);
    socket().fail(); // never opened: 1006
    timers.tick(500);
    socket().ended(1013);
    timers.tick(1000);
    socket().ended(1011);
    timers.tick(2000);
    answer(); // the server answered: the backoff starts over
    socket().ended(1012);
    timers.tick(125);
    answer();
    socket().ended(4008);
    timers.tick(500);
    answer();
    socket().ended(4529);
    assert.deepEqual(delays(), [500, 1000, 2000, 125, 500, 10_500]);
    assert.deepEqual(timers.timeouts, [10_500]);
    await client.close();
  });

  test("the cap stops at maxMs; reconnect: false never retries; retry() overrides", async () => {
    assert.equal(backoffDelay(1006, 20, {}, () => 1), 30_000);
    assert.equal(backoffDelay(1006, 3, { baseMs: 100, maxMs: 500 }, () => 1), 500);
    assert.equal(backoffDelay(1012, 0, {}, () => 0.999), 250);
    assert.ok(!shouldRetry(1008, ""));
    assert.ok(shouldRetry(1008, "", { retry: () => true }));
    assert.deepEqual([...NO_RETRY_CODES].sort(), [1000, 1007, 1008, 1009, 4501]);
    const { client, fake, socket, timers } = setup({ reconnect: false });
    socket().open();
    socket().ended(1012);
    timers.tick(60_000);
    assert.equal(fake.sockets.length, 1);
    assert.equal(client.state, "closed");
  });

  test("rotates through the URLs on each reconnect", async () => {
    const { client, fake, socket, timers, events } = setup({ url: ["ws://a:1", "ws://b:2/", "ws://c:3"] });
    for (let n = 0; n < 4; n++) {
      socket().fail();
      timers.tick(events.at(-1)[1].reconnectInMs);
    }
    assert.deepEqual(
      fake.sockets.map((s) => new URL(s.url).host),
      ["a:1", "b:2", "c:3", "a:1", "b:2"],
    );
    await client.close();
  });

  test("a socket not open in time, or silent through a heartbeat period, is given up", async () => {
    const { client, fake, socket, answer, timers, events } = setup({ openTimeoutMs: 3000, heartbeatMs: 1000 });
    timers.tick(3000);
    assert.deepEqual(fake.sockets[0].closeCalls, [undefined]);
    assert.equal(events.at(-1)[1].reason, "not open after 3000 ms");
    timers.tick(500);
    answer();
    timers.tick(1000); // heartbeat 2 sent, answered below
    socket().receive({ version: "3", msg_type: "heartbeat", target: "echo" });
    timers.tick(1000); // heartbeat 3 sent, never answered
    timers.tick(1000);
    assert.equal(events.at(-1)[1].reason, "no answer to a heartbeat within 1000 ms");
    assert.equal(fake.sockets.length, 2);
    timers.tick(500);
    assert.equal(fake.sockets.length, 3);
    await client.close();
  });

  test("an error without a close event ends the socket after 1 s", async () => {
    const { client, fake, socket, timers, events } = setup();
    socket().onerror({});
    timers.tick(999);
    assert.equal(client.state, "connecting");
    timers.tick(1);
    assert.deepEqual(events.at(-1), ["close", { code: 1006, reason: "connection failed", reconnectInMs: 500 }]);
    timers.tick(500);
    assert.equal(fake.sockets.length, 2);
    await client.close();
  });
});

describe("close()", () => {
  const states = {
    connecting: () => {},
    open: ({ socket }) => socket().open(),
    "ready with a heartbeat and members() pending": ({ answer, client }) => {
      answer();
      client.members().catch(() => {});
    },
    reconnecting: ({ answer, socket }) => {
      answer();
      socket().ended(1013);
    },
    "after an error": ({ socket }) => socket().onerror({}),
  };
  for (const [name, reach] of Object.entries(states)) {
    test(`leaves no timer behind (${name})`, async () => {
      const ctx = setup({ heartbeatMs: 1000, queue: 5 });
      reach(ctx);
      assert.ok(ctx.timers.pending > 0);
      await ctx.client.close();
      assert.equal(ctx.timers.pending, 0);
      assert.equal(ctx.client.state, "closed");
      const sockets = ctx.fake.sockets.length;
      ctx.timers.tick(120_000);
      assert.equal(ctx.fake.sockets.length, sockets); // and never reconnects
      assert.deepEqual(ctx.events.at(-1), ["close", { code: 1000, reason: "closed by the client", reconnectInMs: null }]);
    });
  }

  test("closes the socket with 1000 and resolves once it has closed", async () => {
    const { client, socket, answer } = setup();
    answer();
    const done = client.close();
    assert.deepEqual(socket().closeCalls, [1000]);
    await done;
    assert.equal(socket().readyState, 3);
  });

  test("with real timers: nothing keeps the event loop alive afterwards", async () => {
    const fake = fakeWebSocket();
    const timersBefore = process.getActiveResourcesInfo().filter((r) => r === "Timeout").length;
    const client = connect({ url: ["ws://a", "ws://b"], groupId: GROUP, clientId: CLIENT, WebSocket: fake.WebSocket, heartbeatMs: 50 });
    fake.sockets[0].open();
    fake.sockets[0].receive({ version: "3", msg_type: "heartbeat", target: "echo" });
    client.members().catch(() => {});
    fake.sockets[0].ended(1012); // a reconnect timer runs now
    assert.ok(process.getActiveResourcesInfo().filter((r) => r === "Timeout").length > timersBefore);
    await client.close();
    assert.equal(process.getActiveResourcesInfo().filter((r) => r === "Timeout").length, timersBefore);
  });
});
