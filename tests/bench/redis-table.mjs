// Prints the Redis-per-operation table of scripts/bench (Markdown) from redis-ops.mjs results:
// --dir DIR holds <server>.redis-ops.<run>.json for servers "scoped" (presenced) and "ref" (the
// Node.js reference); with several runs each figure is the median of its runs.
// Usage: node redis-table.mjs --dir DIR
import { readdirSync, readFileSync } from "node:fs";
import { arg } from "./bench-lib.mjs";

const dir = arg("dir", ".");
const runs = (s) => readdirSync(dir).filter((f) => f.startsWith(`${s}.redis-ops.`) && f.endsWith(".json"))
  .map((f) => readFileSync(`${dir}/${f}`, "utf8").trim()).filter(Boolean)
  .map((t) => JSON.parse(t.split("\n").pop()));
const R = { scoped: runs("scoped"), ref: runs("ref") };
// A figure's values over the runs that have it (a failed phase leaves it out).
const all = (s, path) => R[s].map((r) => path.split(".").reduce((o, k) => o?.[k], r))
  .filter((x) => typeof x === "number" && !Number.isNaN(x));
const median = (xs) => {
  const v = [...xs].sort((a, b) => a - b);
  if (!v.length) return null;
  const m = Math.floor(v.length / 2);
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
};
const get = (s, path) => median(all(s, path));
const fmt = (x) => {
  if (x == null) return "n/a";
  if (Math.abs(x) >= 100) return String(Math.round(x));
  if (Math.abs(x) >= 10) return x.toFixed(1);
  return String(+x.toFixed(2));
};
const ratio = (a, b) => (a == null || b == null || b <= 0 ? "-" : fmt(a / b));
// A median with the runs' range: how far one run's figure can be trusted.
const spread = (s, path) => {
  const v = all(s, path);
  const m = fmt(median(v));
  return v.length > 1 ? `${m} [${fmt(Math.min(...v))}–${fmt(Math.max(...v))}]` : m;
};

const ops = [
  ["cycle", "connect + disconnect of a fresh user, per transition"],
  ["connect", "connect (user comes online)"],
  ["join", "presence:room:join (first socket of the user in the room)"],
  ["status", "presence:status (update)"],
  ["disconnect", "disconnect of a user in 1 room (room:leave + offline)"],
  ["query100", "presence:query, 100 ids"],
  ["query1000", "presence:query, 1000 ids"],
  ["http100", "GET /v1/users?ids=, 100 ids"],
];
const n = Math.max(R.scoped.length, R.ref.length);
console.log(`| per operation (median of ${n} run${n === 1 ? "" : "s"}) | Redis CPU µs [range]: presenced / reference (ratio of medians) | commands | socket reads / writes | bytes in | bytes out |`);
console.log("|---|---|---|---|---|---|");
for (const [op, label] of ops) {
  const c = (k) => [get("scoped", `${op}.${k}`), get("ref", `${op}.${k}`)];
  const [cs, cr] = c("redisCpuUs");
  const pair = (k) => c(k).map(fmt).join(" / ");
  const rw = (s) => `${fmt(get(s, `${op}.reads`))}+${fmt(get(s, `${op}.writes`))}`;
  console.log(`| ${label} | ${spread("scoped", `${op}.redisCpuUs`)} / ${spread("ref", `${op}.redisCpuUs`)} (${ratio(cs, cr)}) | ${pair("commands")} | ${rw("scoped")} / ${rw("ref")} | ${pair("inBytes")} | ${pair("outBytes")} |`);
}
const [ms, mr] = [get("scoped", "connect.memBytes"), get("ref", "connect.memBytes")];
console.log(`| Redis used_memory per connected user (bytes; presenced's includes its online event in the stream) | ${spread("scoped", "connect.memBytes")} / ${spread("ref", "connect.memBytes")} (${ratio(ms, mr)}) | | | | |`);
const users = R.scoped[0]?.users ?? R.ref[0]?.users ?? "?";
console.log(`
redis-ops.mjs: ${users} users, ${R.scoped[0]?.concurrency ?? "?"} operations in flight; queries ${R.scoped[0]?.queries ?? "?"} each, 10 in flight. Redis CPU from INFO cpu (used_cpu_user + used_cpu_sys), minus Redis's idle rate (measured for 1.5 s before and after each phase; presenced: ${fmt(get("scoped", "connect.idleCpuUsPerS"))} µs/s, reference: ${fmt(get("ref", "connect.idleCpuUsPerS"))} µs/s around the connects) over the phase, which lasts long where the reference broadcasts each operation to every connected socket (connect, status, disconnect: ${fmt(get("ref", "connect.ms") / 1000)} / ${fmt(get("ref", "status.ms") / 1000)} / ${fmt(get("ref", "disconnect.ms") / 1000)} s), so its figures there move more from run to run; commands from INFO commandstats (commands inside scripts included); socket reads and writes from INFO stats (total_reads_processed / total_writes_processed: each read is a wake-up of Redis for one connection, shared by the requests that arrived together); bytes from INFO stats (total_net_input_bytes / total_net_output_bytes: for presenced they include the stream reads that carry the events to the instance). A fresh redis-server for each server.`);
