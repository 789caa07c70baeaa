// Helpers shared by the presence benchmark tools: idle holder processes, /proc CPU and RSS
// samples, Redis INFO counters, percentiles.
import { spawn, execFileSync } from "node:child_process";
import { accessSync, constants, readFileSync, statSync } from "node:fs";
import { createInterface } from "node:readline";

const here = (f) => new URL(`./${f}`, import.meta.url).pathname;
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export const now = () => performance.timeOrigin + performance.now();

export const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : dflt;
};
export const flag = (name) => process.argv.includes(`--${name}`);

// The holder program: the C one (tests/bench/holder, built by scripts/bench) when BENCH_HOLDER names
// an executable file, else idle-holder.mjs. Both take the same arguments and speak the same stdin/
// stdout protocol; the C one costs far less CPU per received frame.
function holderCommand() {
  const bin = process.env.BENCH_HOLDER;
  try {
    if (bin && statSync(bin).isFile()) {
      accessSync(bin, constants.X_OK);
      return [bin, []];
    }
  } catch {
    // not executable: the Node holder
  }
  return [process.execPath, [here("idle-holder.mjs")]];
}

// Starts `count` holder processes holding `n` connections between them. Resolves once all are
// connected, with { connected, failed, count(), reset(), close() }. `sources` (C holder only):
// local addresses the holders connect from, in turn (127.0.0.x: presenced's workers steer each
// client address to one worker, so holders on several addresses spread over the workers).
export async function startHolders(url, n, { count = 1, prefix = "idle-", anon = false, sources = [] } = {}) {
  const holders = [];
  const per = Math.ceil(n / count);
  const [cmd, pre] = holderCommand();
  if (sources.length && pre.length) throw new Error("holder source addresses need the C holder (BENCH_HOLDER)");
  for (let h = 0; h < count && h * per < n; h++) {
    const size = Math.min(per, n - h * per);
    const source = sources.length ? ["--source", sources[h % sources.length]] : [];
    const child = spawn(cmd, [...pre, url, String(size), `${prefix}${h}-`, ...(anon ? ["--anon"] : []), ...source],
      { stdio: ["pipe", "pipe", "inherit"] });
    const lines = [];
    const waiting = [];
    let exited = null;
    createInterface({ input: child.stdout }).on("line", (l) => {
      if (waiting.length) waiting.shift().resolve(l); else lines.push(l);
    });
    const nextLine = () => new Promise((resolve, reject) => {
      if (lines.length) resolve(lines.shift());
      else if (exited) reject(exited);
      else waiting.push({ resolve, reject });
    });
    child.on("exit", (c, sig) => {
      exited = new Error(`idle holder ${h} exited (${c ?? sig})`);
      for (const w of waiting.splice(0)) w.reject(exited);
    });
    holders.push({ child, nextLine, gone: () => exited != null });
  }
  const ready = await Promise.all(holders.map((h) => h.nextLine()));
  const [connected, failed] = ready.map((l) => l.split(" ").slice(1).map(Number))
    .reduce(([a, b], [c, d]) => [a + c, b + d], [0, 0]);
  const ask = async (cmd) => Promise.all(holders.map(async (h) => {
    h.child.stdin.write(`${cmd}\n`);
    return JSON.parse(await h.nextLine());
  }));
  return {
    connected, failed,
    // Sum over the holders; first/last are the earliest and latest arrivals.
    async count() {
      const all = await ask("count");
      const withFrames = all.filter((c) => c.frames);
      return {
        connected: all.reduce((a, c) => a + c.connected, 0),
        dropped: all.reduce((a, c) => a + c.dropped, 0),
        frames: all.reduce((a, c) => a + c.frames, 0),
        online: all.reduce((a, c) => a + c.online, 0),
        offline: all.reduce((a, c) => a + c.offline, 0),
        first: withFrames.length ? Math.min(...withFrames.map((c) => c.first)) : 0,
        last: withFrames.length ? Math.max(...withFrames.map((c) => c.last)) : 0,
      };
    },
    reset: () => ask("reset"),
    close: () => Promise.all(holders.map((h) => new Promise((r) => {
      if (h.gone()) return r();
      h.child.on("exit", r);
      h.child.stdin.end();
    }))),
  };
}

// Waits until the holders' frame count has not moved for quietMs (or maxMs passed).
export async function waitQuiet(holders, quietMs = 1000, maxMs = 120000) {
  const t0 = Date.now();
  let prev = -1, since = Date.now(), c;
  for (;;) {
    c = await holders.count();
    if (c.frames !== prev) { prev = c.frames; since = Date.now(); }
    if (Date.now() - since >= quietMs || Date.now() - t0 > maxMs) return c;
    await sleep(100);
  }
}

// utime + stime of a process, in seconds; RSS in KB.
export function procCpu(pid) {
  if (!pid) return 0;
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(f[11]) + Number(f[12])) / 100;
}
export function procRssKB(pid) {
  return Number(readFileSync(`/proc/${pid}/status`, "utf8").match(/VmRSS:\s+(\d+)/)[1]);
}

export function redisInfo(port, section) {
  if (!port) return "";
  return execFileSync("redis-cli", ["-p", String(port), "INFO", section], { encoding: "utf8" });
}
// Commands Redis executed so far (scripts' inner calls included), minus nothing: the caller
// subtracts the INFO calls it made itself.
export const redisCalls = (port) =>
  [...redisInfo(port, "commandstats").matchAll(/calls=(\d+)/g)].reduce((a, m) => a + Number(m[1]), 0);
// Waits until Redis runs fewer than 20 commands per second (an idle presenced pings and polls
// its stream a few times a second) for quietMs, or maxMs passed: the closes of a previous phase's
// connections must not count in the next one.
export async function waitRedisQuiet(port, quietMs = 1000, maxMs = 30000) {
  if (!port) return;
  const t0 = Date.now();
  let prev = redisCalls(port), since = Date.now();
  while (Date.now() - since < quietMs && Date.now() - t0 < maxMs) {
    await sleep(250);
    const c = redisCalls(port);
    if (c - prev > 6) since = Date.now();
    prev = c;
  }
}
export const redisUsedMemory = (port) => Number(redisInfo(port, "memory").match(/used_memory:(\d+)/)[1]);
// Redis's own CPU time in seconds (getrusage, microsecond resolution, unlike /proc's 10 ms ticks).
export function redisCpu(port) {
  if (!port) return 0;
  const info = redisInfo(port, "cpu");
  return Number(info.match(/used_cpu_sys:([\d.]+)/)[1]) + Number(info.match(/used_cpu_user:([\d.]+)/)[1]);
}

export function quantile(samples, p) {
  if (!samples.length) return null;
  const s = Float64Array.from(samples).sort();
  return +s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))].toFixed(3);
}
