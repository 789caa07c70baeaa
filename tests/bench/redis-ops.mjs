// What one Redis pays per presence operation: CPU (INFO cpu deltas, microseconds), commands
// executed (INFO commandstats, commands run inside scripts included, the sampling INFO calls
// excluded), socket reads and writes (INFO stats total_reads_processed / total_writes_processed:
// Redis's wake-ups, which requests sent together share), bytes received and sent (INFO stats
// total_net_input_bytes / total_net_output_bytes; the sampling's own reads, writes and traffic
// subtracted) and memory (INFO memory used_memory), for presenced and
// for the Node.js reference alike: the same clients drive both. Prints one JSON line.
//
// Phases, in this order, each measured alone (the next starts once Redis is quiet again); Redis's
// idle rate (its own housekeeping, the server's pings, stream reads and lease refreshes) is
// measured for 1.5 s right before and right after each phase and subtracted over the phase's
// duration (phases of the reference that broadcast to everyone last long: their figures move
// more):
//   cycle       --users fresh users connect and disconnect at once, no rooms: 2 transitions each
//   connect     --users fresh users connect and stay (one transition each); memory per user here
//   join        each of them joins one of users/10 rooms (presence:room:join; one room:join each)
//   status      each sets status "away" (presence:status: one update each)
//   query100    --queries presence:query calls of 100 ids of connected users
//   query1000   --queries presence:query calls of 1000 ids
//   http100     --queries GET /v1/users?ids= of 100 ids
//   disconnect  the --users users disconnect (room:leave and offline each)
// Usage: node redis-ops.mjs --url URL --redis-port P [--redis-db 0] [--users 1000]
//        [--concurrency 50] [--queries 300] [--query-concurrency 10]
import { createClient } from "redis";
import WebSocket from "ws";
import { wsUrl } from "./lean-client.mjs";
import { arg, sleep } from "./bench-lib.mjs";

const url = arg("url", "http://127.0.0.1:3000");
const redisPort = Number(arg("redis-port", 6379));
const users = Number(arg("users", 1000));
const concurrency = Number(arg("concurrency", 50));
const queries = Number(arg("queries", 300));
const queryConcurrency = Number(arg("query-concurrency", 10));
const tag = `ops${process.pid}-`;
const target = wsUrl(url);

// ---- a Socket.IO client with acknowledgements, on a bare WebSocket ----

class Client {
  constructor(ws) {
    this.ws = ws;
    this.next = 1;
    this.acks = new Map();
    ws.on("message", (data) => this.onFrame(data));
    ws.on("close", () => {
      for (const [, p] of this.acks) p.reject(new Error("closed"));
      this.acks.clear();
    });
  }

  static open(auth) {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(target, { perMessageDeflate: false });
      let client = null;
      const timer = setTimeout(() => { ws.terminate(); reject(new Error("connect timeout")); }, 20000);
      ws.on("error", (e) => { clearTimeout(timer); reject(e); });
      ws.on("message", (data) => {
        if (client) return;
        const s = data.toString();
        if (s[0] === "0") ws.send(auth ? `40${JSON.stringify(auth)}` : "40");
        else if (s.startsWith("40")) { clearTimeout(timer); client = new Client(ws); resolve(client); }
        else if (s.startsWith("44")) { clearTimeout(timer); ws.terminate(); reject(new Error(`refused: ${s}`)); }
      });
    });
  }

  onFrame(data) {
    if (data.length === 1 && data[0] === 0x32) return this.ws.send("3"); // ping -> pong
    if (data[0] !== 0x34 || data[1] !== 0x33) return; // only acks ("43<id>[...]") matter here
    const s = data.toString();
    const m = /^43(\d+)/.exec(s);
    const p = m && this.acks.get(Number(m[1]));
    if (!p) return;
    this.acks.delete(Number(m[1]));
    const [answer] = JSON.parse(s.slice(m[0].length));
    if (answer && answer.ok === false) p.reject(new Error(JSON.stringify(answer.error)));
    else p.resolve(answer);
  }

  emit(event, payload) {
    const id = this.next++;
    return new Promise((resolve, reject) => {
      this.acks.set(id, { resolve, reject });
      this.ws.send(`42${id}${JSON.stringify([event, payload])}`);
    });
  }

  close() {
    return new Promise((resolve) => {
      if (this.ws.readyState === WebSocket.CLOSED) return resolve();
      this.ws.once("close", resolve);
      this.ws.send("41");
      this.ws.close();
    });
  }
}

// Runs fn(i) for i in [0, n) with `c` in flight.
async function pool(n, c, fn) {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(c, n) }, async () => {
    while (next < n) await fn(next++);
  }));
}

// ---- Redis counters ----

const redis = createClient({ url: `redis://127.0.0.1:${redisPort}` });
await redis.connect();

