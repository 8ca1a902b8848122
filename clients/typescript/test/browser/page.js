// Browser check: the built package (dist/, no bundler) with the browser's own WebSocket,
// against two real nodes. The page lists what it received and POSTs a summary to /result.
import { connect } from "../../dist/index.js";

const params = new URLSearchParams(location.search);
const A = params.get("a");
const B = params.get("b");
const list = document.getElementById("received");
const covered = [];
const received = [];

function show(who, m) {
  const text = `${who} ← ${m.msg_type}/${m.target}${m.from_id ? ` from ${m.from_id}` : ""}: ${
    m.msg ?? m.cmd ?? JSON.stringify(m.payload)
  }`;
  received.push(text);
  const item = document.createElement("li");
  item.textContent = text;
  list.append(item);
}

function client(name, groupId, url) {
  // The browser's own WebSocket; the full backoff cap, so the reconnect comes after a known delay.
  const c = connect({ url, groupId, clientId: name, heartbeatMs: 5_000, random: () => 1, reconnect: { baseMs: 800, restartBaseMs: 800 } });
  c.seen = [];
  for (const kind of ["msg", "cmd", "presence"]) {
    c.on(kind, (first, second) => {
      const m = second ?? first;
      c.seen.push(m);
      show(name, m);
    });
  }
  return c;
}

async function until(condition, what, ms = 5_000) {
  const end = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
const has = (c, target, text) => c.seen.some((m) => m.target === target && (m.msg ?? m.cmd) === text);
const joined = (c, event, who) =>
  c.seen.some((m) => m.msg_type === "presence" && m.payload.event === event && m.payload.client_id === who);

async function run() {
  if (!A || !B) throw new Error("open as index.html?a=ws://NODE_A&b=ws://NODE_B");
  const alice = client("alice", "team_a1", [A, B]);
  await alice.ready();
  const bob = client("bob", "team_a1", B);
  const carol = client("carol", "team_b2", B);
  await Promise.all([bob.ready(), carol.ready()]);
  await until(() => joined(alice, "join", "bob"), "alice to see bob join");
  covered.push("presence");
  const members = await alice.members();
  if (JSON.stringify(members) !== JSON.stringify(["alice", "bob"])) throw new Error(`members ${members}`);
  covered.push("members");

  alice.send.group("hello team");
  await until(() => has(bob, "group", "hello team") && has(alice, "group", "hello team"), "the group message");
  if (carol.seen.some((m) => m.target === "group" && m.msg_type !== "presence")) throw new Error("carol got another group's message");
  covered.push("group");

  bob.send.direct("alice", { cmd: "PING", payload: { from: "node B" } });
  carol.send.direct("alice", "across groups");
  await until(() => has(alice, "direct", "PING") && has(alice, "direct", "across groups"), "direct messages");
  covered.push("direct");

  carol.send.broadcast("to everyone");
  await until(() => [alice, bob, carol].every((c) => has(c, "broadcast", "to everyone")), "the broadcast");
  covered.push("broadcast");

  alice.send.echo("just me");
  await until(() => has(alice, "echo", "just me"), "the echo");
  if (bob.seen.some((m) => m.target === "echo")) throw new Error("an echo reached bob");
  covered.push("echo");

  // Node A dies (the test server kills it when asked); alice must come back on B and recover.
  const before = alice.positions();
  const closed = new Promise((resolve) => {
    const off = alice.on("close", (info) => (off(), resolve(info)));
  });
  const opened = new Promise((resolve) => {
    const off = alice.on("open", (info) => (off(), resolve(info)));
  });
  await fetch("/kill-a", { method: "POST" });
  const info = await closed;
  if (info.reconnectInMs === null) throw new Error(`alice stopped after ${info.code}`);
  bob.send.group("while away");
  carol.send.direct("alice", "direct while away");
  carol.send.broadcast("broadcast while away");
  await until(() => has(bob, "group", "while away") && has(carol, "broadcast", "broadcast while away"), "publication");
  if (alice.state !== "reconnecting") throw new Error(`alice was ${alice.state} before the messages were out`);
  const reopened = await opened;
  if (!reopened.url.startsWith(B) || JSON.stringify(reopened.recover) !== JSON.stringify(before)) {
    throw new Error(`reopened ${JSON.stringify(reopened)}; positions before ${JSON.stringify(before)}`);
  }
  const texts = ["while away", "direct while away", "broadcast while away"];
  await until(() => texts.every((t) => alice.seen.some((m) => m.msg === t)), "recovery");
  const counts = texts.map((t) => alice.seen.filter((m) => m.msg === t).length);
  if (counts.some((n) => n !== 1) || alice.stats().duplicates) throw new Error(`copies: ${counts}`);
  covered.push("failover");

  await bob.close();
  await until(() => joined(alice, "leave", "bob"), "alice to see bob leave");
  const positions = alice.positions();
  await Promise.all([alice.close(), carol.close()]);
  return { closeCode: info.code, reconnectedTo: reopened.url, positions, state: alice.state };
}

async function report(result) {
  document.getElementById("status").textContent = result.ok ? "PASS" : `FAIL ${result.error}`;
  await fetch("/result", { method: "POST", body: JSON.stringify({ ...result, covered, received }) });
}

window.addEventListener("error", (event) => void report({ ok: false, error: String(event.message) }));
run().then(
  (details) => report({ ok: true, ...details }),
  (error) => report({ ok: false, error: String(error?.stack ?? error) }),
);
