// The observer of the reconnect storm benchmark (storm.sh): one stock socket.io-client socket,
// identified as "storm-observer", subscribed (presence:subscribe, in chunks) to every user of the
// run, so that with broadcast = scoped it receives each of their presence:online and
// presence:offline events. It keeps its view (who is online, from the events alone) and a log of
// every event with its arrival time.
// Prints "subscribed" once every subscription was acknowledged. Then answers each line on stdin
// with one JSON line:
//   status     -> {"online": users online in the view, "onlineEvents", "offlineEvents",
//                  "disconnects": times this socket lost its connection, "resets": times the
//                  server said the view is void (presence:resync {reset: true})}
// After a lost connection it reconnects, subscribes again and rebuilds its view from
// presence:query (what it missed meanwhile is not in the log; the log says "resync"); after a
// reset it rebuilds it the same way.
//   dump PATH  -> {"ok": true}; PATH gets a line "<ms since the epoch> on|off <userId>" per event
// Exits when its stdin closes.
// Usage: node storm-observer.mjs URL PREFIX:COUNT[,PREFIX:COUNT...]   (users PREFIX0..COUNT-1)
import { writeFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { io } from "socket.io-client";

const [url, spec] = process.argv.slice(2);
const ids = [];
for (const part of spec.split(",")) {
  const at = part.lastIndexOf(":");
  const prefix = part.slice(0, at);
  const count = Number(part.slice(at + 1));
  for (let i = 0; i < count; i++) ids.push(`${prefix}${i}`);
}
const CHUNK = 5000; // ids per presence:subscribe: well under max_payload

const online = new Set();
const log = [];
let onlineEvents = 0, offlineEvents = 0, disconnects = 0;
const wall = () => performance.timeOrigin + performance.now();

const socket = io(url, { transports: ["websocket"], auth: { userId: "storm-observer" } });
socket.on("presence:online", (e) => {
  onlineEvents++;
  online.add(e.userId);
  log.push(`${wall().toFixed(0)} on ${e.userId}`);
});
socket.on("presence:offline", (e) => {
  offlineEvents++;
  online.delete(e.userId);
  log.push(`${wall().toFixed(0)} off ${e.userId}`);
});
socket.on("connect_error", (err) => console.error(`storm-observer: ${err.message}`));
socket.on("disconnect", (why) => {
  disconnects++;
  console.error(`storm-observer: disconnected: ${why}`);
});

async function ask(event, arg) {
  const ack = await socket.timeout(120000).emitWithAck(event, arg);
  if (!ack.ok) {
    console.error(`storm-observer: ${event}: ${JSON.stringify(ack.error)}`);
    process.exit(1);
  }
  return ack;
}

let first = true;
socket.on("connect", async () => {
  for (let i = 0; i < ids.length; i += CHUNK) await ask("presence:subscribe", { userIds: ids.slice(i, i + CHUNK) });
  if (first) {
    first = false;
    console.log("subscribed");
    return;
  }
  await rebuild(); // back after a lost connection
});

// The view is rebuilt from the store.
async function rebuild() {
  log.push(`${wall().toFixed(0)} resync -`);
  online.clear();
  for (let i = 0; i < ids.length; i += CHUNK) {
    const { users } = await ask("presence:query", { userIds: ids.slice(i, i + CHUNK) });
    for (const [id, u] of Object.entries(users)) if (u.online) online.add(id);
  }
}

let resets = 0;
socket.on("presence:resync", (d) => {
  if (d?.reset !== true) return;
  resets++;
  rebuild();
});

createInterface({ input: process.stdin })
  .on("line", (line) => {
    const [cmd, arg] = line.trim().split(/\s+/, 2);
    if (cmd === "status") {
      console.log(JSON.stringify({ online: online.size, onlineEvents, offlineEvents, disconnects, resets }));
    } else if (cmd === "dump") {
      writeFileSync(arg, log.length ? log.join("\n") + "\n" : "");
      console.log(JSON.stringify({ ok: true }));
    }
  })
  .on("close", () => process.exit(0));
