// Holds N identified idle connections (users <prefix>0..N-1) in its own process, so that their
// traffic does not delay the measuring process. Prints "ready" on stdout once all are connected,
// and exits when its stdin closes.
// Usage: node idle-holder.mjs URL N PREFIX
import { io } from "socket.io-client";

const [url, nArg, prefix] = process.argv.slice(2);
const n = Number(nArg);
const socks = [];
for (let i = 0; i < n; i += 100) {
  const batch = [];
  for (let j = i; j < Math.min(n, i + 100); j++) {
    batch.push(new Promise((resolve, reject) => {
      const s = io(url, { transports: ["websocket"], forceNew: true, reconnection: false,
        auth: { userId: `${prefix}${j}` } });
      s.once("connect", () => resolve(s));
      s.once("connect_error", reject);
    }));
  }
  socks.push(...(await Promise.all(batch)));
}
process.stdout.write("ready\n");
process.stdin.on("end", () => process.exit(0));
process.stdin.resume();
