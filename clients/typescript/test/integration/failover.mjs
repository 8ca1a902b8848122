// Integration scenario against two real gateway nodes sharing one Redis (driven by
// tests/clients/test_typescript_client.py; runnable by hand the same way).
//
//   AETHER_NODE_A, AETHER_NODE_B   base URLs of the two nodes (ws://127.0.0.1:PORT)
//   AETHER_WEBSOCKET=global        use the runtime's own WebSocket (Node >= 22), not `ws`
//
// alice connects with url [A, B] (queue on); bob and dave/erin (her group) and carol (another
// group) use node B. Every target and presence are checked; then the script prints the line
// "KILL A" and waits for a line "killed" on stdin: the driver kills node A meanwhile (SIGTERM
// or SIGKILL). While alice is away, the others send to every stream, erin comes and goes, and
// alice queues a message; alice reconnects to B with ?recover= and must get everything, each
// message once and in order. Then live traffic again, and a last check of everything.
//
// Output: lines starting with "# " are progress; the last line is "PASS {json}" or
// "FAIL <why>", and the exit code is 0 or 1. After close() the process must exit on its own
// (nothing left scheduled): the driver reports a hang as a failure.

import { createInterface } from "node:readline";
import WS from "ws";

import { connect } from "../../dist/index.js";

// Node 22's global WebSocket (the client's default), or the `ws` package passed in.
const IMPL = process.env.AETHER_WEBSOCKET === "global" ? {} : { WebSocket: WS };
if (process.env.AETHER_WEBSOCKET === "global" && typeof globalThis.WebSocket !== "function") {
  console.log(`FAIL no global WebSocket in Node ${process.version}`);
  process.exit(2);
}
const A = process.env.AETHER_NODE_A;
const B = process.env.AETHER_NODE_B;
const DEADLINE_MS = Number(process.env.AETHER_SCENARIO_MS ?? 20_000);
if (!A || !B) {
  console.log("FAIL set AETHER_NODE_A and AETHER_NODE_B to the nodes' base URLs");
  process.exit(2);
}

const started = Date.now();
const log = (text) => console.log(`# ${((Date.now() - started) / 1000).toFixed(3)}s ${text}`);

class Failure extends Error {}
function check(condition, what, detail) {
  if (!condition) throw new Failure(`${what}${detail === undefined ? "" : `: ${JSON.stringify(detail)}`}`);
}
function same(actual, expected, what) {
  check(JSON.stringify(actual) === JSON.stringify(expected), what, { actual, expected });
}

/** A client with everything it receives recorded in order. */
function client(name, groupId, url, extra = {}) {
  const seen = [];
  const c = connect({
    url,
    groupId,
    clientId: name,
    ...IMPL,
    heartbeatMs: 5_000,
    random: () => 1, // the full cap: a known reconnect delay, long enough to publish meanwhile
    reconnect: { baseMs: 800, restartBaseMs: 800, maxMs: 3_000 },
    ...extra,
  });
  for (const kind of ["msg", "cmd", "presence", "error", "resync", "open", "close"]) {
    c.on(kind, (first, second) => seen.push({ kind, at: Date.now(), data: second ?? first }));
  }
  c.seen = seen;
  c.name = name;
  return c;
}

/** Text of a msg or cmd (`msg` or `cmd`). */
const label = (m) => m.msg ?? m.cmd;
const messages = (c, filter = () => true) =>
  c.seen.filter((e) => (e.kind === "msg" || e.kind === "cmd") && filter(e.data)).map((e) => e.data);
const texts = (c, filter) => messages(c, filter).map(label);
const presence = (c) =>
  c.seen.filter((e) => e.kind === "presence").map((e) => `${e.data.payload.event} ${e.data.payload.client_id}`);

