// A lean Socket.IO client for the benchmark's idle holders and churners: Engine.IO v4 over a bare
// WebSocket (the `ws` package, no compression), the Socket.IO CONNECT with an auth payload, pongs
// to the server's pings, and no JSON parsing of events: each text frame is only classified. One
// such socket costs the load generator a fraction of what a socket.io-client socket costs, so that
// on a 2-core machine a broadcast to 10,000 sockets measures the server rather than the clients.
// Servers cannot tell it from socket.io-client over WebSocket (same URL, same packets).
import WebSocket from "ws";

const ONLINE = Buffer.from('42["presence:online"');
const OFFLINE = Buffer.from('42["presence:offline"');

export function wsUrl(url, path = "/socket.io/") {
  const u = new URL(url);
  u.protocol = u.protocol === "https:" ? "wss:" : "ws:";
  u.pathname = path;
  u.search = "?EIO=4&transport=websocket";
  return u.toString();
}

// Resolves with the open socket once the server sent the Socket.IO CONNECT answer ("40{...}");
// rejects on a refusal ("44...") or a transport error. `counters` (optional) is updated on every
// frame: frames, online, offline, first and last (ms, performance.timeOrigin-based, comparable
// across processes on one machine).
export function leanConnect(url, { auth = null, counters = null, timeoutMs = 20000 } = {}) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    let connected = false;
    const timer = setTimeout(() => { ws.terminate(); reject(new Error("connect timeout")); }, timeoutMs);
    const fail = (e) => { clearTimeout(timer); if (!connected) reject(e); };
    ws.on("error", fail);
    ws.on("close", () => fail(new Error("closed before connect")));
    ws.on("message", (data) => {
      if (data.length === 1 && data[0] === 0x32) return ws.send("3"); // Engine.IO ping -> pong
      if (data[0] === 0x34 && data[1] === 0x32) { // Socket.IO EVENT
        if (counters) {
          const t = performance.timeOrigin + performance.now();
          if (!counters.frames++) counters.first = t;
          counters.last = t;
          if (data.compare(ONLINE, 0, ONLINE.length, 0, ONLINE.length) === 0) counters.online++;
          else if (data.compare(OFFLINE, 0, OFFLINE.length, 0, OFFLINE.length) === 0) counters.offline++;
        }
        return;
      }
      if (data[0] === 0x30) return ws.send(auth ? `40${JSON.stringify(auth)}` : "40"); // OPEN
      if (data[0] === 0x34 && data[1] === 0x30) { connected = true; clearTimeout(timer); return resolve(ws); }
      if (data[0] === 0x34 && data[1] === 0x34) { ws.terminate(); return fail(new Error(`refused: ${data}`)); }
    });
  });
}

export const newCounters = () => ({ frames: 0, online: 0, offline: 0, first: 0, last: 0 });
