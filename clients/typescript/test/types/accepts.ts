// Must compile: the public API as an application uses it.
import WS from "ws";
import {
  connect,
  type AetherClient,
  type CmdMessage,
  type ErrorCode,
  type MsgMessage,
  type Positions,
  type SendResult,
  type WSMessageV3,
} from "@aether/ws-client";

declare const DomWebSocket: typeof globalThis.WebSocket;

// The `ws` package's class and the browser's both fit the WebSocket option.
const client: AetherClient = connect({
  url: ["ws://127.0.0.1:8000", "ws://127.0.0.1:8001"],
  groupId: "team_a1",
  clientId: "alice",
  WebSocket: WS,
  heartbeatMs: 30_000,
  queue: 100,
  reconnect: { baseMs: 500, maxMs: 10_000, retry: (code) => code !== 4501 },
  recover: { group: { epoch: "aa25cc0313e1", offset: 4 } },
});
connect({ url: "wss://aether.example.com", groupId: "g1", clientId: "c1", WebSocket: DomWebSocket });
connect({ url: "ws://h", groupId: "g1", clientId: "c1", token: async () => "jwt", reconnect: false });

const results: SendResult[] = [
  client.send.group("Hello team!"),
  client.send.group({ cmd: "RELOAD_UI", payload: { force: true } }),
  client.send.group({ msg_type: "msg", msg: "hi", payload: null }),
  client.send.direct("bob", "Private"),
  client.send.direct("bob", { cmd: "PING" }),
  client.send.broadcast({ msg_type: "cmd", cmd: "MAINTENANCE_WARNING" }),
  client.send.echo("Ping!"),
];
void results;

client.on("msg", (m: MsgMessage) => {
  const text: string | null | undefined = m.msg;
  const offset: number | null | undefined = m.offset;
  void text, offset;
});
client.on("cmd", (m: CmdMessage) => void m.cmd?.toUpperCase());
const off = client.on("presence", (event, m) => {
  const kind: "join" | "leave" = event.event;
  const who: string = event.client_id;
  const target: "group" = m.target;
  void kind, who, target;
});
off();
client.on("error", (m) => {
  const code: ErrorCode = m.payload.code;
  if (code === "rate-limited") void m.payload.retry_after?.toFixed();
});
client.on("close", ({ code, reconnectInMs }) => void (reconnectInMs ?? code));
client.onResync(({ reason, stream, local }) => void [reason, stream ?? "all", local]);

async function use(): Promise<void> {
  const members: string[] = await client.members();
  const saved: Positions = client.positions();
  const epoch: string | undefined = saved.client?.epoch;
  await client.close();
  void members, epoch;
}
void use;

// The generated message type is the schema's.
const frame: WSMessageV3 = { msg_type: "presence", target: "echo" };
void frame;
