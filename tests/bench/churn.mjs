// Presence churn: fresh users (<prefix>0, 1, ...) connect with the lean client, stay --hold-ms and
// disconnect (Socket.IO DISCONNECT, then the WebSocket close). Each user makes two presence
// transitions, online and offline.
//   steady: --rate R users started per second, until stdin closes (or --duration-s S);
//   burst:  --users M as fast as possible with --concurrency C in flight, then exit.
// Prints one JSON line on stdout when done: users started, connected, failed, elapsed ms.
// Usage: node churn.mjs --url URL [--prefix churn-] (--rate R [--duration-s S] | --users M
//        [--concurrency 50]) [--hold-ms 1000]
import { leanConnect, wsUrl } from "./lean-client.mjs";

const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : dflt;
};
const target = wsUrl(arg("url", "http://127.0.0.1:3000"));
const prefix = arg("prefix", `churn${process.pid}-`);
const rate = Number(arg("rate", 0));
const users = Number(arg("users", 0));
const concurrency = Number(arg("concurrency", 50));
const holdMs = Number(arg("hold-ms", rate ? 1000 : 0));
const durationS = Number(arg("duration-s", 0));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let started = 0, ok = 0, failed = 0;
const errors = {};

async function one() {
  const i = started++;
  try {
    const ws = await leanConnect(target, { auth: { userId: `${prefix}${i}` } });
    ok++;
    if (holdMs) await sleep(holdMs);
    const closed = new Promise((r) => ws.once("close", r));
    ws.send("41");
    ws.close();
    await closed;
  } catch (e) {
    failed++;
    const k = e.message.slice(0, 60);
    errors[k] = (errors[k] || 0) + 1;
  }
}

const t0 = performance.now();
const report = () => {
  console.log(JSON.stringify({ mode: rate ? "steady" : "burst", rate, holdMs, started, ok, failed,
    errors, ms: Math.round(performance.now() - t0) }));
  process.exit(0);
};
if (rate > 0) {
  const pending = new Set();
  let stop = false;
  if (durationS) setTimeout(() => { stop = true; }, durationS * 1000);
  else {
    process.stdin.on("end", () => { stop = true; });
    process.stdin.resume();
  }
  for (let k = 0; !stop; k++) {
    const p = one();
    pending.add(p);
    p.then(() => pending.delete(p));
    const wait = t0 + ((k + 1) * 1000) / rate - performance.now();
    if (wait > 0) await sleep(wait);
  }
  await Promise.all(pending);
  report();
} else {
  await Promise.all(Array.from({ length: Math.min(concurrency, users) }, async () => {
    while (started < users) await one();
  }));
  report();
}
