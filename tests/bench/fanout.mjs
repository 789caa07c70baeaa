// Connect rate and presence fan-out with N connections already open. Prints one JSON line.
//  0. With --redis-users M: Redis CPU and commands per transition while nobody listens, from a
//     burst of M fresh users before the idle connections open.
//  1. N idle connections (identified users, or anonymous with --anon) are opened by --holders
//     holder processes (bench-lib.mjs); Redis used_memory is sampled around it (bytes per idle connection).
//     With --idle-s S, the server's and Redis's CPU while they stay idle for S seconds.
//  2. Connect rate at N: the load generator (loadgen.mjs) opens --connect-k more identified
//     connections, --connect-c in flight; with broadcast to all, each is announced to all N.
//  3. Bursts of transitions (--rounds, the median reported): --burst-users fresh users (churn.mjs,
//     --burst-c in flight) connect and disconnect at once, 2 presence transitions each. The
//     holders count the frames they receive; the server's and Redis's CPU time (/proc) and Redis's command count (INFO commandstats) are
//     taken around the burst: CPU seconds per 1000 transitions, frames delivered per second,
//     Redis commands per transition.
// Usage: node fanout.mjs --url URL --n 10000 [--holders 2] [--anon] --pid SERVER_PID [--idle-s 0]
//        [--redis-port PORT [--redis-users 0]] [--connect-k 300 --connect-c 50]
//        [--burst-users 200 --burst-c 20 --rounds 3]
import { spawn } from "node:child_process";
import { arg, flag, now, procCpu, redisCalls, redisCpu, redisUsedMemory, sleep, startHolders, waitQuiet,
  waitRedisQuiet } from "./bench-lib.mjs";

const url = arg("url", "http://127.0.0.1:3000");
const n = Number(arg("n", 10000));
const holderCount = Number(arg("holders", 2));
const anon = flag("anon");
const pid = Number(arg("pid", 0));
const redisPort = arg("redis-port", "");
const loadgen = new URL("./loadgen.mjs", import.meta.url).pathname;
const connectK = Number(arg("connect-k", 300));
const connectC = Number(arg("connect-c", 50));
const burstUsers = Number(arg("burst-users", 200));
const burstC = Number(arg("burst-c", 20));
const roundCount = Number(arg("rounds", 3));
const idleS = Number(arg("idle-s", 0));
const redisUsers = Number(arg("redis-users", 0));

const run = (cmd, args) => new Promise((resolve, reject) => {
  const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "inherit"] });
  let out = "";
  child.stdout.on("data", (d) => { out += d; });
  child.on("exit", (code) => (code ? reject(new Error(`${args[0]} exited ${code}`)) : resolve(out)));
});
const result = { url, n, anon };

// 0. Redis's cost per transition, before any idle connection exists: --redis-users fresh users
// connect and disconnect at once (a burst long enough for INFO cpu to resolve it).
await waitRedisQuiet(redisPort);
if (redisPort && redisUsers > 0) {
  const cpu0 = redisCpu(redisPort), calls0 = redisCalls(redisPort);
  const churn = JSON.parse((await run(process.execPath, [new URL("./churn.mjs", import.meta.url).pathname,
    "--url", url, "--users", String(redisUsers), "--concurrency", "50", "--hold-ms", "0",
    "--prefix", `redis${process.pid}-`])).trim());
  await sleep(500);
  const cpu1 = redisCpu(redisPort), calls1 = redisCalls(redisPort);
  result.redisAlone = { users: redisUsers, transitions: 2 * churn.ok, failed: churn.failed, ms: churn.ms,
    redisCpuUsPerTransition: +(((cpu1 - cpu0) * 1e6) / (2 * churn.ok)).toFixed(1),
    redisCommandsPerTransition: +((calls1 - calls0 - 2) / (2 * churn.ok)).toFixed(2) };
}

