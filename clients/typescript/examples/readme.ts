import { connect } from "@aether/ws-client";

const client = connect({ url: "ws://127.0.0.1:8000", groupId: "team_a1", clientId: "device_x9", queue: 10 });
client.on("msg", (m) => console.log(m.from_id, m.msg));
client.send.group("Hello team!"); // queued until connected (queue: 10; without it, refused)
