// Runs examples/chat.ts (compiled to .build/ by `tsc -p test/examples/tsconfig.json`) against a
// real node, as tests/clients/test_examples.py drives it:
//
//   AETHER_NODE   base URL of the node (ws://127.0.0.1:PORT)
//
// Each call of the example's view is printed as one line. A direct message "bye" makes it
// close the client; the process must then exit on its own (nothing left scheduled).

import WS from "ws";

// The example uses the global WebSocket, as in a browser: Node 22 has one; Node 20 gets `ws`.
globalThis.WebSocket ??= WS;
const { startChat } = await import("./.build/examples/chat.js");

const node = process.env.AETHER_NODE;
if (!node) {
  console.log("FAIL set AETHER_NODE");
  process.exit(2);
}
const client = startChat(node, "team_a1", "device_ts1", {
  showMembers: (clients) => console.log(`members: ${clients.join(",")}`),
  showMessage: (from, text) => {
    console.log(`message from ${from}: ${text}`);
    if (text === "bye") void client.close().then(() => console.log("closed"));
  },
  showNotice: (text) => console.log(`notice: ${text}`),
  reloadHistory: (stream) => console.log(`reload ${stream}`),
});
