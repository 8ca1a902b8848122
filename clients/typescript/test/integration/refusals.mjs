// Integration scenario against one real node that requires tokens (AETHER_AUTH_SECRET):
//
//   AETHER_NODE          base URL of the node (ws://127.0.0.1:PORT)
//   AETHER_AUTH_SECRET   the node's HS256 secret
//
// A token is accepted in the query and as the aether.bearer subprotocol; a bad token (4501)
// and a malformed ?recover= (1008) end the client without a second attempt. Also reported
// (checked by the pytest driver): what a refusal looks like with the token as a subprotocol.
// The last line is "PASS {json}" or "FAIL <why>"; exit code 0 or 1.

import { createHmac } from "node:crypto";
import WS from "ws";

import { connect } from "../../dist/index.js";

const NODE = process.env.AETHER_NODE;
const SECRET = process.env.AETHER_AUTH_SECRET;
if (!NODE || !SECRET) {
  console.log("FAIL set AETHER_NODE and AETHER_AUTH_SECRET");
  process.exit(2);
}

const b64 = (value) => Buffer.from(JSON.stringify(value)).toString("base64url");
function jwt(claims, secret = SECRET) {
  const head = `${b64({ alg: "HS256", typ: "JWT" })}.${b64(claims)}`;
  return `${head}.${createHmac("sha256", secret).update(head).digest("base64url")}`;
}
const exp = Math.floor(Date.now() / 1000) + 600;

function client(clientId, options) {
  const c = connect({ url: NODE, groupId: "team_t", clientId, WebSocket: WS, random: () => 0, ...options });
  c.closes = [];
  c.sockets = 0;
  c.on("open", () => (c.sockets += 1));
  c.on("close", (info) => c.closes.push(info));
  return c;
}

async function until(condition, what, ms = 5_000) {
  const end = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

async function scenario() {
  const summary = {};
  // Accepted: the token as subprotocols, and in the query (the default).
  const viaProtocol = client("tina", {
    token: () => jwt({ sub: "tina", groups: ["team_t"], exp }),
    tokenTransport: "protocol",
  });
  const viaQuery = client("toby", { token: jwt({ sub: "toby", groups: "*", exp }) });
  await Promise.all([viaProtocol.ready(), viaQuery.ready()]);
  summary.members = await viaProtocol.members();
  if (JSON.stringify(summary.members) !== JSON.stringify(["tina", "toby"])) throw new Error(`members ${summary.members}`);

  // Refused, and not retried: a token for another client (4501), a malformed recover (1008).
  const wrong = client("tess", { token: jwt({ sub: "someone_else", groups: "*", exp }) });
  const malformed = client("tina", {
    token: jwt({ sub: "tina", groups: "*", exp }),
    recover: { group: { epoch: "not valid!", offset: 1 } },
  });
  await until(() => wrong.state === "closed" && malformed.state === "closed", "the refusals");
  await new Promise((resolve) => setTimeout(resolve, 300)); // a retry would start meanwhile (random 0)
  summary.refused = [wrong, malformed].map((c) => ({ ...c.closes.at(-1), opens: c.sockets, attempts: c.closes.length }));
  const [a, b] = summary.refused;
  if (a.code !== 4501 || a.reconnectInMs !== null || a.attempts !== 1) throw new Error(`4501: ${JSON.stringify(a)}`);
  if (b.code !== 1008 || !b.reason.startsWith("recover:") || b.attempts !== 1) throw new Error(`1008: ${JSON.stringify(b)}`);
  // The same refusal with the token as subprotocols: the first close the client sees.
  const hidden = client("tess", {
    token: jwt({ sub: "someone_else", groups: "*", exp }),
    tokenTransport: "protocol",
    reconnect: false,
  });
  await until(() => hidden.state === "closed", "the subprotocol refusal");
  summary.refusedViaSubprotocol = hidden.closes[0];
  await Promise.all([viaProtocol.close(), viaQuery.close(), wrong.close(), malformed.close()]);
  return summary;
}

const watchdog = setTimeout(() => {
  console.log("FAIL the scenario did not finish within 15 s");
  process.exit(1);
}, 15_000);
watchdog.unref();

try {
  console.log(`PASS ${JSON.stringify(await scenario())}`);
} catch (error) {
  console.log(`FAIL ${error.stack ?? error}`);
  process.exit(1);
}
