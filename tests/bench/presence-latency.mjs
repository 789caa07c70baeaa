// Presence event latency and bulk query cost under load, for presenced (either broadcast mode) and
// the Node.js reference (node-presence-server.mjs). Prints one JSON line.
//  1. N idle connections are held by --holders child processes (bench-lib.mjs startHolders): identified users,
//     or anonymous with --anon-idle. The observer (socket.io-client) connects after them, so a
//     broadcast to everyone reaches it last.
//  2. With --redis-port: --calls-k fresh users connect and disconnect one at a time, quietly, and
//     Redis's INFO commandstats gives the commands per connect and per disconnect.
//  3. With --churn R: a churn.mjs child starts R fresh users per second, each staying
//     --churn-hold-ms, for the rest of the run (2R presence transitions per second).
//  4. K fresh users connect and disconnect one at a time: io() -> the observer's presence:online,
//     disconnect() -> its presence:offline. The observer subscribes to each fresh user first, so
//     broadcast=scoped delivers to it too. p50/p99/p999 of each, and of both together ("event").
//     When the event carries a Redis stream id as `seq` (presenced with store=redis: "MS-N", MS
//     the Redis clock's milliseconds when the transition was appended), the observer also records
//     its delivery time, from MS to its arrival (one host, one clock, ms resolution): the stream
//     read and the fan-out, apart from the connect or close before them.
//  5. Q bulk presence:query calls of 1000 ids (the idle users'), still under churn.
// Usage: node presence-latency.mjs --url URL [--observer-url URL] [--n 1000] [--holders 1]
//        [--anon-idle] [--k 300] [--gap-ms 5] [--queries 200] [--redis-port P] [--calls-k 50]
//        [--churn 0] [--churn-hold-ms 1000] [--pid SERVER_PID] [--event-timeout-ms 30000]
//        [--holder-sources 127.0.0.1,127.0.0.2] (the holders' local addresses, in turn: to spread
//        them over presenced's workers)
import { spawn } from "node:child_process";
import { io } from "socket.io-client";
import { arg, flag, procCpu, quantile, redisCalls, sleep, startHolders } from "./bench-lib.mjs";

const url = arg("url", "http://127.0.0.1:3000");
const obsUrl = arg("observer-url", url);
const n = Number(arg("n", 1000));
const holderCount = Number(arg("holders", 1));
const anonIdle = flag("anon-idle");
const k = Number(arg("k", 300));
const gapMs = Number(arg("gap-ms", 5));
const queries = Number(arg("queries", 200));
const redisPort = arg("redis-port", "");
const callsK = Number(arg("calls-k", 50));
const churnRate = Number(arg("churn", 0));
const churnHoldMs = Number(arg("churn-hold-ms", 1000));
const pid = Number(arg("pid", 0));
const eventTimeoutMs = Number(arg("event-timeout-ms", 30000));
const prefix = `idle${process.pid}-`;
const opts = { transports: ["websocket"], forceNew: true, reconnection: false };
const now = () => performance.now();

const sources = arg("holder-sources", "").split(",").filter(Boolean);
const holders = await startHolders(url, n, { count: holderCount, prefix, anon: anonIdle, sources });
if (holders.failed) console.error(`presence-latency: ${holders.failed} idle connections failed`);

const connect = (u, auth) => new Promise((resolve, reject) => {
  const s = io(u, { ...opts, auth });
  s.once("connect", () => resolve(s));
  s.once("connect_error", reject);
});
const obs = await connect(obsUrl, {});
const waiters = new Map();
const deliveryMs = [];
for (const ev of ["presence:online", "presence:offline"]) {
  obs.on(ev, (p) => {
    const w = waiters.get(`${ev}/${p.userId}`);
    if (!w) return;
    waiters.delete(`${ev}/${p.userId}`);
    const m = typeof p.seq === "string" && /^(\d+)-\d+$/.exec(p.seq);
    if (m) deliveryMs.push(Date.now() - Number(m[1]));
    w(true);
  });
}
let missing = 0;
const waitEvent = (ev, user) => new Promise((resolve) => {
  const t = setTimeout(() => { waiters.delete(`${ev}/${user}`); missing++; resolve(false); }, eventTimeoutMs);
  waiters.set(`${ev}/${user}`, (v) => { clearTimeout(t); resolve(v); });
});

