// The benchmark's load generator: opens N idle Socket.IO connections with the stock
// socket.io-client (the version pinned by this folder's package-lock.json), at most C connects in
// flight, spread over W worker processes, keeps them open, and measures:
//   - the connect rate and each connection's connect time (io() to Socket.IO `connect`);
//   - for each --pid: VmRSS after --warmup connections and after the N are open and --settle-ms
//     passed, KB per connection; CPU time (/proc, 10 ms ticks) during the connect phase, µs per
//     connection.
// Prints one JSON line on stdout (and appends it to --json-out FILE); a summary on stderr unless
// --quiet. Connections use forceNew and no reconnection, so every failure and drop is counted.
//
// Usage: node loadgen.mjs --url URL --n 10000 [--concurrency 200] [--workers 2]
//          [--transport websocket|polling] [--idle-auth | --no-idle-auth] [--user-prefix idle-]
//          [--pid [label=]PID,...] [--warmup 200] [--settle-ms 3000] [--timeout-ms 20000]
//          [--label NAME] [--json-out FILE] [--quiet]
// --idle-auth (the default) connects user <prefix><i> (auth.userId); --no-idle-auth anonymous.
import { fork } from "node:child_process";
import { appendFileSync } from "node:fs";
import { io } from "socket.io-client";
import { arg, flag, now, procCpu, procRssKB, quantile, sleep } from "./bench-lib.mjs";

if (flag("worker")) worker();
else await main();

// --- worker process: opens what the parent asks for and holds it until told to close ----------

function worker() {
  const sockets = [];
  let dropped = 0, closing = false;
  const openOne = (job, i) => new Promise((resolve) => {
    const t0 = now();
    const s = io(job.url, {
      forceNew: true, reconnection: false, transports: [job.transport], upgrade: false,
      timeout: job.timeoutMs, ...(job.prefix != null ? { auth: { userId: `${job.prefix}${i}` } } : {}),
    });
    sockets.push(s);
    let done = false;
    const finish = (ok) => {
      if (done) return;
      done = true;
      resolve(ok ? now() - t0 : -1);
    };
    s.once("connect", () => finish(true));
    s.once("connect_error", () => finish(false));
    s.on("disconnect", () => { if (!closing && done) dropped++; });
  });
  process.on("message", async (job) => {
    if (job.cmd === "close") {
      closing = true;
      for (const s of sockets) s.close();
      process.send({ cmd: "closed", dropped }, () => process.exit(0));
      return;
    }
    // open: indices job.from .. job.from + job.count - 1, job.concurrency at a time
    const latencies = [];
    let next = job.from, fail = 0;
    const end = job.from + job.count;
    const lane = async () => {
      while (next < end) {
        const ms = await openOne(job, next++);
        if (ms < 0) fail++;
        else latencies.push(ms);
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, job.concurrency) }, lane));
    process.send({ cmd: "opened", ok: latencies.length, fail, latencies, end: now() });
  });
}

// --- parent: warm-up, samples, workers, report --------------------------------------------------

function parsePids(spec) {
  if (!spec) return [];
  return spec.split(",").filter(Boolean).map((p) => {
    const [label, pid] = p.includes("=") ? p.split("=") : [p, p];
    return { label, pid: Number(pid) };
  });
}

function startWorkers(count) {
  return Array.from({ length: count }, () => {
    const child = fork(new URL(import.meta.url).pathname, ["--worker"], { stdio: ["ignore", "ignore", "inherit", "ipc"] });
    const replies = [];
    const waiting = [];
    child.on("message", (m) => (waiting.length ? waiting.shift()(m) : replies.push(m)));
    child.on("exit", (code) => {
      for (const w of waiting.splice(0)) w({ cmd: "exited", code });
    });
    return {
      child,
      ask(msg) {
        child.send(msg);
        return new Promise((r) => (replies.length ? r(replies.shift()) : waiting.push(r)));
      },
    };
  });
}

