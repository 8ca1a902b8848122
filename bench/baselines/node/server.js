// socket.io + @socket.io/redis-adapter: the Node.js stack a team would pick instead of this
// project, behaving on the wire like bench/baselines/socketio_app.py (the python-socketio one).
//
// Clients pass {group, client} as Socket.IO auth; the connection joins its group's room, and
// each "msg" event is re-emitted to the room (sender included) with from_id, group_id and
// sent_at stamped, encoded once by socket.io and carried to the other nodes by the adapter.
//
//   node server.js --port 8001 --redis-url redis://127.0.0.1:6379/0 [--adapter classic|sharded]
//
// classic: createAdapter (PUBLISH/PSUBSCRIBE on shared channels, every node gets every message).
// sharded: createShardedAdapter (SPUBLISH/SSUBSCRIBE per room, Redis >= 7), subscriptionMode
// "dynamic" (its default, spelled out) so a node subscribes only to its clients' rooms.
"use strict";

const http = require("node:http");
const { performance } = require("node:perf_hooks");
const { parseArgs } = require("node:util");
const { Server } = require("socket.io");
const { createAdapter, createShardedAdapter } = require("@socket.io/redis-adapter");
const { createClient } = require("redis");

const { values: args } = parseArgs({
  options: {
    host: { type: "string", default: "127.0.0.1" },
    port: { type: "string" },
    "redis-url": { type: "string" },
    adapter: { type: "string", default: process.env.BENCH_SOCKETIO_ADAPTER || "classic" },
  },
});
if (!args.port || !args["redis-url"] || !["classic", "sharded"].includes(args.adapter)) {
  console.error("usage: node server.js --port N --redis-url URL [--adapter classic|sharded]");
  process.exit(2);
}

// Wall clock with microseconds, like Python's datetime.isoformat(): the bench splits latency
// at this stamp, and Date alone has milliseconds only.
function sentAt() {
  const us = Math.floor((performance.timeOrigin + performance.now()) * 1000);
  const iso = new Date(Math.floor(us / 1000)).toISOString();
  return `${iso.slice(0, 23)}${String(us % 1000).padStart(3, "0")}Z`;
}

async function main() {
  const pub = createClient({ url: args["redis-url"] });
  const sub = pub.duplicate();
  for (const client of [pub, sub]) {
    client.on("error", (err) => console.error("redis:", err.message));
  }
  await Promise.all([pub.connect(), sub.connect()]);
  const adapter =
    args.adapter === "sharded"
      ? createShardedAdapter(pub, sub, { subscriptionMode: "dynamic" })
      : createAdapter(pub, sub);

  const httpServer = http.createServer();
  const io = new Server(httpServer, { adapter, cors: { origin: "*" } });

  // A connect without a group is refused (CONNECT_ERROR, "44"), as the python baseline does.
  io.use((socket, next) => {
    const auth = socket.handshake.auth;
    if (!auth || typeof auth.group !== "string") {
      next(new Error("Connection rejected by server"));
      return;
    }
    next();
  });

  io.on("connection", (socket) => {
    const groupId = socket.handshake.auth.group;
    const clientId = socket.handshake.auth.client ?? socket.id;
    socket.join(groupId);
    socket.on("msg", (payload) => {
      io.to(groupId).emit("msg", {
        version: "3",
        msg_type: "msg",
        target: "group",
        from_id: clientId,
        group_id: groupId,
        payload,
        sent_at: sentAt(),
      });
    });
  });

  httpServer.listen({ host: args.host, port: Number(args.port), backlog: 2048 });
  const stop = () => {
    io.close();
    Promise.allSettled([pub.quit(), sub.quit()]).then(() => process.exit(0));
    setTimeout(() => process.exit(0), 2000).unref();
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
