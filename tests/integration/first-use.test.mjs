// What a new user runs into when building a "who is here" view from the docs alone: every
// mistake gets an answer that says what to do, metadata can change alone, a socket can connect
// already invisible, and event payloads are what docs/protocol.md says. Against both stores
// where the store takes part.
import { test, describe, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { io } from 'socket.io-client';
import { PresenceEnv, STORES, E, waitUntil } from './lib/presence.mjs';
import { SseStream } from './lib/http.mjs';

/** Connects with `auth` and resolves with the connect_error (rejects if it connects). */
function connectError(url, auth) {
    const s = io(url, { transports: ['websocket'], reconnection: false, auth });
    return new Promise((resolve, reject) => {
        s.on('connect', () => {
            s.close();
            reject(new Error(`connected with auth ${JSON.stringify(auth)}`));
        });
        s.on('connect_error', (err) => {
            s.close();
            resolve(err);
        });
    });
}

describe('mistakes get an answer', () => {
    const env = new PresenceEnv('memory');
    afterEach(() => env.cleanup());
    after(() => env.teardown());
    const it = (name, fn) => test(name, { timeout: 20000 }, env.wrap(fn));

    it('an unknown event is answered unknown_event, naming the closest command', async () => {
        const d = await env.daemon();
        const c = await env.client(d, { userId: 'fu-alice' });
        const r = await c.fails('presence:join', { room: 'doc-1' }, 'unknown_event');
        assert.match(r.error.message, /did you mean "presence:room:join"/);
        const r2 = await c.fails('chat:message', { text: 'hi' }, 'unknown_event');
        assert.match(r2.error.message, /docs\/protocol\.md/);
        // The socket carries on.
        await c.ok('presence:room:join', { room: 'doc-1' });
    });

    it('unknown or ill-typed auth keys are a connect_error naming the key', async () => {
        const d = await env.daemon();
        const typo = await connectError(d.url, { user: 'fu-alice' });
        assert.match(typo.message, /unknown auth key "user"/);
        const nul = await connectError(d.url, { userId: null });
        assert.equal(nul.message, 'invalid userId');
        const st = await connectError(d.url, { userId: 'fu-alice', status: 'gone' });
        assert.equal(st.message, 'invalid status');
        const tok = await connectError(d.url, { token: 'abc' });
        assert.match(tok.message, /auth\.token is not used \(auth = insecure\)/);
    });

    it('watching is not joining: an anonymous viewer sees the room and its reconnects announce nothing', async () => {
        const d = await env.daemon();
        const member = await env.client(d, { userId: 'fu-member', metadata: { name: 'M' } });
        await member.ok('presence:room:join', { room: 'fu-watch' });
        for (let round = 0; round < 2; round++) {
            const viewer = await env.client(d, {});
            const snap = await viewer.ok('presence:sync', { room: 'fu-watch', batch_ms: 0 });
            assert.deepEqual(snap.users, [{ userId: 'fu-member', status: round ? 'away' : 'online', metadata: { name: 'M' } }]);
            await member.ok('presence:status', { status: round ? 'online' : 'away' });
            const diff = await viewer.rec.waitFor('presence:diff', { room: 'fu-watch' });
            assert.deepEqual(diff.data.updates.map((u) => u.status), [round ? 'online' : 'away']);
            viewer.disconnect();
        }
        const r = await member.ok('presence:room:query', { room: 'fu-watch' });
        assert.deepEqual(r.users, ['fu-member'], 'viewers are no members');
        await env.fence(d, [member]);
        assert.deepEqual(member.rec.list().filter((e) => e.data?.userId !== 'fu-member'), [], member.rec.describe());
    });

    it('a refused Origin and a wrong path answer what to change, and are logged', async () => {
        const d = await env.daemon({ path: '/presence/' });
        const res = await fetch(`${d.url}/presence/?EIO=4&transport=polling`, { headers: { origin: 'http://evil.example' } });
        assert.equal(res.status, 403);
        const body = await res.json();
        assert.equal(body.code, 4);
        assert.match(body.hint, /allowed_origins/);
        for (let i = 0; i < 3; i++) {
            const nf = await fetch(`${d.url}/socket.io/?EIO=4&transport=polling`);
            assert.equal(nf.status, 404);
            assert.match((await nf.json()).error.message, /Socket\.IO is served at \/presence\/ \(the path setting/);
        }
        await waitUntil(() => /cause=origin .*setting=allowed_origins/.test(d.stderrText) && /unknown path.*socketio_path=\/presence\//.test(d.stderrText), { what: 'both refusals logged' });
        assert.equal(d.stderrText.match(/unknown path/g).length, 1, 'logged once');
    });
});

for (const store of STORES) {
    describe(`status and metadata (store=${store})`, () => {
        const env = new PresenceEnv(store);
        before(() => env.setup());
        afterEach(() => env.cleanup());
        after(() => env.teardown());
        const it = (name, fn) => test(name, { timeout: 20000 }, env.wrap(fn));

        it('presence:status with metadata alone keeps the status another tab set', async () => {
            const d = await env.daemon();
            const tab1 = await env.client(d, { userId: 'fu-meta', metadata: { name: 'A' } });
            const tab2 = await env.client(d, { userId: 'fu-meta' });
            const w = await env.client(d, { userId: 'fu-watcher' });
            await tab2.ok('presence:status', { status: 'away' });
            await w.rec.waitFor('presence:update', { userId: 'fu-meta', status: 'away' });
            await tab1.ok('presence:status', { metadata: { name: 'Alice' } });
            const up = await w.rec.waitFor('presence:update', (p) => p.userId === 'fu-meta' && p.metadata?.name === 'Alice');
            assert.equal(up.data.status, 'away');
            const q = await w.queryOne('fu-meta');
            assert.equal(q.status, 'away');
            assert.deepEqual(q.metadata, { name: 'Alice' });
            await tab1.fails('presence:status', {}, E.INVALID);
        });

        it('auth.status invisible: a reload stays invisible, nobody hears it come online', async () => {
            const d = await env.daemon();
            const w = await env.client(d, { userId: 'fu-w2' });
            const ghost = await env.client(d, { auth: { userId: 'fu-ghost', status: 'invisible' }, userId: 'fu-ghost' });
            const seen = await ghost.queryOne('fu-ghost');
            assert.equal(seen.status, 'invisible', 'the user sees their own status');
            const other = await w.queryOne('fu-ghost');
            assert.equal(other.online, false);
            ghost.disconnect();
            const again = await env.client(d, { auth: { userId: 'fu-ghost', status: 'invisible' }, userId: 'fu-ghost' });
            await again.ok('presence:status', { status: 'away' });
            await w.rec.waitFor('presence:online', { userId: 'fu-ghost' });
            // Before turning visible, nothing about fu-ghost reached the watcher.
            assert.deepEqual(w.rec.about('fu-ghost').map((e) => e.event), ['presence:online'], w.rec.describe());
        });

        it('HTTP snapshots carry a view on request: status and metadata per user, with seq', async () => {
            const d = await env.daemon();
            const a = await env.client(d, { userId: 'fu-h1', metadata: { name: 'H1' } });
            await a.ok('presence:room:join', { room: 'fu-hroom' });
            await a.ok('presence:status', { status: 'busy' });
            const q = await a.ok('presence:query', { userIds: ['fu-h1', 'fu-h2'] });
            const small = await (await fetch(`${d.url}/v1/users?ids=fu-h1,fu-h2`)).json();
            assert.deepEqual(small, { users: { 'fu-h1': true, 'fu-h2': false } }, 'small answers stay small');
            const users = await (await fetch(`${d.url}/v1/users?ids=fu-h1,fu-h2&detail=1`)).json();
            assert.deepEqual(users, {
                users: {
                    'fu-h1': { online: true, status: 'busy', lastSeen: users.users['fu-h1'].lastSeen, metadata: { name: 'H1' } },
                    'fu-h2': { online: false, status: 'offline', lastSeen: null, metadata: null },
                },
                seq: q.seq,
            });
            const bulk = await (await fetch(`${d.url}/v1/users/bulk`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ userIds: ['fu-h1'], detail: true }) })).json();
            assert.equal(bulk.users['fu-h1'].status, 'busy');
            const room = await (await fetch(`${d.url}/v1/rooms/fu-hroom?detail=1`)).json();
            const rq = await a.ok('presence:room:query', { room: 'fu-hroom' });
            assert.deepEqual(room, { room: 'fu-hroom', onlineCount: 1, users: ['fu-h1'], members: [{ userId: 'fu-h1', status: 'busy', metadata: { name: 'H1' } }], nextCursor: null, seq: rq.seq });
            assert.equal((await fetch(`${d.url}/v1/rooms/fu-hroom?detail=yes`)).status, 400);
        });

        it('payloads as documented: prevStatus on update, no empty socketId, own invisibility as an update', async () => {
            const d = await env.daemon();
            const tab1 = await env.client(d, { userId: 'fu-inv' });
            const tab2 = await env.client(d, { userId: 'fu-inv' });
            const w = await env.client(d, { userId: 'fu-obs' });
            await tab1.ok('presence:room:join', { room: 'fu-doc' });
            await w.ok('presence:room:join', { room: 'fu-doc' });
            await tab1.ok('presence:status', { status: 'away' });
            const up = await w.rec.waitFor('presence:update', { userId: 'fu-inv', status: 'away' });
            assert.equal(up.data.prevStatus, 'online');
            await tab1.ok('presence:status', { status: 'invisible' });
            const off = await w.rec.waitFor('presence:offline', { userId: 'fu-inv' });
            assert.ok(!('socketId' in off.data), `no empty socketId: ${JSON.stringify(off.data)}`);
            await w.rec.waitFor('presence:room:leave', { userId: 'fu-inv', room: 'fu-doc' });
            await tab1.ok('presence:status', { status: 'online' });
            const on = await w.rec.waitFor('presence:online', { userId: 'fu-inv' });
            assert.ok(!('socketId' in on.data), `no empty socketId: ${JSON.stringify(on.data)}`);
            await env.fence(d, [tab1, tab2, w]);
            // The user's own tabs heard their invisibility as updates, never their own offline.
            for (const tab of [tab1, tab2]) {
                const own = tab.rec.about('fu-inv').map((e) => `${e.event}${e.data.status ? ' ' + e.data.status : ''}`);
                assert.deepEqual(own.slice(own.indexOf('presence:update away')), [
                    'presence:update away',
                    'presence:update invisible',
                    'presence:update online',
                ], tab.rec.describe());
                const inv = tab.rec.list('presence:update', { userId: 'fu-inv', status: 'invisible' })[0];
                assert.equal(inv.data.prevStatus, 'away');
            }
        });
    });
}

