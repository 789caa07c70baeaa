// The reference for transport benchmarks: a plain socket.io 4.8 server with no presence logic,
// answering `message` with `message-back` as presenced's conformance mode does.
// Usage: node plain-server.mjs PORT
import { createServer } from "node:http";
import { Server } from "socket.io";

const port = Number(process.argv[2] || 3100);
const http = createServer();
const io = new Server(http, { cors: { origin: "*" } });
io.on("connection", (socket) => {
  socket.on("message", (...args) => socket.emit("message-back", ...args));
});
http.listen(port, "127.0.0.1", () => console.error(`plain socket.io server on ${port}`));
process.on("SIGTERM", () => process.exit(0));
