// Holds N idle connections in its own process, so that their traffic does not delay the measuring
// process. Identified as users <prefix>0..N-1 unless --anon. Uses the lean client
// (lean-client.mjs) and counts the presence events the sockets receive.
// Prints "ready <connected> <failed>" on stdout once every connect settled. Then reads commands on
// stdin, one per line, and answers each with one JSON line on stdout:
//   count  -> {"connected", "dropped", "frames", "online", "offline", "first", "last"}
//             (first/last: arrival of the first/last event since the last reset, ms since the epoch)
//   reset  -> {"ok": true}, and the counters start again from zero
// Exits when its stdin closes.
// Usage: node idle-holder.mjs URL N PREFIX [--anon] [--concurrency 200]
import { createInterface } from "node:readline";
import { leanConnect, newCounters, wsUrl } from "./lean-client.mjs";

const [url, nArg, prefix] = process.argv.slice(2);
const n = Number(nArg);
const anon = process.argv.includes("--anon");
const ci = process.argv.indexOf("--concurrency");
const concurrency = ci > 0 ? Number(process.argv[ci + 1]) : 200;
const target = wsUrl(url);
const counters = newCounters();
const socks = [];
let failed = 0, dropped = 0, next = 0;
const errors = {};

async function worker() {
  while (next < n) {
    const i = next++;
    try {
      const ws = await leanConnect(target, { auth: anon ? null : { userId: `${prefix}${i}` }, counters });
      ws.on("close", () => dropped++);
      socks.push(ws);
    } catch (e) {
      failed++;
      errors[e.message.slice(0, 60)] = (errors[e.message.slice(0, 60)] || 0) + 1;
    }
  }
}
await Promise.all(Array.from({ length: Math.min(concurrency, Math.max(1, n)) }, worker));
if (failed) console.error(`idle-holder: ${failed} of ${n} failed: ${JSON.stringify(errors)}`);
process.stdout.write(`ready ${socks.length} ${failed}\n`);

createInterface({ input: process.stdin }).on("line", (line) => {
  const cmd = line.trim();
  if (cmd === "count") {
    process.stdout.write(`${JSON.stringify({ connected: socks.length - dropped, dropped, ...counters })}\n`);
  } else if (cmd === "reset") {
    Object.assign(counters, newCounters()); // in place: every socket holds this object
    process.stdout.write('{"ok":true}\n');
  }
}).on("close", () => process.exit(0));
