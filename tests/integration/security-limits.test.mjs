// Abuse limits: connections per IP address, sockets per user, rooms and subscriptions per socket,
// and the per-connection message rate. Each limit is hit, answered as documented, counted in /metrics,
// and other clients are unaffected.
//
// The per-address limit is exercised from 127.0.0.2 (any 127/8 address is loopback on Linux) so
// that the well-behaved clients on 127.0.0.1 show they are not counted with it.
import { describe, test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import nodeHttp from 'node:http';
import { startDaemon } from './lib/daemon.mjs';
import { ClientPool, waitFor, withTimeout, sleep, http } from './lib/client.mjs';
import { PClient } from './lib/presence.mjs';

const T = { timeout: 30000 };
const pool = new ClientPool();
let d; // the per-socket and per-user limits
let ipd; // max_connections_per_ip = 5 (its own daemon: the other tests' clients share 127.0.0.1)
let sd; // max_sessions_per_ip = 5

before(async () => {
    d = await startDaemon({
        set: {
            max_sockets_per_user: 2,
            max_rooms_per_socket: 3,
            max_subscriptions_per_socket: 3,
            rate_limit: 5,
            rate_burst: 10,
        },
    });
    ipd = await startDaemon({ set: { max_connections_per_ip: 5 } });
    sd = await startDaemon({ set: { max_sessions_per_ip: 5 } });
});
afterEach(() => pool.closeAll());
after(async () => {
    pool.closeAll();
    await d?.stop();
    await ipd?.stop();
    await sd?.stop();
});

/** GET or POST on `agent`'s connection(s); resolves {status, text, socket}. */
function agentRequest(agent, url, { method = 'GET', body } = {}) {
    return new Promise((resolve, reject) => {
        const req = nodeHttp.request(url, { agent, method, headers: body ? { 'content-type': 'text/plain;charset=UTF-8' } : {} }, (res) => {
            let text = '';
            res.setEncoding('utf8');
            res.on('data', (d) => (text += d));
            res.on('end', () => resolve({ status: res.statusCode, text, socket: req.socket }));
        });
        req.on('error', reject);
        req.end(body);
    });
}

async function client(userId, daemon = d) {
    const s = await pool.connect(daemon.url, '/', { transports: ['websocket'], auth: userId ? { userId } : undefined });
    return new PClient(s, { userId });
}

/**
 * Opens a TCP connection from `localAddress`; resolves {sock, closed(), whenClosed, served()} once
 * connected. served() sends GET /healthz on it and resolves true when the daemon answers 200,
 * false when it closes the connection instead.
 */
function tcp(localAddress) {
    return new Promise((resolve, reject) => {
        const sock = net.connect({ host: '127.0.0.1', port: ipd.port, localAddress });
        let closed = false;
        let text = '';
        const whenClosed = new Promise((r) => sock.on('close', () => r((closed = true))));
        sock.setEncoding('latin1');
        sock.on('data', (d) => (text += d));
        sock.on('error', () => {});
        const served = () =>
            new Promise((r) => {
                if (closed) return r(false);
                sock.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
                const check = () => {
                    if (/^HTTP\/1\.1 200/.test(text) && text.includes('"ok"')) return r(true);
                    if (closed) return r(false);
                    setTimeout(check, 10);
                };
                check();
            });
        sock.once('connect', () => resolve({ sock, closed: () => closed, whenClosed, served }));
        sock.once('error', reject);
    });
}

async function limitHits(limit, daemon = d) {
    const res = await http(`${daemon.url}/metrics`);
    const m = new RegExp(`^presenced_limit_hits_total\\{limit="${limit}"\\} (\\d+)`, 'm').exec(res.text);
    return m ? Number(m[1]) : 0;
}

describe('limits', () => {
    test('max_connections_per_ip closes connections over the limit, for that address only', T, () =>
        ipd.wrap(async () => {
            const before = await limitHits('connections_per_ip', ipd);
            const held = [];
            for (let i = 0; i < 5; i++) held.push(await tcp('127.0.0.2'));
            // Each of the five is served; only then the sixth, which the daemon closes at once.
            for (const h of held) assert.equal(await h.served(), true, 'one of the first five connections is served');
            const extra = await tcp('127.0.0.2');
            await withTimeout(extra.whenClosed, 5000, 'the sixth connection from 127.0.0.2 being closed');
            assert.equal(await limitHits('connections_per_ip', ipd), before + 1, 'counted once in /metrics');
            for (const h of held) assert.equal(await h.served(), true, 'the first five stay open and served');
            const other = await client('someone', ipd);
            await other.ok('presence:heartbeat', {});
            // Closing frees the slots: once the daemon has seen the closes, five new connections
            // from the address are all served.
            for (const h of held) h.sock.destroy();
            const deadline = Date.now() + 10000;
            for (;;) {
                const again = [];
                for (let i = 0; i < 5; i++) again.push(await tcp('127.0.0.2'));
                const served = [];
                for (const h of again) served.push(await h.served());
                for (const h of again) h.sock.destroy();
                if (served.every(Boolean)) break;
                assert.ok(Date.now() < deadline, `slots were not released within 10 s of the closes (served: ${served})`);
                await Promise.all(again.map((h) => h.whenClosed));
            }
        })());

    test('max_sessions_per_ip: one address cannot open every session over one keep-alive connection', T, () =>
        sd.wrap(async () => {
            const before = await limitHits('sessions_per_ip', sd);
            const agent = new nodeHttp.Agent({ keepAlive: true, maxSockets: 1, localAddress: '127.0.0.4' });
            const url = `${sd.url}/socket.io/?EIO=4&transport=polling`;
            const sids = [];
            let socket;
            for (let i = 0; i < 5; i++) {
                const r = await agentRequest(agent, url);
                assert.equal(r.status, 200, `handshake ${i}: ${r.text}`);
                sids.push(JSON.parse(r.text.slice(1)).sid);
                if (socket) assert.equal(r.socket, socket, 'every handshake on the same TCP connection');
                socket = r.socket;
            }
            const over = await agentRequest(agent, url);
            assert.equal(over.status, 429);
            assert.deepEqual(JSON.parse(over.text), { code: 3, message: 'Too many sessions from this address' });
            // WebSocket sessions count against the same address.
            const ws = pool.socket(sd.url, '/', { transports: ['websocket'], localAddress: '127.0.0.4' });
            await waitFor(ws, 'connect_error', { failOn: 'connect' });
            assert.ok((await limitHits('sessions_per_ip', sd)) >= before + 2, 'counted in /metrics');
            assert.match(sd.stderrText, /msg="refused" cause=max_sessions_per_ip status=429 setting=max_sessions_per_ip addr=127\.0\.0\.4/);
            // Other addresses are not affected, on either transport.
            for (const transports of [['polling'], ['websocket']]) {
                const s = await pool.connect(sd.url, '/', { transports, localAddress: '127.0.0.5' });
                assert.ok(s.connected);
            }
            // A session that closes frees its slot.
            const closed = await agentRequest(agent, `${url}&sid=${sids[0]}`, { method: 'POST', body: '1' });
            assert.equal(closed.status, 200);
            const again = await agentRequest(agent, url);
            assert.equal(again.status, 200, `a handshake after a close: ${again.text}`);
            agent.destroy();
        })());

    test('defaults: 200 default-transport clients behind one address (an office NAT) all connect', { timeout: 60000 }, async () => {
        const nat = await startDaemon();
        try {
            await nat.wrap(async () => {
                const N = 200;
                const sockets = Array.from({ length: N }, (_, i) =>
                    pool.socket(nat.url, '/', { localAddress: '127.0.0.6', auth: { userId: `nat-${i}` }, timeout: 20000 }),
                );
                const upgraded = sockets.map((s) => waitFor(s.io.engine, 'upgrade', { ms: 30000, failOn: 'upgradeError' }));
                const errors = [];
                await Promise.all(sockets.map((s, i) => waitFor(s, 'connect', { ms: 30000, failOn: 'connect_error' }).catch((e) => errors.push(`${i}: ${e.message}`))));
                assert.deepEqual(errors, [], `clients that failed to connect (${errors.length} of ${N})`);
                await Promise.all(upgraded);
                assert.ok(sockets.every((s) => s.io.engine.transport.name === 'websocket'), 'every client upgraded to WebSocket');
                for (const s of sockets) s.close();
            })();
        } finally {
            await nat.stop();
        }
    });

    test('max_sockets_per_user: CONNECT_ERROR "too many sockets"', T, () =>
        d.wrap(async () => {
            const before = await limitHits('sockets_per_user');
            await client('u1');
            await client('u1');
            const s = pool.socket(d.url, '/', { transports: ['websocket'], auth: { userId: 'u1' } });
            const [err] = await waitFor(s, 'connect_error', { failOn: 'connect' });
            assert.equal(err.message, 'too many sockets');
            const anon = await client(null);
            await anon.fails('presence:identify', { userId: 'u1' }, 'limit_exceeded');
            await client('u2');
            assert.equal(await limitHits('sockets_per_user'), before + 2, 'the connect and the identify, each counted once');
        })());

    test('max_rooms_per_socket: limit_exceeded beyond, joined rooms still joinable', T, () =>
        d.wrap(async () => {
            const before = await limitHits('rooms_per_socket');
            const c = await client('roomy');
            for (const room of ['a', 'b', 'c']) await c.ok('presence:room:join', { room });
            await c.fails('presence:room:join', { room: 'd' }, 'limit_exceeded');
            await c.ok('presence:room:join', { room: 'a' });
            await c.ok('presence:room:leave', { room: 'a' });
            await c.ok('presence:room:join', { room: 'd' });
            const other = await client('other-roomy');
            await other.ok('presence:room:join', { room: 'e' });
            assert.equal(await limitHits('rooms_per_socket'), before + 1);
        })());

    test('max_subscriptions_per_socket: limit_exceeded beyond', T, () =>
        d.wrap(async () => {
            const before = await limitHits('subscriptions_per_socket');
            const c = await client('subber');
            await c.ok('presence:subscribe', { userIds: ['x', 'y', 'z'] });
            await c.ok('presence:subscribe', { userIds: ['x'] });
            await c.fails('presence:subscribe', { userIds: ['w'] }, 'limit_exceeded');
            await c.ok('presence:unsubscribe', { userIds: ['x'] });
            await c.ok('presence:subscribe', { userIds: ['w'] });
            assert.equal(await limitHits('subscriptions_per_socket'), before + 1);
        })());

    test('rate limit: rate_limited beyond the burst; persistent abuse closes the socket', T, () =>
        d.wrap(async () => {
            const before = await limitHits('rate_abuse_closed');
            const flooder = await client('flooder');
            const calm = await client('calm');
            const acks = await Promise.all(Array.from({ length: 15 }, () => flooder.call('presence:heartbeat', {})));
            const passed = acks.filter((a) => a.ok === true).length;
            const limited = acks.filter((a) => a.ok === false && a.error.code === 'rate_limited').length;
            assert.equal(passed + limited, 15, `every ack is ok or rate_limited: ${JSON.stringify(acks)}`);
            // The burst (10) goes through, less the token its CONNECT took (every message
            // counts against the connection's bucket), plus what 5/s refilled meanwhile.
            assert.ok(passed >= 9 && passed <= 10, `the burst goes through (${passed} passed)`);
            await calm.ok('presence:heartbeat', {});
            // The bucket refills at rate_limit = 5/s: 1.1 s of it is what this step tests.
            await sleep(1100);
            await flooder.ok('presence:heartbeat', {}); // refilled
            const gone = waitFor(flooder.socket, 'disconnect', { ms: 5000 });
            for (let i = 0; i < 40; i++) flooder.socket.emit('presence:heartbeat', {});
            await gone;
            assert.equal(await limitHits('rate_abuse_closed'), before + 1);
            await calm.ok('presence:heartbeat', {});
        })());
});
