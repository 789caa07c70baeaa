// What one member of a big room receives while the room changes: single presence events versus
// presence:diff batches (presence:sync {room, batch_ms}). Prints a table and one JSON line.
//
// It starts presenced (memory store) on a free port, opens --members lean connections (one user
// each, lean-client.mjs) that all join one room, then two more members: one that listens to the
// single events, one that watches the room in batches of --batch-ms. Then --changes-per-s
// changes for --seconds (a member's status change, or a member leaving the room or joining it
// back, drawn at random from a fixed seed) and counts, for both observers, the Socket.IO event
// frames and their payload bytes (WebSocket framing excluded).
//
// Usage: node tests/bench/room-diffs.mjs [--bin build-bench/presenced] [--members 10000]
//        [--changes-per-s 50] [--seconds 10] [--batch-ms 200] [--broadcast scoped|all]
import { spawn } from "node:child_process";
import net from "node:net";
import { arg } from "./bench-lib.mjs";
import { leanConnect, wsUrl } from "./lean-client.mjs";

const bin = arg("bin", "build-bench/presenced");
const members = Number(arg("members", 10000));
const rate = Number(arg("changes-per-s", 50));
const seconds = Number(arg("seconds", 10));
const batchMs = Number(arg("batch-ms", 200));
const broadcast = arg("broadcast", "scoped");
const ROOM = "big-room";
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function startDaemon() {
  const port = await freePort();
  const proc = spawn(bin, ["--listen", `127.0.0.1:${port}`, "--set", `broadcast=${broadcast}`,
    "--set", "rate_limit=1000", "--set", "rate_burst=1000", "--set", "log_level=warn",
    "--set", "max_connections_per_ip=1000000", "--set", "max_sessions_per_ip=1000000",
    "--set", `max_connections=${members + 100}`],
    { stdio: ["ignore", "ignore", "inherit"] });
  for (let i = 0; i < 200; i++) {
    const up = await new Promise((r) => {
      const c = net.connect(port, "127.0.0.1", () => { c.destroy(); r(true); });
      c.on("error", () => r(false));
    });
    if (up) return { proc, url: `http://127.0.0.1:${port}` };
    await sleep(50);
  }
  proc.kill();
  throw new Error(`${bin} did not start`);
}

const emit = (ws, event, payload) => ws.send(`42${JSON.stringify([event, payload])}`);

/** Counts the event frames (42...) a socket receives, and their bytes. */
function count(ws) {
  const c = { frames: 0, bytes: 0, first: 0, last: 0 };
  ws.on("message", (data) => {
    if (data[0] === 0x34 && data[1] === 0x32) {
      c.last = Date.now();
      if (!c.frames++) c.first = c.last;
      c.bytes += data.length;
    }
  });
  return c;
}

/** A seeded PRNG (mulberry32): the same changes every run. */
function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

async function main() {
  const d = await startDaemon();
  const url = wsUrl(d.url);
  try {
    const socks = new Array(members);
    const t0 = Date.now();
    for (let i = 0; i < members; i += 200) {
      const batch = [];
      for (let k = i; k < Math.min(members, i + 200); k++) {
        batch.push(leanConnect(url, { auth: { userId: `m${k}` } }).then((ws) => {
          socks[k] = ws;
          emit(ws, "presence:room:join", { room: ROOM });
        }));
      }
      await Promise.all(batch);
    }
    const single = await leanConnect(url, { auth: { userId: "observer-single" } });
    const diffs = await leanConnect(url, { auth: { userId: "observer-diffs" } });
    emit(single, "presence:room:join", { room: ROOM });
    emit(diffs, "presence:room:join", { room: ROOM });
    emit(diffs, "presence:sync", { room: ROOM, batch_ms: batchMs });
    await sleep(3000); // the joins above reach everyone
    const setupS = (Date.now() - t0) / 1000;
    const cs = count(single);
    const cd = count(diffs);

    const rnd = prng(42);
    const inRoom = new Array(members).fill(true);
    const kinds = { status: 0, leave: 0, join: 0 };
    const start = Date.now();
    const total = Math.round(rate * seconds);
    for (let i = 0; i < total; i++) {
      const due = start + (i * 1000) / rate;
      if (due > Date.now()) await sleep(due - Date.now());
      const k = Math.floor(rnd() * members);
      if (rnd() < 0.5) {
        emit(socks[k], "presence:status", { status: rnd() < 0.5 ? "away" : "busy" });
        kinds.status++;
      } else {
        emit(socks[k], inRoom[k] ? "presence:room:leave" : "presence:room:join", { room: ROOM });
        kinds[inRoom[k] ? "leave" : "join"]++;
        inRoom[k] = !inRoom[k];
      }
    }
    const elapsed = (Date.now() - start) / 1000;
    await sleep(batchMs + 1000); // the last batch and the last events arrive
    // The mean gap between frames shows how far the daemon kept up: a loop that lags behind the
    // fan-out of single events to every other member spaces the batches more than batch_ms.
    const row = (name, c) => ({ mode: name, frames: c.frames, bytes: c.bytes,
      frames_per_s: +(c.frames / elapsed).toFixed(1), bytes_per_s: Math.round(c.bytes / elapsed),
      mean_gap_ms: c.frames > 1 ? Math.round((c.last - c.first) / (c.frames - 1)) : null });
    const rows = [row("single events", cs), row(`diffs (batch_ms=${batchMs})`, cd)];
    console.log(`room of ${members + 2} members, ${total} changes in ${elapsed.toFixed(1)} s ` +
      `(${kinds.status} status, ${kinds.leave} leaves, ${kinds.join} joins), broadcast=${broadcast}; ` +
      `setup ${setupS.toFixed(0)} s`);
    console.log("mode                       frames   frames/s      bytes    bytes/s  mean gap (ms)");
    for (const r of rows) {
      console.log(`${r.mode.padEnd(24)} ${String(r.frames).padStart(8)} ${String(r.frames_per_s).padStart(10)} ` +
        `${String(r.bytes).padStart(10)} ${String(r.bytes_per_s).padStart(10)} ${String(r.mean_gap_ms).padStart(14)}`);
    }
    console.log(JSON.stringify({ members: members + 2, changes: total, seconds: +elapsed.toFixed(2), broadcast,
      batch_ms: batchMs, kinds, rows }));
    for (const ws of socks) ws?.terminate();
    single.terminate();
    diffs.terminate();
  } finally {
    d.proc.kill("SIGTERM");
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
