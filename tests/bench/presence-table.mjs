// Prints the presence table of scripts/bench (Markdown) from the JSON results it left in --dir:
// <server>.idle.json (loadgen), .fanout.json, .latency.json, .latency-high.json, .http.json,
// .maxn.json, .lgcpu ("user sys wall" of the load generator), for servers scoped, all, ref.
// Usage: node presence-table.mjs --dir DIR --n 10000 --churn 2 --churn-high 50 [--max-n 0]
import { existsSync, readFileSync } from "node:fs";
import { arg } from "./bench-lib.mjs";

const dir = arg("dir", ".");
const n = Number(arg("n", 10000));
const churn = arg("churn", "2");
const churnHigh = arg("churn-high", "0");
const maxN = Number(arg("max-n", 0));
const servers = ["scoped", "all", "ref"];
const load = (s, what) => {
  const f = `${dir}/${s}.${what}.json`;
  if (!existsSync(f)) return null;
  const text = readFileSync(f, "utf8").trim();
  return text ? JSON.parse(text.split("\n").pop()) : null;
};
const R = Object.fromEntries(servers.map((s) => [s, {
  idle: load(s, "idle"), fanout: load(s, "fanout"), latency: load(s, "latency"),
  high: load(s, "latency-high"), http: load(s, "http"), maxn: load(s, "maxn"),
  lg: existsSync(`${dir}/${s}.lgcpu`) ? readFileSync(`${dir}/${s}.lgcpu`, "utf8").trim().split(/\s+/).map(Number) : null,
}]));

const fmt = (x) => {
  if (x == null || Number.isNaN(x)) return "n/a";
  if (typeof x !== "number") return String(x);
  if (Math.abs(x) >= 100) return String(Math.round(x));
  if (Math.abs(x) >= 10) return x.toFixed(1);
  if (Math.abs(x) >= 1 || x === 0) return String(+x.toFixed(2));
  return String(+x.toPrecision(2));
};
const ratio = (a, b) => {
  if (typeof a !== "number" || typeof b !== "number" || !b) return "-";
  const r = a / b;
  return r !== 0 && Math.abs(r) < 0.1 ? String(+r.toPrecision(2)) : fmt(r);
};
const cell = (v) => (Array.isArray(v) ? `${fmt(v[0])} ${v[1]}` : fmt(v));
const num = (v) => (Array.isArray(v) ? v[0] : v);
const mem = (r, k) => r?.memory?.[k];
// Server CPU seconds a burst round took above the idle rate measured before it (fanout.mjs
// --idle-s): keeping the idle connections is not the transitions' cost.
const busy = (r) => {
  const b = r.fanout.burst;
  return b.serverCpuS - (((r.fanout.idle.serverCorePercent ?? 0) / 100) * b.ms) / 1000;
};
const http = (r) => (!r ? null : r.status !== 200 ? `n/a (HTTP ${r.status})` : r.requestsPerSec);

const rows = [
  [`RSS per idle connection at ${n} (KB)¹`, (r) => mem(r.idle, "server")?.kbPerConn, "lower"],
  ["Redis used_memory per connected user (bytes)²", (r) => r.http?.redisBytesPerUser, "lower"],
  [`server CPU while ${n} connections stay idle (% of a core)³`,
    (r) => r.fanout?.idle?.serverCorePercent, "lower"],
  [`server CPU per idle connect, 0→${n} (µs)¹`, (r) => mem(r.idle, "server")?.cpuUsPerConn, "lower"],
  [`connects/s, 0→${n} (loadgen)¹`, (r) => r.idle?.connect?.connPerSec, "higher"],
  [`connects/s with ${n} connected (loadgen, identified users)³`,
    (r) => r.fanout?.connect && [r.fanout.connect.connPerSec, `(K=${r.fanout.connect.k}, ${r.fanout.connect.fail} failed)`], "higher"],
  [`presence transitions/s with ${n} connected, until delivered⁴`,
    (r) => r.fanout?.burst && [r.fanout.burst.transitionsPerSec, `(${r.fanout.burst.roundTransitionsPerSec.map(fmt).join(", ")})`], "higher"],
  [`broadcast: frames delivered/s to ${n} sockets⁴`,
    (r) => (r.fanout?.burst?.framesDelivered
      ? [r.fanout.burst.framesPerSec, `(${r.fanout.burst.roundFramesPerSec.map(fmt).join(", ")})`] : "n/a (scoped)"), "higher"],
  ["server CPU per delivered frame (µs)⁴",
    (r) => (r.fanout?.burst?.framesDelivered ? busy(r) * 1e6 / r.fanout.burst.framesDelivered : "n/a"), "lower"],
  [`server CPU s per 1000 presence transitions at ${n}⁴`, (r) => busy(r) * 1000 / r.fanout.burst.transitions, "lower"],
  ["Redis CPU s per 1000 presence transitions, nobody listening⁸",
    (r) => r.fanout?.redisAlone && r.fanout.redisAlone.redisCpuUsPerTransition / 1000, "lower"],
  [`Redis commands per transition, nobody listening⁸ / with ${n} connected⁴`,
    (r) => r.fanout?.burst && `${fmt(r.fanout.redisAlone?.redisCommandsPerTransition)} / ${fmt(r.fanout.burst.redisCommandsPerTransition)}`, "-"],
  ["Redis commands per connect / disconnect⁵",
    (r) => r.latency && `${r.latency.redis_calls_per_connect} / ${r.latency.redis_calls_per_disconnect}`, "-"],
  ...["p50", "p99", "p999"].map((p) => [`presence event latency ${p} at ${n}, churn ${churn} users/s (ms)⁵`,
    (r) => r.latency && [r.latency[`event_${p}_ms`], `(n=${r.latency.event_samples})`], "lower"]),
  ...(Number(churnHigh) > 0 ? ["p50", "p99", "p999"].map((p) => [`presence event latency ${p} at ${n}, churn ${churnHigh} users/s, presenced only (ms)⁵`,
    (r) => r.high && [r.high[`event_${p}_ms`], `(n=${r.high.event_samples})`], "lower"]) : []),
  ...[["latency", churn], ...(Number(churnHigh) > 0 ? [["high", churnHigh]] : [])].map(([ph, c]) => [
    `presence event delivery p50 / p99 at ${n}, churn ${c} users/s: from the store's decision to the observer (ms)⁹`,
    (r) => (r[ph]?.delivery_p50_ms != null ? `${fmt(r[ph].delivery_p50_ms)} / ${fmt(r[ph].delivery_p99_ms)}` : null), "lower"]),
  ["events lost (latency phases)⁵", (r) => r.latency && (r.latency.events_missing + (r.high?.events_missing ?? 0)), "lower"],
  [`presence:query of 1000 ids p50 / p99 under churn (ms)⁵`,
    (r) => r.latency && `${fmt(r.latency.query1000_p50_ms)} / ${fmt(r.latency.query1000_p99_ms)}`, "-"],
  ["HTTP GET /v1/users?ids=(100) requests/s⁶", (r) => http(r.http), "higher"],
  ["HTTP server / Redis CPU per request (µs)⁶",
    (r) => r.http?.requestsPerSec && `${fmt(r.http.serverCpuUsPerRequest)} / ${fmt(r.http.redisCpuUsPerRequest)}`, "-"],
  ...(maxN > 0 ? [[`RSS per idle connection at ${maxN} (KB)¹`,
    (r) => r.maxn && [mem(r.maxn, "server")?.kbPerConn, `(${r.maxn.connect.ok} ok, ${r.maxn.connect.fail} failed)`], "lower"]] : []),
  ["load generator CPU s / wall s, all phases⁷",
    (r) => r.lg && `${fmt(r.lg[0] + r.lg[1])} / ${fmt(r.lg[2])}`, "-"],
];

