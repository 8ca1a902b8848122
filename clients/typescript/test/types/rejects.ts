// Must NOT compile: each line after a `@ts-expect-error TSnnnn` directive is an error, and
// test/unit/types.test.mjs checks that each fails with that very code once the directives are
// removed (so a line cannot "fail" for an unrelated reason, such as a typo).
import WS from "ws";
import {
  connect,
  type DirectMessage,
  type ResyncMessage,
  type ResyncPayload,
  type WSMessageV3,
} from "@aether/ws-client";

const client = connect({ url: "ws://127.0.0.1:8000", groupId: "g1", clientId: "c1", WebSocket: WS });

// @ts-expect-error TS2353 a field the schema does not have (the server says unknown-field)
client.send.group({ text: "hi" });
// @ts-expect-error TS2322 heartbeat and presence go through the client itself, on echo
client.send.group({ msg_type: "heartbeat" });
// @ts-expect-error TS2322 msg_type "error" is the server's
client.send.broadcast({ msg_type: "error", msg: "x" });
// @ts-expect-error TS2322 payload is an object, not an array
client.send.echo({ payload: [1, 2] });
// @ts-expect-error TS2322 msg is a string, no number coercion
client.send.group({ msg: 5 });
// @ts-expect-error TS2554 direct needs the recipient
client.send.direct("hello");
// @ts-expect-error TS2353 the server sets from_id; a client never needs it
client.send.group({ msg: "hi", from_id: "bob" });
// @ts-expect-error TS2353 offset/epoch are server-filled
client.send.group({ msg: "hi", offset: 3 });
// @ts-expect-error TS2345 no such event
client.on("message", () => {});
// @ts-expect-error TS2367 presence events are join or leave
client.on("presence", (e) => e.event === "joined");
// @ts-expect-error TS2367 a msg handler gets msg messages only
client.on("msg", (m) => m.msg_type === "cmd");
// @ts-expect-error TS2741 clientId is required
connect({ url: "ws://127.0.0.1:8000", groupId: "g1" });
// @ts-expect-error TS2322 queue is a bound, not a flag
connect({ url: "ws://h", groupId: "g1", clientId: "c1", queue: true });
// @ts-expect-error TS2322 msg_type is one of the schema's values
const bad: WSMessageV3 = { msg_type: "chat", target: "group" };
// @ts-expect-error TS2322 target is one of the schema's values
const bad2: WSMessageV3 = { msg_type: "msg", target: "room" };
// @ts-expect-error TS2741 target is required by the schema
const bad3: WSMessageV3 = { msg_type: "msg" };
// @ts-expect-error TS2322 version is the string "3", not the number
const bad4: WSMessageV3 = { version: 3, msg_type: "msg", target: "group" };
void [bad, bad2, bad3, bad4];

// What the server sends is typed from the schema too: a wrong field fails.
// @ts-expect-error TS2339 an error payload has code and retry_after, nothing else
client.on("error", (m) => m.payload.kode);
// @ts-expect-error TS2367 error codes are the schema's (kebab-case)
client.on("error", (m) => m.payload.code === "rate_limited");
// @ts-expect-error TS2367 resync reasons are the schema's (and the client's no-position)
client.onResync((info) => info.reason === "broker-lost");
// @ts-expect-error TS2339 a presence event names one client; the list is the members handler's
client.on("presence", (_event, m) => m.payload.clients);
// @ts-expect-error TS2339 a heartbeat echo has no payload
client.on("heartbeat", (m) => m.payload);
// @ts-expect-error TS2339 echoes carry no position: only stream messages do
client.on("msg", (m) => m.target === "echo" && m.offset);
// @ts-expect-error TS2741 a direct message always names its recipient
const noRecipient: DirectMessage = { version: "3", msg_type: "msg", target: "direct", sent_at: "" };
// @ts-expect-error TS2353 a server resync notice has no from_id
const spoofed: ResyncMessage = { version: "3", msg_type: "cmd", target: "echo", cmd: "resync", from_id: "x", payload: { reason: "history-gap" }, sent_at: "" };
// @ts-expect-error TS2322 stream names are group, client and broadcast
const wrongStream: ResyncPayload = { reason: "history-gap", stream: "direct" };
void [noRecipient, spoofed, wrongStream];
