// What each Redis function of presenced costs Redis to run, alone: no network work of the
// daemon's, no other process's load in the figure. Calls the functions of the library a presenced
// has loaded into this Redis (FUNCTION LOAD stays after the daemon is gone) directly, as a fake
// instance of its own under its own key prefix, N calls pipelined per phase, and reads the time
// Redis spent in them from INFO commandstats (FCALL usec per call, the commands the functions run
// included). Best of --rounds rounds (each on a flushed prefix): what interference only adds to.
// Run Redis on a core of its own (scripts/bench functions does: taskset) for figures that repeat.
//
// Phases, each over the same --n users: open (fresh users come online), join (each joins one of
// n/100 rooms), status (each turns "away"), close+room (each leaves, from one room), open again
// (the records exist: offline users come back), close (no room).
// Usage: node redis-functions.mjs --redis-port P [--n 10000] [--rounds 5]
import { createClient } from "redis";
import { arg } from "./bench-lib.mjs";

const port = Number(arg("redis-port", 6379));
const n = Number(arg("n", 10000));
const rounds = Number(arg("rounds", 5));
const P = "fnbench:";
const INST = "fnbenchinstance00001";

const redis = createClient({ url: `redis://127.0.0.1:${port}` });
await redis.connect();

// The library presenced loaded: its functions are named <script>_<version>.
const libs = await redis.sendCommand(["FUNCTION", "LIST"]);
const names = libs.flatMap((lib) => {
  const fns = lib[lib.indexOf("functions") + 1];
  return fns.map((f) => f[f.indexOf("name") + 1]);
});
const fn = (script) => {
  const name = names.find((x) => x.startsWith(`${script}_`));
  if (!name) throw new Error(`no function ${script}_* loaded: start presenced on this Redis first`);
  return name;
};

// The arguments every function starts with (src/io/redis/lib.lua): prefix, instance, grace ms,
// last_seen retention s, stream MAXLEN, instance TTL s, lease ms, epoch, webhooks.
const common = [P, INST, "5000", "86400", "100000", "120", "10000", "1", "0"];
const key = (tag, id) => `${P}${tag}:${id.length}:${id}`;
const sid = (i) => `fnbench${String(i).padStart(13, "0")}`;
const user = (i) => `user-${i}`;

async function clear() {
  for (;;) {
    const [cursor, keys] = await redis.sendCommand(["SCAN", "0", "MATCH", `${P}*`, "COUNT", "100000"]);
    if (keys.length) await redis.sendCommand(["UNLINK", ...keys]);
    if (cursor === "0" && !keys.length) break;
  }
  // The fake instance registered at epoch 1, as a reconciliation would leave it.
  await redis.sendCommand(["SET", key("e", INST), "1"]);
}

async function phase(script, mk) {
  await redis.sendCommand(["CONFIG", "RESETSTAT"]);
  const replies = await Promise.all(Array.from({ length: n }, (_, i) => redis.sendCommand(["FCALL", fn(script), "0", ...common, ...mk(i)])));
  const bad = replies.filter((r) => r !== 0).length;
  if (bad) throw new Error(`${script}: ${bad} of ${n} calls did not return 0 (first: ${replies.find((r) => r !== 0)})`);
  const stats = await redis.sendCommand(["INFO", "commandstats"]);
  const fcall = /cmdstat_fcall:calls=(\d+),usec=(\d+)/.exec(stats);
  let commands = 0;
  for (const [, name, calls] of stats.matchAll(/cmdstat_([a-z|]+):calls=(\d+)/g))
    if (name !== "fcall" && name !== "config|resetstat") commands += Number(calls);
  return { us: Number(fcall[2]) / Number(fcall[1]), commands: commands / n };
}

const plan = [
  ["open", "open", (i) => [sid(i), user(i), "", ""]],
  ["join", "join", (i) => [sid(i), user(i), `room-${i % Math.max(1, Math.floor(n / 100))}`]],
  ["status", "status", (i) => [sid(i), user(i), "away", ""]],
  ["close+room", "close", (i) => [sid(i), user(i), "0"]],
  ["open again", "open", (i) => [sid(i), user(i), "", ""]],
  ["close", "close", (i) => [sid(i), user(i), "0"]],
];
const best = {};
for (let r = 0; r < rounds; r++) {
  await clear();
  for (const [label, script, mk] of plan) {
    const m = await phase(script, mk);
    if (!best[label] || m.us < best[label].us) best[label] = m;
  }
}
await clear();
await redis.sendCommand(["DEL", key("e", INST)]);
await redis.quit();

console.error(`redis-functions: ${n} calls per phase, best of ${rounds} rounds`);
for (const [label] of plan)
  console.error(`  ${label.padEnd(11)} ${best[label].us.toFixed(2).padStart(6)} µs  ${best[label].commands.toFixed(2)} commands`);
console.log(JSON.stringify({ n, rounds, functions: Object.fromEntries(plan.map(([l]) => [l, { us: +best[l].us.toFixed(2), commands: +best[l].commands.toFixed(2) }])) }));
