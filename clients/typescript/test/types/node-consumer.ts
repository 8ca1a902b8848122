// Must compile without the DOM library (a Node 20 app with @types/node and the `ws` package):
// the package's declarations may not need browser types.
import WebSocket from "ws";
import { connect, type AetherClient } from "@aether/ws-client";

const client: AetherClient = connect({
  url: "ws://127.0.0.1:8000",
  groupId: "g1",
  clientId: "c1",
  WebSocket,
});
client.send.group("hello");
void client.close();
