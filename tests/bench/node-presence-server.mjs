// The reference for presence benchmarks: what users deploy today instead of presenced. A socket.io
// 4.8 server with @socket.io/redis-adapter (so several such processes can share the broadcasts) and
// the common Node.js presence handler:
//   - on connection with auth.userId: SADD the socket id to the user's Redis set; when the set goes
//     from 0 to 1 member, io.emit("presence:online", {userId, socketId, status}) to everyone;
//   - on disconnect: SREM, remember lastSeen; when the set is empty, io.emit("presence:offline",
//     {userId, socketId, lastSeen}) to everyone;
//   - presence:room:join {room}: the socket joins the Socket.IO room, SADD the user to the room's
//     Redis set, and when they were not in it, io.to(room).emit("presence:room:join") through the
//     adapter; the disconnect SREMs the user from the rooms the socket joined;
//   - presence:status {status}: SET the user's status, io.emit("presence:update") to everyone;
//   - presence:query {userIds} -> ack {ok, users: {id: {online}}} from one pipeline of SCARD;
//   - presence:subscribe / presence:unsubscribe / presence:heartbeat -> ack {ok} (every socket gets
//     every event anyway), so the same load and latency tools drive both servers;
//   - GET /v1/users?ids=a,b -> {"users": {"a": true, "b": false}}, the shape of presenced's answer.
// Usage: node node-presence-server.mjs [--port 3100] [--host 127.0.0.1]
//        [--redis redis://127.0.0.1:6379/0] [--prefix presence:]
import { createServer } from "node:http";
import { Server } from "socket.io";
import { createAdapter } from "@socket.io/redis-adapter";
import { createClient } from "redis";

const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : dflt;
};
const port = Number(arg("port", 3100));
const host = arg("host", "127.0.0.1");
const redisUrl = arg("redis", "redis://127.0.0.1:6379");
const prefix = arg("prefix", "presence:");
const userKey = (userId) => `${prefix}user:${userId}`;
const lastSeenKey = (userId) => `${prefix}lastseen:${userId}`;
const roomKey = (room) => `${prefix}room:${room}`;
const statusKey = (userId) => `${prefix}status:${userId}`;

const redis = createClient({ url: redisUrl });
const sub = redis.duplicate();
for (const c of [redis, sub]) c.on("error", (e) => console.error("redis:", e.message));
await Promise.all([redis.connect(), sub.connect()]);

const validUserId = (u) => typeof u === "string" && u.length > 0 && u.length <= 128;
const validIds = (ids) => Array.isArray(ids) && ids.length <= 10000 && ids.every(validUserId);

async function onlineMap(ids) {
  const pipe = redis.multi();
  for (const id of ids) pipe.sCard(userKey(id));
  const counts = ids.length ? await pipe.execAsPipeline() : [];
  return counts;
}

const http = createServer(async (req, res) => {
  const url = new URL(req.url, "http://localhost");
  if (req.method !== "GET" || url.pathname !== "/v1/users") {
    res.writeHead(404, { "content-type": "application/json" });
    res.end('{"error":{"code":"not_found","message":"no such route"}}');
    return;
  }
  const ids = (url.searchParams.get("ids") || "").split(",").filter((s) => s.length);
  if (!ids.length || !validIds(ids)) {
    res.writeHead(400, { "content-type": "application/json" });
    res.end('{"error":{"code":"invalid_argument","message":"ids=a,b,c"}}');
    return;
  }
  try {
    const counts = await onlineMap(ids);
    const users = {};
    ids.forEach((id, i) => { users[id] = counts[i] > 0; });
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ users }));
  } catch (e) {
    res.writeHead(503, { "content-type": "application/json" });
    res.end(JSON.stringify({ error: { code: "store_unavailable", message: e.message } }));
  }
});

const io = new Server(http, { cors: { origin: "*" }, adapter: createAdapter(redis, sub) });

io.on("connection", async (socket) => {
  const userId = socket.handshake.auth?.userId;
  const ok = (ack) => { if (typeof ack === "function") ack({ ok: true }); };
  socket.on("presence:subscribe", (_, ack) => ok(ack));
  socket.on("presence:unsubscribe", (_, ack) => ok(ack));
  socket.on("presence:heartbeat", (_, ack) => ok(ack));
  socket.on("presence:query", async (msg, ack) => {
    if (typeof ack !== "function") return;
    if (!msg || !validIds(msg.userIds))
      return ack({ ok: false, error: { code: "invalid_argument", message: "userIds" } });
    try {
      const counts = await onlineMap(msg.userIds);
      const users = {};
      msg.userIds.forEach((id, i) => { users[id] = { online: counts[i] > 0 }; });
      ack({ ok: true, users });
    } catch (e) {
      ack({ ok: false, error: { code: "store_unavailable", message: e.message } });
    }
  });
  const joined = new Set();
  const fail = (ack, e) => ack({ ok: false, error: { code: "store_unavailable", message: e.message } });
  socket.on("presence:room:join", async (msg, ack) => {
    if (typeof ack !== "function") return;
    if (!validUserId(userId) || !msg || !validUserId(msg.room))
      return ack({ ok: false, error: { code: "invalid_argument", message: "room" } });
    socket.join(msg.room);
    joined.add(msg.room);
    try {
      if (await redis.sAdd(roomKey(msg.room), userId))
        io.to(msg.room).emit("presence:room:join", { userId, room: msg.room });
      ack({ ok: true, room: msg.room });
    } catch (e) {
      fail(ack, e);
    }
  });
  socket.on("presence:status", async (msg, ack) => {
    if (typeof ack !== "function") return;
    if (!validUserId(userId) || !msg || typeof msg.status !== "string")
      return ack({ ok: false, error: { code: "invalid_argument", message: "status" } });
    try {
      await redis.set(statusKey(userId), msg.status);
      io.emit("presence:update", { userId, status: msg.status });
      ack({ ok: true });
    } catch (e) {
      fail(ack, e);
    }
  });
  if (!validUserId(userId)) return; // anonymous: may query, is not online
  // Registered before the first await, so a socket that leaves at once is still removed (the SREM
  // follows the SADD on the same Redis connection).
  socket.on("disconnect", async () => {
    try {
      const lastSeen = Date.now();
      const tx = redis.multi().sRem(userKey(userId), socket.id).sCard(userKey(userId))
        .set(lastSeenKey(userId), String(lastSeen));
      for (const room of joined) tx.sRem(roomKey(room), userId);
      const [, left] = await tx.exec();
      if (left === 0) io.emit("presence:offline", { userId, socketId: socket.id, lastSeen });
    } catch (e) {
      console.error("presence offline:", e.message);
    }
  });
  try {
    const [, count] = await redis.multi().sAdd(userKey(userId), socket.id).sCard(userKey(userId)).exec();
    if (count === 1)
      io.emit("presence:online", { userId, socketId: socket.id, status: "online" });
  } catch (e) {
    console.error("presence online:", e.message);
  }
});

http.listen(port, host, () => console.error(`node presence reference on ${host}:${port}, redis ${redisUrl}`));
process.on("SIGTERM", () => process.exit(0));
