// What one hostile client costs everybody else. Three measurements against one presenced (started
// here from --bin on a free port with the memory store and default limits, or an existing one at
// --url), each printed as one JSON line:
//   query:     the round trip of one presence:query naming --ids distinct ids (median and worst of
//              --repeat), from an otherwise idle daemon;
//   bystander: an attacker sends such queries as fast as the rate limit lets it (the burst, then
//              --rate tokens per second, a query costing --cost tokens) while a bystander sends a
//              presence:heartbeat every --probe-ms; its round trips (p50, p99, worst) are the
//              delay the attack causes it;
//   churn:     one WebSocket sends `40{"userId":...}` / `41` pairs as fast as it can for
//              --churn-s seconds; an observer counts the presence:online and presence:offline
//              events it receives meanwhile. Then again, opening a new WebSocket whenever the
//              daemon closes one.
// Numbers, not a test. Usage:
//   node tests/bench/abuse.mjs --bin build/presenced [--set key=value ...] [--ids 10000]
//        [--repeat 10] [--attack-s 5] [--rate 20] [--burst 50] [--cost N] [--probe-ms 100]
//        [--churn-s 5]
//   node tests/bench/abuse.mjs --url http://127.0.0.1:3000 [...]
import { spawn } from "node:child_process";
import net from "node:net";
import WebSocket from "ws";
import { arg, procCpu, quantile, sleep } from "./bench-lib.mjs";
import { wsUrl } from "./lean-client.mjs";

const nIds = Number(arg("ids", 10000));
const repeat = Number(arg("repeat", 10));
const attackS = Number(arg("attack-s", 5));
const rate = Number(arg("rate", 20));
const burst = Number(arg("burst", 50));
const churnS = Number(arg("churn-s", 5));
const probeMs = Number(arg("probe-ms", 100));
// Tokens a query of nIds ids takes (--cost 1 for a daemon that counts every message as one).
const cost = Number(arg("cost", 1 + Math.floor((nIds - 1) / 1000)));
const sets = process.argv.flatMap((a, i) => (process.argv[i - 1] === "--set" ? ["--set", a] : []));

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

async function startDaemon(bin) {
  const port = await freePort();
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("PRESENCED_")));
  const proc = spawn(bin, ["--listen", `127.0.0.1:${port}`, "--set", "log_level=warn", ...sets],
    { stdio: ["ignore", "ignore", "inherit"], env });
  for (let i = 0; i < 200; i++) {
    const up = await new Promise((r) => {
      const s = net.connect({ host: "127.0.0.1", port }, () => { s.destroy(); r(true); });
      s.on("error", () => r(false));
    });
    if (up) return { url: `http://127.0.0.1:${port}`, proc };
    await sleep(25);
  }
  proc.kill("SIGKILL");
  throw new Error("presenced did not start");
}

// A minimal Socket.IO client over a bare WebSocket: CONNECT with `auth`, then emit-with-ack and
// an event counter. Resolves once connected.
function client(url, auth) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(wsUrl(url), { perMessageDeflate: false, maxPayload: 1 << 28 });
    const acks = new Map();
    const counts = {};
    let nextAck = 0;
    const c = {
      ws, counts,
      call(event, arg) {
        const id = nextAck++;
        ws.send(`42${id}${JSON.stringify([event, arg])}`);
        return new Promise((r) => acks.set(id, r));
      },
      close() { ws.terminate(); },
    };
    ws.on("error", reject);
    ws.on("message", (buf) => {
      const s = buf.toString();
      if (s === "2") return ws.send("3");
      if (s[0] === "0") return ws.send(`40${auth ? JSON.stringify(auth) : ""}`);
      if (s.startsWith("40")) return resolve(c);
      if (s.startsWith("44")) return reject(new Error(`refused: ${s}`));
      if (s.startsWith("43")) {
        const m = /^43(\d+)/.exec(s);
        const r = acks.get(Number(m[1]));
        acks.delete(Number(m[1]));
        r?.(s.length);
        return;
      }
      if (s.startsWith("42[")) {
        const name = s.slice(4, s.indexOf('"', 4));
        counts[name] = (counts[name] || 0) + 1;
      }
    });
  });
}

const ids = Array.from({ length: nIds }, (_, i) => `user-${i}`);

