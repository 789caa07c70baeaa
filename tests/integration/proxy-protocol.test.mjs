// proxy_protocol = on: every connection starts with a PROXY protocol header (v1 text or v2
// binary), as HAProxy, nginx's stream module and cloud load balancers send it, and presenced
// takes the client address from it: per-address limits and logs use that address. Checked with
// raw requests (each version, a header split over several TCP writes, a missing or bad header,
// bytes of the request that arrive with the header) and with socket.io-client through a small
// TCP balancer written here that prepends a v1 header naming the client's real address.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { startDaemon } from './lib/daemon.mjs';
import { ClientPool, waitFor, sleep } from './lib/client.mjs';

const T = { timeout: 20000 };
const pool = new ClientPool();

const HANDSHAKE = (port) => `GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`;
const v1 = (src) => `PROXY TCP4 ${src} 127.0.0.1 40000 3000\r\n`;
function v2(src) {
    const sig = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
    const addr = Buffer.from([...src.split('.').map(Number), 127, 0, 0, 1, 0x9c, 0x40, 0x0b, 0xb8]);
    return Buffer.concat([sig, Buffer.from([0x21, 0x11, 0, addr.length]), addr]);
}

/** Writes `parts` (a pause between them) on a new connection; resolves {text, closed}. */
function exchange(port, parts, { ms = 4000, gap = 100 } = {}) {
    return new Promise((resolve) => {
        const sock = net.connect({ host: '127.0.0.1', port });
        let text = '';
        let done = false;
        const finish = (closed) => {
            if (done) return;
            done = true;
            clearTimeout(timer);
            sock.destroy();
            resolve({ text, closed });
        };
        const timer = setTimeout(() => finish(false), ms);
        sock.setEncoding('latin1');
        sock.on('data', (d) => {
            text += d;
            if (/\r\n\r\n[\s\S]*\}$/.test(text)) finish(false); // a complete small JSON answer
        });
        sock.on('close', () => finish(true));
        sock.on('error', () => {});
        sock.on('connect', async () => {
            for (const [i, p] of parts.entries()) {
                if (i) await sleep(gap);
                sock.write(p);
            }
        });
    });
}

/** A TCP balancer: each client connection becomes one to `target` that starts with a v1 header
 * naming the client's address, then bytes flow both ways. */
function balancer(target) {
    const srv = net.createServer((c) => {
        const up = net.connect({ host: '127.0.0.1', port: target }, () => {
            up.write(`PROXY TCP4 ${c.remoteAddress.replace(/^::ffff:/, '')} 127.0.0.1 ${c.remotePort} ${target}\r\n`);
            c.pipe(up);
            up.pipe(c);
        });
        const end = () => {
            c.destroy();
            up.destroy();
        };
        c.on('error', end);
        up.on('error', end);
        c.on('close', end);
        up.on('close', end);
    });
    return new Promise((resolve) => srv.listen(0, '127.0.0.1', () => resolve(srv)));
}

describe('proxy_protocol = on', () => {
    let d, lb;
    before(async () => {
        d = await startDaemon({ set: { proxy_protocol: 'on', max_sessions_per_ip: 2 } });
        lb = await balancer(d.port);
    });
    after(async () => {
        pool.closeAll();
        lb?.close();
        await d?.stop();
    });

    test('v1 and v2 headers, whole or split over several writes, name the client', T, () =>
        d.wrap(async () => {
            for (const [what, parts] of [
                ['v1 with the request', [v1('198.51.100.1') + HANDSHAKE(d.port)]],
                ['v1 split', [v1('198.51.100.2').slice(0, 9), v1('198.51.100.2').slice(9), HANDSHAKE(d.port)]],
                ['v2 with the request', [Buffer.concat([v2('198.51.100.3'), Buffer.from(HANDSHAKE(d.port))])]],
                ['v2 split', [v2('198.51.100.4').subarray(0, 13), v2('198.51.100.4').subarray(13), HANDSHAKE(d.port)]],
            ]) {
                const r = await exchange(d.port, parts);
                assert.match(r.text, /^HTTP\/1\.1 200/, `${what}: ${r.text.slice(0, 200)}`);
                assert.match(r.text, /\r\n\r\n0\{"sid":/, `${what}: the Engine.IO open packet`);
            }
        })());

    test('the limits count the address the header names, and the log says it', T, () =>
        d.wrap(async () => {
            for (let i = 0; i < 2; i++) {
                const r = await exchange(d.port, [v1('203.0.113.50') + HANDSHAKE(d.port)]);
                assert.match(r.text, /^HTTP\/1\.1 200/);
            }
            const over = await exchange(d.port, [v2('203.0.113.50'), HANDSHAKE(d.port)]);
            assert.match(over.text, /^HTTP\/1\.1 429/, over.text);
            assert.match(over.text, /\{"code":3,"message":"Too many sessions from this address"\}$/);
            assert.match(d.stderrText, /msg="refused" cause=max_sessions_per_ip status=429 setting=max_sessions_per_ip addr=203\.0\.113\.50/);
            // Every test connection comes from 127.0.0.1: another claimed address is another client.
            const other = await exchange(d.port, [v1('203.0.113.51') + HANDSHAKE(d.port)]);
            assert.match(other.text, /^HTTP\/1\.1 200/);
        })());

    test('a connection without a valid header is closed without an answer', T, () =>
        d.wrap(async () => {
            for (const [what, bytes] of [
                ['no header', HANDSHAKE(d.port)],
                ['garbage', 'PROXY TCP9 x y z w\r\n' + HANDSHAKE(d.port)],
                ['v2 of another version', Buffer.concat([v2('1.2.3.4').subarray(0, 12), Buffer.from([0x31, 0x11, 0, 12]), Buffer.alloc(12)])],
            ]) {
                const r = await exchange(d.port, [bytes]);
                assert.equal(r.closed, true, `${what}: closed`);
                assert.equal(r.text, '', `${what}: no answer`);
            }
            // The daemon carries on.
            const r = await exchange(d.port, [v1('198.51.100.9') + HANDSHAKE(d.port)]);
            assert.match(r.text, /^HTTP\/1\.1 200/);
        })());

    test('socket.io-client through a PROXY protocol balancer, default transports, two client addresses', T, () =>
        d.wrap(async () => {
            const url = `http://127.0.0.1:${lb.address().port}`;
            // Polling requests take their source address from the agent, WebSocket from localAddress.
            const opts = (localAddress) => ({ localAddress, agent: new http.Agent({ localAddress }) });
            const connect = (localAddress) => pool.connect(url, '/', { ...opts(localAddress), auth: { userId: `pp-${localAddress}` } });
            const a = [await connect('127.0.0.21'), await connect('127.0.0.21')];
            await Promise.all(a.map((s) => (s.io.engine.transport.name === 'websocket' ? null : waitFor(s.io.engine, 'upgrade'))));
            // A third session from 127.0.0.21 is refused; 127.0.0.22 is another client.
            const third = pool.socket(url, '/', opts('127.0.0.21'));
            await waitFor(third, 'connect_error', { failOn: 'connect' });
            const b = await connect('127.0.0.22');
            assert.ok(b.connected);
            assert.match(d.stderrText, /cause=max_sessions_per_ip status=429 setting=max_sessions_per_ip addr=127\.0\.0\.21/);
        })());
});