// One fresh user: subscribe, connect, online, disconnect, offline, unsubscribe. Returns the two
// latencies (null when the event never came) and, when `between` is given, calls it after each
// event has settled (used to sample Redis counters).
async function cycle(user, between) {
  await obs.emitWithAck("presence:subscribe", { userIds: [user] });
  if (between) await between("start");
  const on = waitEvent("presence:online", user);
  const t0 = now();
  const s = io(url, { ...opts, auth: { userId: user } });
  const gotOn = await on;
  const onlineMs = now() - t0;
  if (between) await between("online");
  const off = waitEvent("presence:offline", user);
  const t1 = now();
  s.disconnect();
  const gotOff = await off;
  const offlineMs = now() - t1;
  if (between) await between("offline");
  await obs.emitWithAck("presence:unsubscribe", { userIds: [user] });
  return [gotOn ? onlineMs : null, gotOff ? offlineMs : null];
}

const result = { url, idle: holders.connected, idleAnonymous: anonIdle, k };

// Redis commands per connect / disconnect, measured before any churn. Calls made inside scripts
// count too (commandstats counts every command Redis executes); each INFO sample adds one.
if (redisPort && callsK > 0) {
  let calls = 0, callsConnect = 0, callsDisconnect = 0;
  const between = async (phase) => {
    await sleep(20);
    const c = redisCalls(redisPort);
    if (phase === "online") callsConnect += c - calls - 1;
    if (phase === "offline") callsDisconnect += c - calls - 1;
    calls = c;
  };
  for (let i = 0; i < callsK; i++) await cycle(`calls${process.pid}-${i}`, between);
  result.redis_calls_per_connect = +(callsConnect / callsK).toFixed(1);
  result.redis_calls_per_disconnect = +(callsDisconnect / callsK).toFixed(1);
}

let churn = null, churnOut = "";
if (churnRate > 0) {
  churn = spawn(process.execPath, [new URL("./churn.mjs", import.meta.url).pathname, "--url", url,
    "--rate", String(churnRate), "--hold-ms", String(churnHoldMs), "--prefix", `churn${process.pid}-`],
  { stdio: ["pipe", "pipe", "inherit"] });
  churn.stdout.on("data", (d) => { churnOut += d; });
  await sleep(Math.min(3000, churnHoldMs + 1000)); // reach the steady number of churn users
}

const cpu0 = procCpu(pid);
deliveryMs.length = 0; // the latency phase's events only
const t0 = now();
const onlineMs = [], offlineMs = [];
for (let i = 0; i < k; i++) {
  const [a, b] = await cycle(`fresh${process.pid}-${i}`);
  if (a != null) onlineMs.push(a);
  if (b != null) offlineMs.push(b);
  if (gapMs) await sleep(gapMs);
}
const latencyS = (now() - t0) / 1000;
const cpu1 = procCpu(pid);

const ids = Array.from({ length: 1000 }, (_, i) => `${prefix}0-${i}`);
const queryMs = [];
for (let i = 0; i < queries; i++) {
  const t = now();
  const r = await obs.emitWithAck("presence:query", { userIds: ids });
  queryMs.push(now() - t);
  if (!r.ok) throw new Error(JSON.stringify(r));
}

if (churn) {
  const done = new Promise((r) => churn.on("exit", r));
  churn.stdin.end();
  await done;
  result.churn = JSON.parse(churnOut.trim());
  result.churn.transitionsPerSec = +((2 * result.churn.ok * 1000) / result.churn.ms).toFixed(1);
}
const idleLeft = await holders.count();
const both = [...onlineMs, ...offlineMs];
Object.assign(result, {
  churnRate,
  online_p50_ms: quantile(onlineMs, 0.5), online_p99_ms: quantile(onlineMs, 0.99), online_p999_ms: quantile(onlineMs, 0.999),
  offline_p50_ms: quantile(offlineMs, 0.5), offline_p99_ms: quantile(offlineMs, 0.99), offline_p999_ms: quantile(offlineMs, 0.999),
  event_samples: both.length, event_p50_ms: quantile(both, 0.5), event_p99_ms: quantile(both, 0.99),
  event_p999_ms: quantile(both, 0.999), event_max_ms: quantile(both, 1), events_missing: missing,
  delivery_p50_ms: quantile(deliveryMs, 0.5), delivery_p99_ms: quantile(deliveryMs, 0.99),
  query1000_p50_ms: quantile(queryMs, 0.5), query1000_p99_ms: quantile(queryMs, 0.99),
  latency_phase_s: +latencyS.toFixed(1),
  ...(pid ? { server_cpu_s_latency_phase: +(cpu1 - cpu0).toFixed(2) } : {}),
  idle_dropped: idleLeft.dropped,
});
console.log(JSON.stringify(result));
await holders.close();
obs.disconnect();
process.exit(0);