describe('event stream ids across restarts (store=memory)', () => {
    const env = new PresenceEnv('memory');
    const streams = [];
    afterEach(async () => {
        streams.splice(0).forEach((s) => s.close());
        await env.cleanup();
    });
    after(() => env.teardown());
    const it = (name, fn) => test(name, { timeout: 20000 }, env.wrap(fn));
    const open = (d, opts) => {
        const s = new SseStream(d.url, opts);
        streams.push(s);
        return s;
    };
    const pair = (id) => id.split('-').map(BigInt);
    const above = (a, b) => {
        const [am, as = 0n] = pair(a), [bm, bs = 0n] = pair(b);
        return am > bm || (am === bm && as > bs);
    };

    it("an earlier run's Last-Event-ID gets a reset, then the new run's events from its start", async () => {
        const d1 = await env.daemon();
        const s1 = await open(d1).opened();
        const a = await env.client(d1, { userId: 'gen-alice' });
        a.disconnect();
        await s1.until((e) => e.some((x) => x.event === 'user.offline'), 5000, 'alice offline');
        const lastId = s1.events.at(-1).id;
        s1.close();
        await d1.stop();

        const d2 = await env.daemon();
        const b = await env.client(d2, { userId: 'gen-bob' });
        await b.ok('presence:room:join', { room: 'gen-room' });
        const s2 = open(d2, { lastEventId: lastId });
        await s2.until((e) => e.some((x) => x.event === 'room.join'), 5000, 'the replay');
        assert.deepEqual(s2.events.map((e) => `${e.event}:${e.data.userId ?? e.data.reason}`), [
            'reset:store_empty',
            'user.online:gen-bob',
            'room.join:gen-bob',
        ]);
        for (const e of s2.events) assert.ok(above(e.id, lastId), `${e.id} is above the earlier run's ${lastId}`);
        // Resuming from the reset's id replays the generation, not another reset.
        const s3 = open(d2, { lastEventId: s2.events[0].id });
        await s3.until((e) => e.length >= 2, 5000, 'the replay');
        assert.deepEqual(s3.events.map((e) => e.event), ['user.online', 'room.join']);
        // 0 is the start of what is kept (the live page replays from it): no reset.
        const s5 = open(d2, { lastEventId: '0' });
        await s5.until((e) => e.length >= 2, 5000, 'the replay from 0');
        assert.deepEqual(s5.events.map((e) => e.event), ['user.online', 'room.join']);
        // An id ahead of this run's events is not this stream's: said so, not "no longer retained".
        const gen = s2.events[0].id.split('-')[0];
        const s4 = open(d2, { lastEventId: `${gen}-999999` });
        await s4.until((e) => e.some((x) => x.event === 'reset'), 5000, 'reset');
        assert.match(s4.events[0].data.reason, /not an event of this stream/);
    });
});