function field(info, name) {
  const m = info.match(new RegExp(`^${name}:([\\d.]+)`, "m"));
  return m ? Number(m[1]) : 0;
}
// One sample: CPU seconds, commands by name (INFO's own excluded), network bytes, memory.
async function sample() {
  const info = await redis.sendCommand(["INFO", "cpu", "commandstats", "stats", "memory"]);
  const calls = {};
  for (const m of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) calls[m[1]] = Number(m[2]);
  // The INFO reply itself went out between this sample and the next one's counters.
  return {
    t: performance.now(),
    cpu: field(info, "used_cpu_sys") + field(info, "used_cpu_user"),
    calls,
    inBytes: field(info, "total_net_input_bytes"),
    outBytes: field(info, "total_net_output_bytes"),
    mem: field(info, "used_memory"),
    // Reads of a client's socket (each a wake-up of Redis's event loop for that connection,
    // however many requests it brings) and writes of replies: what batching saves.
    reads: field(info, "total_reads_processed"),
    writes: field(info, "total_writes_processed"),
    infoBytes: Buffer.byteLength(info) + 16,
  };
}
function delta(a, b) {
  const calls = {};
  let total = 0;
  for (const [k, v] of Object.entries(b.calls)) {
    if (k === "info") continue;
    const d = v - (a.calls[k] ?? 0);
    if (d > 0) { calls[k] = d; total += d; }
  }
  return {
    ms: b.t - a.t, cpuUs: (b.cpu - a.cpu) * 1e6, calls, total,
    // INFO's request (about 45 bytes) and its reply (a.infoBytes) are the sampler's.
    inBytes: b.inBytes - a.inBytes - 45, outBytes: b.outBytes - a.outBytes - a.infoBytes,
    mem: b.mem - a.mem,
    // INFO's request is one read, the previous sample's reply one write.
    reads: b.reads - a.reads - 1, writes: b.writes - a.writes - 1,
  };
}
// Waits until Redis has run at most `idleCalls` commands (INFO aside) in each of the last
// quietMs / 250 windows of 250 ms, or maxMs passed. An idle presenced still pings, reads its
// stream and refreshes its lease (a script of about ten commands) a few times a second.
async function quiet(quietMs = 500, maxMs = 15000, idleCalls = 24) {
  const t0 = Date.now();
  let prev = await sample(), since = Date.now();
  while (Date.now() - since < quietMs && Date.now() - t0 < maxMs) {
    await sleep(250);
    const s = await sample();
    if (delta(prev, s).total > idleCalls) since = Date.now();
    prev = s;
  }
}

const result = { url, users, concurrency, queries };

// Measures one phase: `count` operations done by `work`, then Redis quiet again.
async function phase(name, count, work) {
  // Redis's idle rate right before the phase: it varies with what Redis did before (a hash table
  // that grew is rehashed in the background for a while).
  await quiet();
  const i0 = await sample();
  await sleep(1500);
  const a = await sample();
  const w0 = performance.now();
  await work();
  const workMs = performance.now() - w0;
  // What the operations set off after their answers (the stream read of their events, the
  // adapter's PUBLISH) is theirs too: the sample ends once that has run.
  await quiet(250, 5000);
  const b = await sample();
  const d = delta(a, b);
  // ... and right after it: the rate is the mean of the two.
  await sleep(1500);
  const before = delta(i0, a), after = delta(b, await sample());
  const rate = (k) => (before[k] + after[k]) / (before.ms + after.ms);
  const per = (x, k) => +((x - rate(k) * d.ms) / count).toFixed(2);
  const top = Object.entries(d.calls).sort((x, y) => y[1] - x[1]).slice(0, 12)
    .map(([k, v]) => [k, +(v / count).toFixed(2)]);
  result[name] = {
    count, ms: Math.round(d.ms), workMs: Math.round(workMs), idleCpuUsPerS: Math.round(rate("cpuUs") * 1000),
    redisCpuUs: per(d.cpuUs, "cpuUs"),
    commands: per(d.total, "total"),
    inBytes: per(d.inBytes, "inBytes"),
    outBytes: per(d.outBytes, "outBytes"),
    reads: per(d.reads, "reads"),
    writes: per(d.writes, "writes"),
    memBytes: +(d.mem / count).toFixed(1),
    byCommand: Object.fromEntries(top),
  };
  console.error(`redis-ops: ${name}: ${JSON.stringify(result[name])}`);
}

// cycle: fresh users connect and disconnect at once.
await phase("cycle", 2 * users, () => pool(users, concurrency, async (i) => {
  const c = await Client.open({ userId: `${tag}c${i}` });
  await c.close();
}));

const clients = new Array(users);
await phase("connect", users, () => pool(users, concurrency, async (i) => {
  clients[i] = await Client.open({ userId: `${tag}u${i}` });
}));
const rooms = Math.max(1, Math.floor(users / 10));
await phase("join", users, () => pool(users, concurrency, async (i) => {
  await clients[i].emit("presence:room:join", { room: `${tag}room${i % rooms}` });
}));
await phase("status", users, () => pool(users, concurrency, async (i) => {
  await clients[i].emit("presence:status", { status: "away" });
}));

const askers = await Promise.all(Array.from({ length: queryConcurrency }, () => Client.open(null)));
const ids = (k, from) => Array.from({ length: k }, (_, j) => `${tag}u${(from + j) % users}`);
let answeredOnline = 0;
for (const k of [100, 1000]) {
  await phase(`query${k}`, queries, () => pool(queries, queryConcurrency, async (i) => {
    const r = await askers[i % queryConcurrency].emit("presence:query", { userIds: ids(k, i * 7) });
    answeredOnline += Object.values(r.users).filter((u) => u.online).length;
  }));
}
result.queryOnlineFraction = +(answeredOnline / (queries * 1100)).toFixed(3);
let httpStatus = 0;
await phase("http100", queries, () => pool(queries, queryConcurrency, async (i) => {
  const res = await fetch(`${url}/v1/users?ids=${ids(100, i * 7).map(encodeURIComponent).join(",")}`);
  httpStatus = res.status;
  await res.text();
}));
result.httpStatus = httpStatus;
await Promise.all(askers.map((c) => c.close()));

await phase("disconnect", users, () => pool(users, concurrency, async (i) => {
  await clients[i].close();
}));

await redis.quit();
console.log(JSON.stringify(result));
process.exit(0);
