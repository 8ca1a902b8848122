// migrated.ts: the same frontend on V3 with @aether/ws-client, after the move.
import { connect } from "@aether/ws-client";
import type { ChatView } from "./chat.js";

export function startChat(base: string, groupId: string, clientId: string, view: ChatView) {
  // Vision IDs in place of the integers; heartbeats, reconnects and ?recover= come built in.
  const client = connect({ url: base, groupId, clientId });
  client.on("msg", (m) => view.showMessage(m.from_id ?? "the platform", m.msg ?? ""));
  client.on("cmd", (m) => m.cmd === "RELOAD_UI" && view.reloadHistory("all"));
  client.on("error", (m) => view.showNotice(`rejected: ${m.msg}`)); // m.payload.code is typed
  client.onResync(({ stream }) => view.reloadHistory(stream ?? "all")); // new: what was not replayed
  return {
    say: (text: string) => client.send.group(text),
    whisper: (toId: string, text: string) => client.send.direct(toId, text), // a Vision ID
    stop: () => client.close(),
  };
}
