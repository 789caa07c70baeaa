// Echo round trip under load: N idle WebSocket clients stay connected while one more client
// sends `message` and waits for `message-back`, S times in a row. Prints one JSON line.
// Usage: node echo-rtt.mjs --url URL [--n 1000] [--samples 2000] [--concurrency 100]
import { io } from "socket.io-client";

const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : dflt;
};
const url = arg("url", "http://127.0.0.1:3000");
const n = Number(arg("n", 1000));
const samples = Number(arg("samples", 2000));
const concurrency = Number(arg("concurrency", 100));
const opts = { transports: ["websocket"], forceNew: true, reconnection: false };

function connect() {
  return new Promise((resolve, reject) => {
    const s = io(url, opts);
    s.once("connect", () => resolve(s));
    s.once("connect_error", reject);
  });
}

const idle = [];
for (let i = 0; i < n; i += concurrency) {
  const batch = [];
  for (let j = i; j < Math.min(n, i + concurrency); j++) batch.push(connect());
  idle.push(...(await Promise.all(batch)));
}
const probe = await connect();
const rtts = [];
for (let i = 0; i < samples + 100; i++) {
  const t0 = process.hrtime.bigint();
  await new Promise((resolve) => {
    probe.once("message-back", resolve);
    probe.emit("message", i);
  });
  if (i >= 100) rtts.push(Number(process.hrtime.bigint() - t0) / 1e6); // first 100 warm up
}
rtts.sort((a, b) => a - b);
const q = (p) => rtts[Math.min(rtts.length - 1, Math.floor(p * rtts.length))];
console.log(JSON.stringify({ url, idle: idle.length, samples: rtts.length,
  p50_ms: +q(0.5).toFixed(3), p99_ms: +q(0.99).toFixed(3), max_ms: +rtts.at(-1).toFixed(3) }));
for (const s of [...idle, probe]) s.disconnect();
process.exit(0);
