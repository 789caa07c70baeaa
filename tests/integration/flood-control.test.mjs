// What one client can take from the others, bounded: every kind of message counts against the
// connection's rate (namespace CONNECT/DISCONNECT, unknown events), failed token checks against
// the address, answers against the send queue's bytes; queries on 10,000 ids and big rooms are
// answered whole or in pages; events name any number of rooms.
import { describe, test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import WebSocket from 'ws';
import { startDaemon } from './lib/daemon.mjs';
import { ClientPool, waitFor, sleep } from './lib/client.mjs';
import { PClient, PresenceEnv, STORES, waitUntil } from './lib/presence.mjs';

const T = { timeout: 60000 };
const pool = new ClientPool();
afterEach(() => pool.closeAll());

async function client(d, auth, opts = {}) {
    const s = await pool.connect(d.url, '/', { transports: ['websocket'], auth, ...opts });
    return new PClient(s, { userId: auth?.userId ?? null });
}

async function metric(d, family, label) {
    const text = await (await fetch(`${d.url}/metrics`)).text();
    const m = new RegExp(`^${family}\\{[a-z]+="${label}"\\} (\\d+)`, 'm').exec(text);
    return m ? Number(m[1]) : 0;
}

/** A raw Engine.IO WebSocket: resolves once the open packet arrived. */
function rawSocket(d) {
    return new Promise((resolve, reject) => {
        const ws = new WebSocket(`${d.wsUrl}/socket.io/?EIO=4&transport=websocket`, { perMessageDeflate: false });
        ws.frames = [];
        ws.on('message', (b) => {
            const s = b.toString();
            if (s === '2') return ws.send('3');
            if (s[0] === '0') return resolve(ws);
            ws.frames.push(s);
        });
        ws.on('error', reject);
        pool.raws.add({ terminate: () => ws.terminate() });
    });
}

describe('flood control', () => {
    let d;
    before(async () => {
        d = await startDaemon({ set: { rate_limit: 5, rate_burst: 10 } });
    });
    after(async () => d?.stop());

    // One WebSocket sending 40{"userId":...}/41 pairs made every observer receive a
    // presence:online and a presence:offline per pair, as fast as it could send them.
    test('namespace CONNECT/DISCONNECT count against the connection: churn cannot flood observers', T, () =>
        d.wrap(async () => {
            const observer = await client(d, { userId: 'observer' });
            const ws = await rawSocket(d);
            let closed = false;
            ws.on('close', () => (closed = true));
            const pairs = 500;
            for (let i = 0; i < pairs; i++) {
                ws.send('40{"userId":"churner"}');
                ws.send('41');
            }
            // Past the limit its CONNECTs are refused, and the DISCONNECT that follows one is a
            // packet for a namespace it has not joined: the connection is closed.
            await waitUntil(() => closed, { ms: 10000, what: 'the churning connection to be closed' });
            // Events of one store arrive in order: once a later user's online is here, every
            // event the churn caused is here too.
            await client(d, { userId: 'marker' });
            await observer.rec.waitFor('presence:online', { userId: 'marker' });
            const online = observer.rec.count('presence:online', { userId: 'churner' });
            assert.ok(online >= 1, 'the first connects went through');
            assert.ok(online <= 10, `at most rate_burst messages' worth of announcements (${online} of ${pairs})`);
            assert.ok((await metric(d, 'presenced_limit_hits_total', 'rate')) >= 1, 'refusals are counted');
        })());

    test('events no handler takes count too', T, () =>
        d.wrap(async () => {
            const c = await client(d, { userId: 'noisy' });
            for (let i = 0; i < 12; i++) c.socket.emit('presence:no-such-command', {});
            await c.fails('presence:heartbeat', {}, 'rate_limited');
        })());
});

describe('failed token checks per address', () => {
    const secret = crypto.randomBytes(32).toString('hex');
    const token = (sub) => {
        const enc = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
        const body = `${enc({ alg: 'HS256', typ: 'JWT' })}.${enc({ sub, exp: Math.floor(Date.now() / 1000) + 600 })}`;
        return `${body}.${crypto.createHmac('sha256', secret).update(body).digest('base64url')}`;
    };
    let d;
    before(async () => {
        d = await startDaemon({ set: { auth: 'jwt', jwt_secret: secret } }); // 30 failures a minute
    });
    after(async () => d?.stop());

    const connectFrom = async (localAddress, auth) => {
        const { Agent } = await import('node:http');
        const s = pool.socket(d.url, '/', { transports: ['websocket'], auth, agent: new Agent({ localAddress }) });
        const [outcome] = await Promise.race([waitFor(s, 'connect').then(() => ['connected']), waitFor(s, 'connect_error').then(([e]) => [e.message])]);
        s.disconnect();
        return outcome;
    };

    test('an address past its failures is refused unchecked; other addresses are not', T, () =>
        d.wrap(async () => {
            for (let i = 0; i < 30; i++) assert.equal(await connectFrom('127.0.0.5', { token: `bad.${i}.token` }), 'unauthorized');
            assert.equal(await connectFrom('127.0.0.5', { token: token('good') }), 'too many failed token checks from this address');
            assert.equal(await connectFrom('127.0.0.6', { token: token('good') }), 'connected');
            assert.ok((await metric(d, 'presenced_limit_hits_total', 'auth_failures_per_ip')) >= 1);
        })());
});

describe('bounded work and queues', () => {
    let d;
    before(async () => {
        d = await startDaemon({ set: { rate_burst: 2000, max_bulk_ids: 10000 } });
    });
    after(async () => d?.stop());

    test('presence:query with 10,000 ids answers each once', T, () =>
        d.wrap(async () => {
            const c = await client(d, { userId: 'asker' });
            const ids = Array.from({ length: 10000 }, (_, i) => `user-${i % 9000}`);
            ids[17] = 'asker';
            const r = await c.ok('presence:query', { userIds: ids });
            assert.equal(Object.keys(r.users).length, 9001);
            assert.equal(r.users.asker.online, true);
            assert.equal(r.users['user-8999'].online, false);
        })());

    // A client that asks for big answers and never reads them was kept, with everything queued
    // for it, until send_queue_max packets: hundreds of MB.
    test('a client that does not read its answers is dropped once its queue holds send_queue_bytes', T, () =>
        d.wrap(async () => {
            const before = await metric(d, 'presenced_slow_consumers_dropped_total', 'socketio');
            const ws = await rawSocket(d);
            ws.send('40');
            await waitUntil(() => ws.frames.some((f) => f.startsWith('40')), { what: 'CONNECT answer' });
            const closed = new Promise((r) => ws.on('close', r));
            ws._socket.pause(); // read nothing more
            const ids = JSON.stringify(Array.from({ length: 10000 }, (_, i) => `someone-with-a-long-id-${i}`));
            for (let i = 0; i < 120; i++) ws.send(`42${i}["presence:query",{"userIds":${ids}}]`);
            await waitUntil(async () => (await metric(d, 'presenced_slow_consumers_dropped_total', 'socketio')) > before, {
                ms: 20000,
                what: 'the slow consumer to be dropped',
            });
            ws._socket.resume();
            await closed;
            assert.ok((await metric(d, 'presenced_sessions_closed_total', 'send queue full')) >= 1);
        })());

    test('sessions that end are counted by why they ended', T, () =>
        d.wrap(async () => {
            const count = (why) => metric(d, 'presenced_sessions_closed_total', why);
            const [byClient, byTransport] = [await count('client close'), await count('transport close')];
            const asked = await rawSocket(d);
            asked.send('1'); // Engine.IO close
            await waitUntil(async () => (await count('client close')) === byClient + 1, { what: 'a client close counted' });
            const gone = await rawSocket(d);
            gone.terminate(); // the TCP connection ends without a close packet
            await waitUntil(async () => (await count('transport close')) === byTransport + 1, {
                what: 'a transport close counted',
            });
            assert.equal(await count('client close'), byClient + 1, 'each session is counted once');
        })());
});

for (const store of STORES) {
    describe(`rooms at scale (${store})`, () => {
        const env = new PresenceEnv(store);
        before(() => env.setup());
        afterEach(() => env.cleanup());
        after(() => env.teardown());

        test('presence:room:query is paged like GET /v1/rooms/{room}', T, env.wrap(async () => {
            const dd = await env.daemon({ rate_burst: 500, max_connections_per_ip: 500 });
            const members = await Promise.all(Array.from({ length: 120 }, (_, i) => env.client(dd, { userId: `m${String(i).padStart(3, '0')}` })));
            await Promise.all(members.map((m) => m.ok('presence:room:join', { room: 'big' })));
            const first = await members[0].ok('presence:room:query', { room: 'big' });
            assert.equal(first.onlineCount, 120);
            assert.equal(first.users.length, 100, 'the default page is 100 members');
            assert.equal(typeof first.nextCursor, 'string');
            const seen = [...first.users];
            let cursor = first.nextCursor;
            while (cursor) {
                const page = await members[0].ok('presence:room:query', { room: 'big', cursor, limit: 7 });
                assert.ok(page.users.length <= 7);
                seen.push(...page.users);
                cursor = page.nextCursor;
            }
            assert.deepEqual(seen, members.map((m) => m.userId).sort(), 'the pages hold every member once, in order');
            await members[0].fails('presence:room:query', { room: 'big', limit: 1001 }, 'invalid_argument');
        }));

        // An event naming more than 256 rooms was dropped by the event codec: the user's
        // offline never reached the sockets that share only a later room with them.
        test('events name every room the user is in, however many', T, env.wrap(async () => {
            const dd = await env.daemon({ broadcast: 'scoped', max_rooms_per_socket: 400, rate_burst: 1000 });
            const many = await env.client(dd, { userId: 'everywhere' });
            const watcher = await env.client(dd, { userId: 'watcher' });
            await watcher.ok('presence:room:join', { room: 'room-299' });
            for (let i = 0; i < 300; i++) await many.ok('presence:room:join', { room: `room-${i}` });
            many.disconnect();
            const [ev] = [await watcher.rec.waitFor('presence:offline', { userId: 'everywhere' })];
            assert.equal(ev.data.userId, 'everywhere');
        }));
    });
}