async function until(condition, what, ms = 5_000) {
  const end = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > end) throw new Failure(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
const hasAll = (have, want) => want.every((w) => have.includes(w));

async function killNodeA() {
  console.log("KILL A");
  const lines = createInterface({ input: process.stdin });
  try {
    for await (const line of lines) {
      if (line.trim() === "killed") return;
    }
    throw new Failure("stdin ended before the driver said 'killed'");
  } finally {
    lines.close();
    process.stdin.destroy(); // nothing may keep the process alive at the end
  }
}

// What each sender sends, per stream of alice, in sending order.
const sent = { group: {}, client: {}, broadcast: {}, echo: {} };
function record(stream, sender, text) {
  (sent[stream][sender] ??= []).push(text);
}

async function scenario() {
  const alice = client("alice", "team_a1", [A, B], { queue: 20 });
  await alice.ready();
  log(`alice on A (${A})`);
  const bob = client("bob", "team_a1", B);
  const carol = client("carol", "team_b2", B);
  await Promise.all([bob.ready(), carol.ready()]);
  await until(() => presence(alice).includes("join bob"), "alice to see bob join");
  same(await alice.members(), ["alice", "bob"], "members() on A");

  // Phase 1: every target, across the two nodes.
  const s = (who, stream, text, result) => {
    record(stream, who, text);
    check(result === "sent", `${who} sending ${text}`, result);
  };
  s("alice", "group", "a-g1", alice.send.group("a-g1"));
  s("bob", "group", "b-g1", bob.send.group("b-g1"));
  s("bob", "group", "B-CMD-1", bob.send.group({ cmd: "B-CMD-1", payload: { n: 1 } }));
  s("bob", "client", "b-d1", bob.send.direct("alice", "b-d1"));
  s("carol", "client", "c-d1", carol.send.direct("alice", { msg: "c-d1" }));
  s("carol", "broadcast", "c-bc1", carol.send.broadcast("c-bc1"));
  s("alice", "broadcast", "A-BC-1", alice.send.broadcast({ cmd: "A-BC-1" }));
  s("alice", "echo", "a-e1", alice.send.echo("a-e1"));
  const dave = client("dave", "team_a1", B);
  await dave.ready();
  await until(() => presence(alice).includes("join dave"), "alice to see dave join");
  await dave.close();
  await until(
    () =>
      presence(alice).includes("leave dave") &&
      hasAll(texts(alice), ["a-g1", "b-g1", "B-CMD-1", "b-d1", "c-d1", "c-bc1", "A-BC-1", "a-e1"]),
    "phase 1 at alice",
  );
  await until(() => hasAll(texts(bob), ["a-g1", "A-BC-1"]) && hasAll(texts(carol), ["A-BC-1", "c-bc1"]), "phase 1 at bob and carol");
  const before = alice.positions();
  same(Object.keys(before).sort(), ["broadcast", "client", "group"], "alice holds a position on every stream");
  log(`phase 1 done; alice's positions ${JSON.stringify(before)}`);

  // Phase 2: node A dies; the others send to every stream while alice is away.
  const closesBefore = alice.seen.filter((e) => e.kind === "close").length;
  await killNodeA();
  await until(() => alice.seen.filter((e) => e.kind === "close").length > closesBefore, "alice to notice", 10_000);
  const closed = alice.seen.filter((e) => e.kind === "close").at(-1).data;
  log(`alice closed ${closed.code} ${closed.reason}; reconnecting in ${closed.reconnectInMs} ms`);
  check(closed.reconnectInMs !== null, "alice reconnects after the kill", closed);
  record("group", "alice", "a-q1");
  same(alice.send.group("a-q1"), "queued", "a send while reconnecting is queued");
  s("bob", "group", "b-g2", bob.send.group("b-g2"));
  s("bob", "client", "b-d2", bob.send.direct("alice", "b-d2"));
  s("carol", "client", "c-d2", carol.send.direct("alice", "c-d2"));
  s("carol", "broadcast", "c-bc2", carol.send.broadcast("c-bc2"));
  s("bob", "group", "B-CMD-2", bob.send.group({ cmd: "B-CMD-2" }));
  const erin = client("erin", "team_a1", B);
  await erin.ready();
  await erin.close();
  // Published (bob's and carol's own copies came back; bob's direct went out before his cmd).
  await until(
    () => hasAll(texts(bob), ["b-g2", "B-CMD-2"]) && texts(carol).includes("c-bc2") && presence(bob).includes("leave erin"),
    "phase 2 to be published",
  );
  const awayOk = alice.state === "reconnecting";
  log(`phase 2 published while alice is ${alice.state}`);
  check(awayOk, "phase 2 was published while alice was away (so it must come back by recovery)", alice.state);

  // Phase 3: alice is back on B; what she missed is replayed, then live traffic again.
  await alice.ready();
  const opened = alice.seen.filter((e) => e.kind === "open").at(-1).data;
  log(`alice reopened: ${opened.url}`);
  check(opened.reconnect && opened.url.startsWith(B), "alice reconnected to node B", opened);
  same(opened.recover, before, "alice recovered from her last positions");
  check(/recover=group:[^,&]+,client:[^,&]+,broadcast:[^,&]+$/.test(opened.url), "recover= names every stream", opened.url);
  s("bob", "group", "b-g3", bob.send.group("b-g3"));
  s("carol", "client", "c-d3", carol.send.direct("alice", "c-d3"));
  s("carol", "broadcast", "c-bc3", carol.send.broadcast("c-bc3"));
  s("alice", "group", "a-g2", alice.send.group("a-g2"));
  s("alice", "echo", "a-e2", alice.send.echo("a-e2"));
  check(alice.send.direct("bob", "a-d1") === "sent", "alice sending a-d1");
  const everything = Object.values(sent).flatMap((bySender) => Object.values(bySender).flat());
  await until(
    () => hasAll(texts(alice), everything) && texts(bob).includes("a-d1") && texts(carol).includes("c-bc3"),
    "everything at alice",
    8_000,
  );
  const members = await alice.members();
  check(hasAll(members, ["alice", "bob"]) && !members.includes("erin") && !members.includes("dave"), "members() on B", members);

  // Every message once, in order.
  const streamOf = { group: "group", direct: "client", broadcast: "broadcast", echo: "echo" };
  const got = messages(alice);
  for (const stream of ["group", "client", "broadcast", "echo"]) {
    const mine = got.filter((m) => streamOf[m.target] === stream);
    same(mine.map(label).sort(), Object.values(sent[stream]).flat().sort(), `alice's ${stream} messages, each once`);
    for (const [sender, list] of Object.entries(sent[stream])) {
      same(mine.filter((m) => m.from_id === sender).map(label), list, `${stream} messages from ${sender} in sending order`);
    }
  }
  const positioned = alice.seen
    .filter((e) => ["msg", "cmd", "presence"].includes(e.kind) && typeof e.data.offset === "number")
    .map((e) => e.data);
  for (const stream of ["group", "client", "broadcast"]) {
    const run = positioned.filter((m) => streamOf[m.target] === stream);
    const epochs = [...new Set(run.map((m) => m.epoch))];
    same(epochs.length, 1, `one epoch on the ${stream} stream`);
    const offsets = run.map((m) => m.offset);
    same(offsets, offsets.map((_, n) => offsets[0] + n), `${stream} offsets without gap or repeat`);
  }
  same(
    presence(alice).filter((p) => !p.endsWith(" alice")),
    ["join bob", "join dave", "leave dave", "join erin", "leave erin"],
    "presence events at alice (erin's while she was away, by recovery)",
  );
  same(alice.stats().duplicates, 0, "no copies reached alice's socket");
  same(alice.stats().gaps, 0, "no gaps");
  check(!alice.seen.some((e) => e.kind === "error" || e.kind === "resync"), "no error or resync at alice", alice.seen.filter((e) => e.kind === "error" || e.kind === "resync"));

  // Targets reach only whom they should.
  same(texts(bob, (m) => m.target === "direct"), ["a-d1"], "bob's direct messages");
  check(!texts(bob).some((t) => t.startsWith("a-e")), "echo stays with the sender");
  same(texts(carol, (m) => m.target === "group"), [], "carol (other group) gets no team_a1 group messages");
  same(texts(carol, (m) => m.target === "broadcast").sort(), ["A-BC-1", "c-bc1", "c-bc2", "c-bc3"], "carol's broadcasts");

  await Promise.all([alice.close(), bob.close(), carol.close()]);
  return {
    killed: { code: closed.code, reason: closed.reason },
    reconnectedTo: opened.url.replace(/\?.*/, ""),
    recover: opened.recover,
    received: { group: got.filter((m) => m.target === "group").length, direct: got.filter((m) => m.target === "direct").length, broadcast: got.filter((m) => m.target === "broadcast").length, echo: got.filter((m) => m.target === "echo").length },
    presence: presence(alice),
    members,
    runtime: { node: process.version, websocket: IMPL.WebSocket ? "ws" : "global" },
  };
}

const watchdog = setTimeout(() => {
  console.log(`FAIL the scenario did not finish within ${DEADLINE_MS} ms`);
  process.exit(1);
}, DEADLINE_MS);
watchdog.unref();

try {
  const summary = await scenario();
  log("all checks passed");
  console.log(`PASS ${JSON.stringify(summary)}`);
  process.exitCode = 0;
} catch (error) {
  console.log(`FAIL ${error instanceof Failure ? error.message : error.stack}`);
  process.exit(1); // sockets may still be open: do not wait for them
}