// Round trips, and (when the daemon was started here) the daemon's CPU time per query, which a
// busy machine does not inflate the way it inflates round trips.
async function measureQuery(url, pid) {
  const c = await client(url, null);
  const times = [];
  const cpu0 = procCpu(pid);
  for (let i = 0; i < repeat; i++) {
    const t0 = performance.now();
    await c.call("presence:query", { userIds: ids });
    times.push(performance.now() - t0);
    // A 10,000-id query costs 10 of the rate limit's tokens: stay under it.
    await sleep((1000 * cost) / rate);
  }
  const cpu = procCpu(pid) - cpu0;
  c.close();
  times.sort((a, b) => a - b);
  return { what: "query", ids: nIds, medianMs: +quantile(times, 0.5).toFixed(2),
    worstMs: +times[times.length - 1].toFixed(2),
    ...(pid ? { daemonCpuMsPerQuery: +((cpu * 1000) / repeat).toFixed(1) } : {}) };
}

async function measureBystander(url) {
  const attacker = await client(url, null);
  const bystander = await client(url, { userId: "bystander" });
  const until = performance.now() + attackS * 1000;
  let sent = 0, answered = 0;
  const attack = (async () => {
    const t0 = performance.now();
    while (performance.now() < until) {
      // The burst at once, then `rate` per second: what the token bucket lets through, a query
      // of n ids costing 1 + (n - 1) / 1000 tokens.
      const allowed = Math.floor((burst + ((performance.now() - t0) / 1000) * rate) / cost);
      while (sent < allowed) {
        sent++;
        attacker.call("presence:query", { userIds: ids }).then(() => answered++);
      }
      await sleep(5);
    }
  })();
  const rtts = [];
  while (performance.now() < until) {
    const t0 = performance.now();
    await bystander.call("presence:heartbeat", {});
    rtts.push(performance.now() - t0);
    await sleep(probeMs); // a well-behaved client: under the rate limit itself
  }
  await attack;
  attacker.close();
  bystander.close();
  rtts.sort((a, b) => a - b);
  return { what: "bystander", attackQueries: sent, answered, heartbeats: rtts.length,
    p50Ms: +quantile(rtts, 0.5).toFixed(2), p99Ms: +quantile(rtts, 0.99).toFixed(2),
    worstMs: +rtts[rtts.length - 1].toFixed(2) };
}

// One WebSocket sending CONNECT/DISCONNECT pairs without waiting for answers.
function churnOnce(url, until, stats) {
  return new Promise((resolve) => {
    const ws = new WebSocket(wsUrl(url), { perMessageDeflate: false });
    const pump = () => {
      if (performance.now() >= until || ws.readyState !== WebSocket.OPEN) return ws.terminate();
      // Keep the kernel buffers from growing without bound: write while little is queued.
      if (ws.bufferedAmount < 65536) {
        for (let i = 0; i < 50; i++) ws.send('40{"userId":"churner"}'), ws.send("41"), stats.pairs++;
      }
      setImmediate(pump);
    };
    ws.on("message", (buf) => {
      const s = buf.toString();
      if (s === "2") ws.send("3");
      else if (s[0] === "0") pump();
    });
    ws.on("error", () => {});
    ws.on("close", () => { stats.connections++; resolve(); });
  });
}

// `reconnect`: open a new WebSocket each time the daemon closes one, for the whole time (what is
// left then is bounded by how fast one address may open sessions); else one WebSocket only.
async function measureChurn(url, reconnect) {
  const observer = await client(url, { userId: "observer" });
  const stats = { pairs: 0, connections: 0 };
  const until = performance.now() + churnS * 1000;
  do await churnOnce(url, until, stats);
  while (reconnect && performance.now() < until);
  await sleep(500); // what was already queued arrives
  // The observer's own online is not the churner's.
  const online = (observer.counts["presence:online"] || 0) - 1;
  const offline = observer.counts["presence:offline"] || 0;
  observer.close();
  return { what: reconnect ? "churn, reconnecting" : "churn, one WebSocket", seconds: churnS,
    pairsSent: stats.pairs, connections: stats.connections, observerOnline: online,
    observerOffline: offline };
}

const bin = arg("bin", "");
const daemon = bin ? await startDaemon(bin) : null;
const url = daemon ? daemon.url : arg("url", "http://127.0.0.1:3000");
try {
  console.log(JSON.stringify(await measureQuery(url, daemon?.proc.pid)));
  console.log(JSON.stringify(await measureBystander(url)));
  console.log(JSON.stringify(await measureChurn(url, false)));
  console.log(JSON.stringify(await measureChurn(url, true)));
} finally {
  daemon?.proc.kill("SIGTERM");
}
process.exit(0);
