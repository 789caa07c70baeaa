// HTTP bulk presence query throughput: --n identified users connect (the holder of bench-lib.mjs; Redis
// used_memory is sampled around it: bytes per connected user, which includes the user's online
// event when the server keeps events in Redis), then wrk requests
// GET /v1/users?ids=<the first --ids of them> for --duration-s seconds over --connections
// connections. A server without that route (404) gets {"status": 404} and no wrk run.
// Prints one JSON line.
// Usage: node http-query.mjs --url URL [--n 1000] [--ids 100] [--duration-s 5] [--connections 20]
//        [--threads 1] [--pid SERVER_PID] [--redis-port P]
import { execFileSync } from "node:child_process";
import { arg, procCpu, redisCpu, redisUsedMemory, startHolders, waitQuiet, waitRedisQuiet } from "./bench-lib.mjs";

const url = arg("url", "http://127.0.0.1:3000");
const n = Number(arg("n", 1000));
const nIds = Number(arg("ids", 100));
const durationS = Number(arg("duration-s", 5));
const connections = Number(arg("connections", 20));
const threads = Number(arg("threads", 1));
const pid = Number(arg("pid", 0));
const redisPort = arg("redis-port", "");
const prefix = `http${process.pid}-`;

await waitRedisQuiet(redisPort);
const mem0 = redisPort ? redisUsedMemory(redisPort) : 0;
const holders = await startHolders(url, n, { count: 1, prefix });
// With broadcast to all, the users announced each other while connecting: let that drain first.
await waitQuiet(holders, 1000);
const result = { url, users: holders.connected, ids: nIds };
if (redisPort) result.redisBytesPerUser = Math.round((redisUsedMemory(redisPort) - mem0) / holders.connected);
const ids = Array.from({ length: Math.min(nIds, n) }, (_, i) => `${prefix}0-${i}`);
const target = `${url}/v1/users?ids=${ids.map(encodeURIComponent).join(",")}`;
const probe = await fetch(target);
const body = await probe.text();
result.status = probe.status;
if (probe.status === 200) {
  const online = Object.values(JSON.parse(body).users).filter((v) => v === true || v?.online === true).length;
  result.onlineInAnswer = online;
  const cpu0 = procCpu(pid), rcpu0 = redisCpu(redisPort);
  const out = execFileSync("wrk", ["-t", String(threads), "-c", String(connections), "-d", `${durationS}s`,
    "--latency", target], { encoding: "utf8" });
  const cpu1 = procCpu(pid), rcpu1 = redisCpu(redisPort);
  const num = (re) => { const m = out.match(re); return m ? Number(m[1]) : null; };
  const ms = (re) => {
    const m = out.match(re);
    if (!m) return null;
    const v = Number(m[1]);
    return m[2] === "us" ? v / 1000 : m[2] === "s" ? v * 1000 : v;
  };
  const requests = num(/(\d+) requests in/);
  Object.assign(result, {
    requestsPerSec: num(/Requests\/sec:\s+([\d.]+)/),
    requests, non2xx: num(/Non-2xx or 3xx responses: (\d+)/) || 0,
    errors: out.match(/Socket errors: .*/)?.[0] ?? null,
    p50Ms: ms(/50%\s+([\d.]+)(us|ms|s)/), p99Ms: ms(/99%\s+([\d.]+)(us|ms|s)/),
    serverCpuUsPerRequest: pid && requests ? +(((cpu1 - cpu0) * 1e6) / requests).toFixed(1) : null,
    redisCpuUsPerRequest: redisPort && requests ? +(((rcpu1 - rcpu0) * 1e6) / requests).toFixed(1) : null,
  });
}
await holders.close();
console.log(JSON.stringify(result));
process.exit(0);
