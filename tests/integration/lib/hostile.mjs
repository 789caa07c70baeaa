// A hostile client, run as its own process by security-hostile.test.mjs: until SIGTERM (or for
// DURATION_MS at most) it floods commands (reconnecting when the daemon closes it for abuse),
// opens connections past the per-address limit, and sends oversized and malformed frames.
// Everything comes from LOCAL_ADDR. Prints one JSON line of what it did.
// Usage: node hostile.mjs URL LOCAL_ADDR DURATION_MS
import http from 'node:http';
import net from 'node:net';
import { io } from 'socket.io-client';
import WebSocket from 'ws';

const [url, localAddress, durationArg] = process.argv.slice(2);
let until = Date.now() + Number(durationArg);
process.on('SIGTERM', () => (until = 0));
const agent = new http.Agent({ localAddress });
const wsUrl = `${url.replace('http', 'ws')}/socket.io/?EIO=4&transport=websocket`;
const stats = { commands: 0, reconnects: 0, tcp: 0, frames: 0 };

async function flood() {
    while (Date.now() < until) {
        const s = io(url, { transports: ['websocket'], forceNew: true, reconnection: false, agent, auth: { userId: 'mallory' } });
        await new Promise((resolve) => {
            s.once('connect', resolve);
            s.once('connect_error', resolve);
            setTimeout(resolve, 1000);
        });
        while (s.connected && Date.now() < until) {
            for (let i = 0; i < 200; i++) s.emit('presence:query', { userIds: ['a', 'b', 'c'] }), stats.commands++;
            await new Promise((r) => setImmediate(r));
        }
        s.close();
        stats.reconnects++;
    }
}

async function holdTcp() {
    const socks = [];
    while (Date.now() < until) {
        for (let i = 0; i < 20; i++) {
            const c = net.connect({ host: '127.0.0.1', port: Number(new URL(url).port), localAddress });
            c.on('error', () => {});
            socks.push(c);
            stats.tcp++;
        }
        await new Promise((r) => setTimeout(r, 200));
        while (socks.length > 150) socks.shift().destroy();
    }
    socks.forEach((c) => c.destroy());
}

async function badFrames() {
    const payloads = [Buffer.alloc(2 * 1024 * 1024, 0x61), '4abc', '42{', Buffer.from([0x34, 0x32, 0xff]),
        '42[' + '['.repeat(1001) + ']'.repeat(1001) + ']'];
    while (Date.now() < until) {
        await new Promise((resolve) => {
            const ws = new WebSocket(wsUrl, { agent });
            ws.on('error', resolve);
            ws.on('close', resolve);
            ws.on('open', () => {
                ws.send('40');
                const p = payloads[stats.frames++ % payloads.length];
                ws.send(p, { binary: false });
            });
            setTimeout(() => { ws.terminate(); resolve(); }, 500);
        });
    }
}

await Promise.all([flood(), holdTcp(), badFrames()]);
console.log(JSON.stringify(stats));
process.exit(0);