// Opens `count` connections from index `from` over the workers, `concurrency` in flight in all.
async function openOver(workers, job, from, count, concurrency) {
  const per = Math.ceil(count / workers.length);
  const parts = workers.map((w, k) => {
    const c = Math.max(0, Math.min(per, count - k * per));
    if (!c) return { ok: 0, fail: 0, latencies: [], end: 0 };
    return w.ask({ ...job, cmd: "open", from: from + k * per, count: c,
      concurrency: Math.max(1, Math.round(concurrency / workers.length)) });
  });
  const got = await Promise.all(parts);
  for (const g of got) if (g.cmd === "exited") throw new Error(`a worker exited (${g.code})`);
  return got;
}

async function main() {
  const url = arg("url", "http://127.0.0.1:3000");
  const n = Number(arg("n", 1000));
  const concurrency = Number(arg("concurrency", 200));
  const workerCount = Math.max(1, Number(arg("workers", 2)));
  const transport = arg("transport", "websocket");
  const auth = !flag("no-idle-auth");
  const prefix = arg("user-prefix", `idle${process.pid}-`);
  const pids = parsePids(arg("pid", ""));
  const warmup = Number(arg("warmup", 0));
  const settleMs = Number(arg("settle-ms", 0));
  const timeoutMs = Number(arg("timeout-ms", 20000));
  const label = arg("label", "run");
  const jsonOut = arg("json-out", "");
  const quiet = flag("quiet");
  if (!["websocket", "polling"].includes(transport)) throw new Error(`--transport ${transport}?`);

  const workers = startWorkers(workerCount);
  const job = { url, transport, timeoutMs, prefix: auth ? prefix : null };
  // Warm-up connections stay open: the allocators' first growth is not the connections' cost.
  if (warmup > 0) await openOver(workers, { ...job, prefix: auth ? `${prefix}w` : null }, 0, warmup, concurrency);
  const before = pids.map((p) => ({ ...p, rss: procRssKB(p.pid), cpu: procCpu(p.pid) }));
  const t0 = now();
  const parts = await openOver(workers, job, 0, n, concurrency);
  const cpuAfter = pids.map((p) => procCpu(p.pid));
  const ok = parts.reduce((a, p) => a + p.ok, 0);
  const fail = parts.reduce((a, p) => a + p.fail, 0);
  const end = Math.max(...parts.map((p) => p.end));
  const latencies = parts.flatMap((p) => p.latencies);
  if (settleMs) await sleep(settleMs);
  const memory = {};
  before.forEach((b, i) => {
    const rss = procRssKB(b.pid);
    memory[b.label] = { pid: b.pid, rssBeforeKb: b.rss, rssAfterKb: rss,
      kbPerConn: ok ? +((rss - b.rss) / ok).toFixed(2) : null,
      cpuUsPerConn: ok ? Math.round(((cpuAfter[i] - b.cpu) * 1e6) / ok) : null };
  });
  const closed = await Promise.all(workers.map((w) => w.ask({ cmd: "close" })));
  // Connections that closed before we closed them (the server dropped them).
  const dropped = closed.reduce((a, c) => a + (c.dropped ?? 0), 0);
  const result = {
    label, url,
    config: { n, concurrency, workers: workerCount, transport, idleAuth: auth, warmup, settleMs },
    connect: { ok, fail, dropped, ms: Math.round(end - t0),
      connPerSec: ok ? +((ok * 1000) / (end - t0)).toFixed(1) : 0,
      connectLatencyMs: { p50: quantile(latencies, 0.5), p90: quantile(latencies, 0.9),
        p99: quantile(latencies, 0.99), max: quantile(latencies, 1) } },
    memory,
  };
  const line = JSON.stringify(result);
  console.log(line);
  if (jsonOut) appendFileSync(jsonOut, line + "\n");
  if (!quiet) {
    console.error(`${label}: ${ok} connected, ${fail} failed in ${result.connect.ms} ms ` +
      `(${result.connect.connPerSec}/s, p50 ${result.connect.connectLatencyMs.p50} ms, ` +
      `p99 ${result.connect.connectLatencyMs.p99} ms)`);
    for (const [k, m] of Object.entries(memory))
      console.error(`  ${k}: ${m.kbPerConn} KB and ${m.cpuUsPerConn} µs of CPU per connection`);
  }
}