console.log("| metric | presenced scoped | presenced all | node reference | scoped/ref | all/ref | better |");
console.log("|---|---|---|---|---|---|---|");
for (const [name, get, better] of rows) {
  const v = servers.map((s) => { try { return get(R[s]); } catch { return null; } });
  const b = num(v[2]);
  console.log(`| ${name} | ${v.map(cell).join(" | ")} | ${ratio(num(v[0]), b)} | ${ratio(num(v[1]), b)} | ${better} |`);
}
const fo = R.scoped.fanout, fa = R.all.fanout, fr = R.ref.fanout;
console.log(`
1. loadgen --n ${n}, ${R.scoped.idle?.config?.concurrency ?? "?"} in flight, ${R.scoped.idle?.config?.workers ?? "?"} workers, WebSocket. presenced scoped: identified users (--idle-auth). presenced all and the reference: anonymous (--no-idle-auth), because ${n} identified users would be announced to each other (${n}²/2 frames) while they connect.
2. 1000 identified users connect (${["scoped", "all", "ref"].map((s) => `${s}: ${R[s].http?.users ?? "?"}`).join(", ")}) right after the RSS phase; INFO used_memory before and after. presenced's figure includes each user's online event in its Redis stream (capped at stream_maxlen entries).
3. ${n} idle connections held (${process.env.BENCH_HOLDER && process.env.BENCH_HOLDER !== "none" ? "C holder, tests/bench/holder" : "lean Node.js client"}; scoped: identified, all/ref: anonymous), idle for ${R.scoped.fanout?.idle?.seconds ?? "?"} s (Engine.IO pings every 25 s), then loadgen opens K identified connections; presenced answers a connect before its broadcast is delivered, so in broadcast=all the next row is the sustained rate.
4. ${n} idle connections held; fresh users connect and disconnect at once (${fo?.burst?.users ?? "?"} / ${fa?.burst?.users ?? "?"} / ${fr?.burst?.users ?? "?"} users, ${fo?.burst?.concurrency ?? "?"} / ${fa?.burst?.concurrency ?? "?"} / ${fr?.burst?.concurrency ?? "?"} in flight), ${fo?.burst?.rounds ?? "?"} rounds: the median round, every round's rate in brackets; time from the first connect to the last frame received; server CPU from /proc (10 ms ticks) minus its idle rate (row 3) over the round, Redis commands from INFO commandstats. broadcast=scoped sends these events to nobody (no one subscribed).
5. presence-latency.mjs: ${n} idle connections, churn.mjs starts the given users/s (each stays 1 s), the observer subscribes to each probe user, which connects (io() → observer's presence:online) and disconnects (disconnect() → presence:offline); both latencies pooled. With fewer than 1000 samples p999 is the maximum. Redis commands: 20 quiet connect/disconnect cycles before the churn.
6. wrk -t1 -c20 -d5s, 100 ids of connected users per request.
7. Every load generating process (loadgen and its workers, holders, churners, observers, wrk) shares the machine's cores with the server under test and Redis.
8. Before the idle connections open, ${R.scoped.fanout?.redisAlone?.users ?? "?"} fresh users connect and disconnect at once, 50 in flight; Redis CPU from INFO cpu (microseconds, unlike /proc's 10 ms ticks), commands from INFO commandstats.
9. The part of row 5's latency after the store decided the event: the observer's arrival time less the time in the event's \`seq\` (its Redis stream id; one host, one clock, ms resolution), i.e. the read from the stream and the fan-out, without the probe's connect or close before it. The reference's events carry no stream id: n/a.`);