// 1. idle connections
const mem0 = redisPort ? redisUsedMemory(redisPort) : 0;
const t0 = now();
const holders = await startHolders(url, n, { count: holderCount, prefix: `fan${process.pid}-`, anon });
result.idle = { connected: holders.connected, failed: holders.failed, ms: Math.round(now() - t0) };
if (redisPort) result.idle.redisBytesPerConn = Math.round((redisUsedMemory(redisPort) - mem0) / holders.connected);
await waitQuiet(holders, 500);
if (idleS > 0) { // the cost of keeping them: Engine.IO heartbeats, the store's periodic work
  const c0 = procCpu(pid), r0 = redisCpu(redisPort);
  await sleep(idleS * 1000);
  result.idle.seconds = idleS;
  result.idle.serverCorePercent = +((100 * (procCpu(pid) - c0)) / idleS).toFixed(2);
  result.idle.redisCorePercent = redisPort ? +((100 * (redisCpu(redisPort) - r0)) / idleS).toFixed(2) : null;
}

// 2. connect rate at N, with the load generator
if (connectK > 0) {
  await holders.reset();
  const out = await run(process.execPath, [loadgen, "--url", url, "--n", String(connectK), "--concurrency",
    String(connectC), "--transport", "websocket", "--idle-auth", "--workers", "1",
    "--settle-ms", "500", "--quiet", ...(pid ? ["--pid", `server=${pid}`] : [])]);
  const r = JSON.parse(out.trim().split("\n").pop());
  result.connect = { k: connectK, concurrency: connectC, ok: r.connect.ok, fail: r.connect.fail,
    connPerSec: r.connect.connPerSec, p50Ms: r.connect.connectLatencyMs.p50, p99Ms: r.connect.connectLatencyMs.p99,
    serverCpuUsPerConn: r.memory?.server?.cpuUsPerConn ?? null };
  // loadgen closed its connections on exit: let their offline events drain.
  await waitQuiet(holders, 1000);
}

// 3. bursts of transitions: --rounds of them; the round with the median transition rate is
// reported whole, and every round's rates beside it (the machine is shared with the clients).
async function burst(round) {
  await holders.reset();
  const cpu0 = procCpu(pid), rcpu0 = redisCpu(redisPort), calls0 = redisCalls(redisPort);
  const b0 = now();
  const churn = JSON.parse((await run(process.execPath, [new URL("./churn.mjs", import.meta.url).pathname,
    "--url", url, "--users", String(burstUsers), "--concurrency", String(burstC), "--hold-ms", "0",
    "--prefix", `burst${process.pid}-${round}-`])).trim());
  const churnEnd = now();
  const c = await waitQuiet(holders, 1000);
  const cpu1 = procCpu(pid), rcpu1 = redisCpu(redisPort), calls1 = redisCalls(redisPort);
  const transitions = 2 * churn.ok;
  const end = Math.max(churnEnd, c.last || 0);
  return {
    users: burstUsers, concurrency: burstC, ok: churn.ok, failed: churn.failed, transitions,
    ms: Math.round(end - b0),
    transitionsPerSec: +((transitions * 1000) / (end - b0)).toFixed(1),
    framesDelivered: c.frames, framesExpectedIfAll: transitions * (holders.connected - c.dropped),
    online: c.online, offline: c.offline,
    framesPerSec: c.frames > 1 ? Math.round((c.frames * 1000) / (c.last - c.first)) : 0,
    serverCpuS: +(cpu1 - cpu0).toFixed(2),
    serverCpuSPer1000Transitions: +(((cpu1 - cpu0) * 1000) / transitions).toFixed(3),
    serverCpuUsPerFrame: c.frames ? +(((cpu1 - cpu0) * 1e6) / c.frames).toFixed(3) : null,
    redisCpuSPer1000Transitions: redisPort ? +(((rcpu1 - rcpu0) * 1000) / transitions).toFixed(4) : null,
    // Between the two commandstats samples Redis also ran the first of them and one INFO cpu.
    redisCommandsPerTransition: redisPort ? +((calls1 - calls0 - 2) / transitions).toFixed(2) : null,
    dropped: c.dropped,
  };
}
const rounds = [];
for (let r = 0; r < roundCount; r++) rounds.push(await burst(r));
const sorted = [...rounds].sort((a, b) => a.transitionsPerSec - b.transitionsPerSec);
result.burst = { ...sorted[Math.floor((sorted.length - 1) / 2)], rounds: roundCount,
  roundTransitionsPerSec: rounds.map((b) => b.transitionsPerSec), roundFramesPerSec: rounds.map((b) => b.framesPerSec) };
await holders.close();
console.log(JSON.stringify(result));
process.exit(0);
