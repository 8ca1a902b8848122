// Must compile: the public API as an application uses it.
import WS from "ws";
import {
  connect,
  type AetherClient,
  type CmdMessage,
  type ErrorCode,
  type HeartbeatMessage,
  type MsgMessage,
  type Positions,
  type PresenceListMessage,
  type ResyncMessage,
  type SendResult,
  type ServerMessage,
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
  const text: string | undefined = m.msg;
  // The target tells the shape apart (the schema's oneOf): echoes carry no position, a direct
  // message always names its recipient.
  const offset: number | undefined = m.target === "echo" ? undefined : m.offset;
  const to: string | undefined = m.target === "direct" ? m.to_id : undefined;
  if (m.target === "direct") {
    const recipient: string = m.to_id;
    void recipient;
  }
  void text, offset, to;
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
client.on("members", (clients: string[], m: PresenceListMessage) => void [clients, m.payload.clients]);
client.on("heartbeat", (m: HeartbeatMessage) => void m.sent_at.length);

// Every frame the server sends, narrowed by msg_type and target.
function describe(m: ServerMessage): string {
  switch (m.msg_type) {
    case "error":
      return m.payload.code;
    case "presence":
      return m.target === "echo" ? m.payload.clients.join() : `${m.payload.client_id} ${m.payload.event}`;
    case "heartbeat":
      return m.from_id;
    case "cmd":
      if (m.target === "echo" && !("from_id" in m)) {
        const resync: ResyncMessage = m;
        return resync.payload.reason + (resync.payload.stream ?? "");
      }
      return m.cmd ?? "";
    case "msg":
      return m.msg ?? "";
  }
}
void describe;
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
