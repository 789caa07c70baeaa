// Presence event latency and bulk query cost under load, for presenced (either broadcast mode).
// N idle identified users are held by a child process; an observer subscribes to each fresh user
// (so broadcast=scoped delivers to it too), then K fresh users connect and disconnect one at a
// time: connect() -> observer's presence:online, disconnect() -> observer's presence:offline.
// Then Q bulk presence:query calls of 1000 ids. Prints one JSON line.
// Usage: node presence-latency.mjs --url URL [--observer-url URL] [--n 1000] [--k 300]
//        [--queries 200] [--redis-port P]   (with --redis-port: Redis commands per connect/disconnect)
import { spawn, execFileSync } from "node:child_process";
import { io } from "socket.io-client";

const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : dflt;
};
const url = arg("url", "http://127.0.0.1:3000");
const obsUrl = arg("observer-url", url);
const n = Number(arg("n", 1000));
const k = Number(arg("k", 300));
const queries = Number(arg("queries", 200));
const redisPort = arg("redis-port", "");
const prefix = `idle${process.pid}-`;
const opts = { transports: ["websocket"], forceNew: true, reconnection: false };

const holder = spawn(process.execPath, [new URL("./idle-holder.mjs", import.meta.url).pathname, url, String(n), prefix],
  { stdio: ["pipe", "pipe", "inherit"] });
await new Promise((resolve, reject) => {
  holder.stdout.on("data", (d) => { if (String(d).includes("ready")) resolve(); });
  holder.on("exit", (c) => reject(new Error(`idle holder exited ${c}`)));
});

const connect = (u, auth) => new Promise((resolve, reject) => {
  const s = io(u, { ...opts, auth });
  s.once("connect", () => resolve(s));
  s.once("connect_error", reject);
});
const obs = await connect(obsUrl, {});
const waiters = new Map();
for (const ev of ["presence:online", "presence:offline"]) {
  obs.on(ev, (p) => {
    const w = waiters.get(`${ev}/${p.userId}`);
    if (w) { waiters.delete(`${ev}/${p.userId}`); w(); }
  });
}
const waitEvent = (ev, user) => new Promise((resolve) => waiters.set(`${ev}/${user}`, resolve));
const now = () => Number(process.hrtime.bigint()) / 1e6;
const redisCalls = () => {
  if (!redisPort) return 0;
  const out = execFileSync("redis-cli", ["-p", redisPort, "INFO", "commandstats"], { encoding: "utf8" });
  return [...out.matchAll(/calls=(\d+)/g)].reduce((a, m) => a + Number(m[1]), 0);
};
// Calls made inside scripts count too (commandstats counts every command Redis executes); the
// INFO call itself adds one per sample, subtracted below.
let onlineMs = [], offlineMs = [], callsConnect = 0, callsDisconnect = 0;
for (let i = 0; i < k; i++) {
  const user = `fresh${process.pid}-${i}`;
  await obs.emitWithAck("presence:subscribe", { userIds: [user] });
  const c0 = redisCalls();
  const on = waitEvent("presence:online", user);
  const t0 = now();
  const s = io(url, { ...opts, auth: { userId: user } });
  await on;
  onlineMs.push(now() - t0);
  await new Promise((r) => setTimeout(r, 20));
  const c1 = redisCalls();
  const off = waitEvent("presence:offline", user);
  const t1 = now();
  s.disconnect();
  await off;
  offlineMs.push(now() - t1);
  await new Promise((r) => setTimeout(r, 20));
  const c2 = redisCalls();
  callsConnect += c1 - c0 - 1;
  callsDisconnect += c2 - c1 - 1;
  await obs.emitWithAck("presence:unsubscribe", { userIds: [user] });
}
const ids = Array.from({ length: 1000 }, (_, i) => `${prefix}${i}`);
const queryMs = [];
for (let i = 0; i < queries; i++) {
  const t0 = now();
  const r = await obs.emitWithAck("presence:query", { userIds: ids });
  queryMs.push(now() - t0);
  if (!r.ok) throw new Error(JSON.stringify(r));
}
const q = (a, p) => { const s = [...a].sort((x, y) => x - y); return +s[Math.min(s.length - 1, Math.floor(p * s.length))].toFixed(3); };
console.log(JSON.stringify({ url, idle: n, k,
  online_p50_ms: q(onlineMs, 0.5), online_p99_ms: q(onlineMs, 0.99),
  offline_p50_ms: q(offlineMs, 0.5), offline_p99_ms: q(offlineMs, 0.99),
  query1000_p50_ms: q(queryMs, 0.5), query1000_p99_ms: q(queryMs, 0.99),
  ...(redisPort ? { redis_calls_per_connect: +(callsConnect / k).toFixed(1),
                    redis_calls_per_disconnect: +(callsDisconnect / k).toFixed(1) } : {}) }));
holder.stdin.end();
obs.disconnect();
process.exit(0);
