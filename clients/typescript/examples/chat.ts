// chat.ts: a group chat panel on @aether/ws-client. In a browser as is; on Node 20 pass
// { WebSocket } from the "ws" package to connect() (Node 22 has a global WebSocket).
import { connect, type AetherClient } from "@aether/ws-client";

/** What the page shows; the client calls it, in order, with every message once. */
export interface ChatView {
  showMembers(clients: string[]): void;
  showMessage(from: string, text: string): void;
  showNotice(text: string): void;
  reloadHistory(stream: string): void; // refetch from your API what the socket could not replay
}

export function startChat(url: string | string[], groupId: string, clientId: string, view: ChatView): AetherClient {
  const client = connect({ url, groupId, clientId, queue: 50 }); // hold 50 sends while reconnecting

  // Each (re)connection: (re)load the member list; then presence events keep it current.
  client.on("open", async () => view.showMembers(await client.members()));
  client.on("presence", (event) => view.showNotice(`${event.client_id} ${event.event === "join" ? "came online" : "went offline"}`));
  client.on("msg", (m) => view.showMessage(m.from_id ?? "the platform", m.msg ?? ""));
  client.on("cmd", (m) => m.cmd === "RELOAD_UI" && view.reloadHistory("all"));
  // One of your frames was rejected (the socket stays open): program against the code.
  client.on("error", (m) => view.showNotice(m.payload.code === "rate-limited" ? `slow down (${m.payload.retry_after} s)` : `rejected: ${m.msg}`));
  // Messages may have been lost (a Redis failure, a gap beyond history): refetch.
  client.onResync(({ stream, reason }) => {
    view.showNotice(`refetching ${stream ?? "everything"} (${reason})`);
    view.reloadHistory(stream ?? "all");
  });
  client.on("close", ({ code, reason, reconnectInMs }) => {
    if (reconnectInMs === null) view.showNotice(`disconnected for good: ${code} ${reason}`); // 1008, 4501, ...
  });

  client.send.group("Hello team!"); // "queued" until the first connection is answered
  return client; // client.send.direct("bob", "hi"), ..., await client.close()
}
