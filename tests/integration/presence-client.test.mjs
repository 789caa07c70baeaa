// The presence client (clients/js/presence.js) in Node.js against the real daemon: randomized
// churn in a room while views watch it (anonymous, a member, one that joins late, a contact
// list), each view compared with GET /v1/rooms/{room} and GET /v1/users/{id} once the churn
// settles, many seeded rounds, with the memory store and with Redis; a client moved between two
// instances by its reconnections; the wire protocol underneath (sequences, snapshots, batches
// coalesced at most once per batch_ms, read scope); idle detection on a fake clock.
//
// PRESENCE_CLIENT_SEED replays a schedule (a round's seed is printed when it fails);
// PRESENCE_CLIENT_ROUNDS sets the rounds per store (default 4).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { io } from 'socket.io-client';
import { presence, compareSeq } from '../../clients/js/presence.js';
import { startDaemon } from './lib/daemon.mjs';
import { startRedis } from './lib/redis.mjs';
import { sleep, waitUntil } from './lib/presence.mjs';
import { Churn, KEY, Oracle, recordStates, settle, startProxy, truth, fakeClock } from './lib/views.mjs';

const BASE_SEED = Number(process.env.PRESENCE_CLIENT_SEED ?? 0x5eed);
const ROUNDS = Number(process.env.PRESENCE_CLIENT_ROUNDS ?? 4);
const OPS = 50;
const DAEMON = { api_key: KEY, offline_grace: 0, rate_limit: 100000, rate_burst: 100000, ping_interval: 1000, ping_timeout: 1000 };

/** Resolves once the daemon's store is reachable (Redis connects in the background). */
const ready = (d) => waitUntil(async () => (await fetch(`${d.url}/readyz`)).status === 200, { what: 'readyz', ms: 10000 });

const sockets = new Set();
function connect(url, auth, opts = {}) {
    const s = io(url, { transports: ['websocket'], forceNew: true, auth, ...opts });
    sockets.add(s);
    return s;
}
const connected = (s) =>
    s.connected ? Promise.resolve() : new Promise((resolve, reject) => { s.once('connect', resolve); s.once('connect_error', reject); });
function closeAll() {
    for (const s of sockets) s.disconnect();
    sockets.clear();
}

/**
 * Watches the view `p` keeps: the sequence it reflects must never go back, and each event must
 * match the list (a join of someone absent, a leave of someone present).
 */
function audit(p, what) {
    const problems = [];
    let lastSeq = null;
    const shown = new Map();
    const check = (kind, u) => {
        if (p.seq !== null && lastSeq !== null && compareSeq(p.seq, lastSeq) < 0) problems.push(`${what}: seq went back from ${lastSeq} to ${p.seq}`);
        if (p.seq !== null) lastSeq = p.seq;
        if (kind === 'join' && shown.has(u.userId)) problems.push(`${what}: join of ${u.userId}, already shown`);
        if (kind !== 'join' && !shown.has(u.userId)) problems.push(`${what}: ${kind} of ${u.userId}, not shown`);
        if (kind === 'leave') shown.delete(u.userId);
        else shown.set(u.userId, u);
    };
    p.on('join', (u) => check('join', u));
    p.on('leave', (u) => check('leave', u));
    p.on('update', (u) => check('update', u));
    return problems;
}

/**
 * One round: churn in a fresh room watched by four views; every view must end equal to the
 * server's state. `switchAt(i)` may move clients between instances mid-churn.
 */
async function round({ churnUrls, watchUrl, httpUrl, seed, during }) {
    const room = `doc-${seed}`;
    const churn = new Churn({ urls: churnUrls, room, seed });
    // A member that hears every single event, first in the room: it knows the room at each seq.
    const witness = connect(churnUrls[0], { userId: `oracle-${seed}` });
    const oracle = new Oracle(witness, room);
    await connected(witness);
    assert.equal((await witness.emitWithAck('presence:room:join', { room })).ok, true, 'the witness joins');
    const quick = { reconnectionDelay: 50, reconnectionDelayMax: 200 };
    const anon = connect(watchUrl, {}, quick);
    const member = connect(watchUrl, { userId: `w-${seed}`, metadata: { watcher: true } }, quick);
    await Promise.all([connected(anon), connected(member)]);
    let connects = 0;
    anon.on('connect', () => connects++);
    assert.equal((await member.emitWithAck('presence:room:join', { room })).ok, true, 'the member joins');
    const views = {
        anonymous: presence(anon, { room, batchMs: 0 }),
        member: presence(member, { room, batchMs: 50 }),
        contacts: presence(member, { userIds: churn.userIds, batchMs: 20 }),
    };
    const problems = Object.entries(views).map(([k, p]) => audit(p, k));
    const shown = { anonymous: recordStates(views.anonymous), member: recordStates(views.member) };
    await Promise.all(Object.values(views).map((p) => p.ready));
    await churn.run(OPS, {
        during: async (i) => {
            if (!views.late && i >= OPS / 2) {
                // A socket of its own: one view per room per socket.
                const late = connect(watchUrl, {}, quick);
                await connected(late);
                views.late = presence(late, { room, batchMs: 120 });
                problems.push(audit(views.late, 'late'));
                shown.late = recordStates(views.late);
            }
            // A caller that cut the watchers' connections (it returns true) waits until both
            // are back, so that each cut moves them rather than falling into a reconnection.
            const before = connects;
            if (during && (await during(i))) {
                await waitUntil(() => connects > before && anon.connected && member.connected, { what: 'the watchers reconnected', ms: 10000 });
            }
        },
    });
    try {
        for (const [name, p] of Object.entries(views)) {
            const target = name === 'contacts' ? { userIds: churn.userIds } : { room };
            // A view between a reconnection and its new snapshot is not done yet.
            await settle(() => (p.synced ? p.list() : 'not synced'), httpUrl, target, `seed ${seed}, view ${name}`);
        }
        assert.deepEqual(problems.flat(), [], `seed ${seed}: the views' events`);
        // Every state a room view showed is the room as the server had it at that seq.
        let checked = 0;
        for (const [name, states] of Object.entries(shown)) {
            for (const { seq, list } of states) {
                assert.deepEqual(list, oracle.at(seq), `seed ${seed}: view ${name} showed, at seq ${seq}, a state the server never had (the witness heard ${oracle.history.slice(0, 8).map((h) => `${h.seq} ${h.event}`).join(', ')} ...)`);
                checked++;
            }
        }
        assert.ok(checked >= OPS / 2, `seed ${seed}: only ${checked} states were shown`);
        return { reconnects: connects };
    } finally {
        for (const p of Object.values(views)) p.close();
        churn.close();
        anon.disconnect();
        member.disconnect();
        witness.disconnect();
    }
}

for (const store of ['memory', 'redis']) {
    describe(`presence client in Node.js (store=${store})`, () => {
        let redis, d;
        before(async () => {
            if (store === 'redis') redis = await startRedis();
            d = await startDaemon({ set: store === 'redis' ? { ...DAEMON, store: 'redis', redis: redis.url } : DAEMON });
            await ready(d);
        });
        after(async () => {
            closeAll();
            await d?.stop();
            await redis?.stop();
        });

        test(`randomized churn: every view ends equal to the server (${ROUNDS} seeded rounds)`, { timeout: 120000 }, () =>
            d.wrap(async () => {
                for (let r = 0; r < ROUNDS; r++) {
                    const seed = BASE_SEED + r + (store === 'redis' ? 1000 : 0);
                    await round({ churnUrls: [d.url], watchUrl: d.url, httpUrl: d.url, seed });
                }
            })());
    });
}

describe('presence client across two instances (store=redis)', () => {
    let redis, a, b, proxy;
    before(async () => {
        redis = await startRedis();
        const set = { ...DAEMON, store: 'redis', redis: redis.url };
        a = await startDaemon({ set });
        b = await startDaemon({ set });
        await ready(a);
        await ready(b);
        proxy = await startProxy([a.port, b.port]);
    });
    after(async () => {
        closeAll();
        await proxy?.close();
        await a?.stop();
        await b?.stop();
        await redis?.stop();
    });

    test('views follow their socket from one instance to the other and back, and stay exact', { timeout: 120000 }, () =>
        a.wrap(
            b.wrap(async () => {
                for (let r = 0; r < Math.max(2, ROUNDS - 1); r++) {
                    const seed = BASE_SEED + 2000 + r;
                    let target = 0;
                    let next = 15;
                    // The watchers reach the daemons through the proxy; every 15 operations their
                    // connections are cut and they reconnect to the other instance.
                    const { reconnects } = await round({
                        churnUrls: [a.url, b.url],
                        watchUrl: proxy.url,
                        httpUrl: a.url,
                        seed,
                        during: async (i) => {
                            if (i < next) return false;
                            next += 15;
                            proxy.switchTo((target = 1 - target));
                            return true;
                        },
                    });
                    assert.ok(reconnects >= 2, `seed ${seed}: the watchers moved between instances (${reconnects} reconnections)`);
                }
            }),
        )());
});

describe('sync protocol', () => {
    let d, jd;
    const SECRET = 'a-test-secret-that-is-long-enough-0123456789';
    before(async () => {
        d = await startDaemon({ set: { ...DAEMON } });
        jd = await startDaemon({ set: { auth: 'jwt', jwt_secret: SECRET } });
    });
    after(async () => {
        closeAll();
        await d?.stop();
        await jd?.stop();
    });

    test('events, queries and snapshots carry seqs; a socket receives them in increasing order', { timeout: 20000 }, () =>
        d.wrap(async () => {
            const w = connect(d.url, { userId: 'sq-w' });
            const seqs = [];
            const events = [];
            w.onAny((event, p) => {
                if (!event.startsWith('presence:') || event === 'presence:diff') return;
                seqs.push(p.seq);
                events.push({ event, p });
            });
            await connected(w);
            await w.emitWithAck('presence:room:join', { room: 'sq' });
            const u = connect(d.url, { userId: 'sq-u', metadata: { k: 1 } });
            await connected(u);
            await u.emitWithAck('presence:room:join', { room: 'sq' });
            await u.emitWithAck('presence:status', { status: 'busy' });
            const q = await w.emitWithAck('presence:query', { userIds: ['sq-u', 'sq-none'] });
            assert.equal(typeof q.seq, 'string');
            assert.deepEqual(q.users['sq-u'], { online: true, status: 'busy', lastSeen: q.users['sq-u'].lastSeen, metadata: { k: 1 } });
            const rq = await w.emitWithAck('presence:room:query', { room: 'sq' });
            assert.deepEqual(rq.members, [
                { userId: 'sq-u', status: 'busy', metadata: { k: 1 } },
                { userId: 'sq-w', status: 'online', metadata: null },
            ]);
            assert.deepEqual(rq.users, ['sq-u', 'sq-w']);
            await u.emitWithAck('presence:room:leave', { room: 'sq' });
            u.disconnect();
            await waitUntil(() => seqs.length >= 6, { what: 'six events' });
            for (const s of seqs) assert.match(s, /^\d+-\d+$/, 'memory store seqs are the generation and a counter');
            for (let i = 1; i < seqs.length; i++) assert.ok(compareSeq(seqs[i - 1], seqs[i]) < 0, `seqs increase: ${seqs}`);
            // Both snapshots reflect exactly the events up to the status change (the last one
            // before them), not the leave after it.
            const busy = events.find((e) => e.event === 'presence:update' && e.p.userId === 'sq-u');
            assert.equal(rq.seq, busy.p.seq);
            assert.equal(q.seq, busy.p.seq);
        })());

    test('diffs: at most one per batch_ms, a join and a leave inside a batch cancel out, members get no single events', { timeout: 30000 }, () =>
        d.wrap(async () => {
            const room = 'bt';
            const w = connect(d.url, { userId: 'bt-w' });
            await connected(w);
            const diffs = [];
            const single = [];
            w.on('presence:diff', (p) => diffs.push({ at: Date.now(), p }));
            w.on('presence:room:join', (p) => single.push(p));
            w.on('presence:room:leave', (p) => single.push(p));
            const stay = connect(d.url, { userId: 'bt-stay' });
            await connected(stay);
            await stay.emitWithAck('presence:room:join', { room });
            const snap = await w.emitWithAck('presence:sync', { room, batch_ms: 1500 });
            assert.equal(snap.ok, true);
            assert.deepEqual(snap.users, [{ userId: 'bt-stay', status: 'online', metadata: null }]);
            await w.emitWithAck('presence:room:join', { room }); // a member: diffs only
            // Let a first batch go out (it carries the watcher's own join), so that the next ones are compact.
            await waitUntil(() => diffs.length >= 1, { what: 'the first diff', ms: 5000 });
            const first = diffs.length;
            const ghost = connect(d.url, { userId: 'bt-ghost' });
            await connected(ghost);
            await ghost.emitWithAck('presence:room:join', { room });
            await ghost.emitWithAck('presence:room:leave', { room });
            await stay.emitWithAck('presence:status', { status: 'away' });
            await waitUntil(() => diffs.length > first, { what: 'the batch', ms: 5000 });
            const d1 = diffs[first].p;
            assert.deepEqual(d1.joins, []);
            assert.deepEqual(d1.leaves, [], 'the ghost came and went within the batch');
            assert.deepEqual(d1.updates, [{ userId: 'bt-stay', status: 'away', metadata: null }]);
            assert.equal(d1.room, room);
            for (let i = 1; i < 8; i++) {
                await stay.emitWithAck('presence:status', { status: i % 2 ? 'busy' : 'dnd' });
                await sleep(100);
            }
            await waitUntil(() => diffs.at(-1).p.updates.some((u) => u.status === 'busy'), { what: 'the last batch', ms: 5000 });
            for (let i = 1; i < diffs.length; i++) {
                assert.ok(diffs[i].at - diffs[i - 1].at >= 1000, `batches at least batch_ms apart: ${diffs.map((x) => x.at - diffs[0].at)}`);
                assert.ok(compareSeq(diffs[i - 1].p.seq, diffs[i].p.seq) < 0, 'diff seqs increase');
            }
            assert.deepEqual(single, [], 'a watching member gets its room as diffs only');
            // Unwatched, the member hears single events again.
            await w.emitWithAck('presence:unsync', { room });
            await ghost.emitWithAck('presence:room:join', { room });
            await waitUntil(() => single.length === 1, { what: 'a single join after unsync' });
        })());

    test('a view synced in the middle of a batch sees a user leave that the batch cancels for older views', { timeout: 20000 }, () =>
        d.wrap(async () => {
            const room = 'mid';
            const old = connect(d.url, {});
            const late = connect(d.url, {});
            const x = connect(d.url, { userId: 'mid-x' });
            await Promise.all([connected(old), connected(late), connected(x)]);
            const pOld = presence(old, { room, batchMs: 1500 });
            await pOld.ready;
            await sleep(50);
            // One batch opens with x's join; the late view's snapshot shows x; x leaves within
            // the same batch, which the old view sees as nothing at all.
            await x.emitWithAck('presence:room:join', { room });
            const pLate = presence(late, { room, batchMs: 1500 });
            await pLate.ready;
            assert.deepEqual(pLate.list().map((u) => u.userId), ['mid-x'], 'the late snapshot shows x');
            await x.emitWithAck('presence:room:leave', { room });
            await waitUntil(() => pLate.list().length === 0, { what: 'the late view sees x leave', ms: 5000 });
            assert.deepEqual(pOld.list(), [], 'the old view never showed x');
            pOld.close();
            pLate.close();
        })());

    test('one view per room and one contact list per socket', { timeout: 10000 }, () =>
        d.wrap(async () => {
            const s = connect(d.url, {});
            await connected(s);
            const a = presence(s, { room: 'one' });
            assert.throws(() => presence(s, { room: 'one', batchMs: 0 }), /already has a view of room one/);
            const other = presence(s, { room: 'two' });
            const list = presence(s, { userIds: ['x'] });
            assert.throws(() => presence(s, { userIds: ['y'] }), /contact-list/);
            a.close();
            presence(s, { room: 'one' }).close(); // free again once closed
            other.close();
            list.close();
        })());

    test('bad arguments and limits are refused; the jwt rooms claim bounds what a socket may read', { timeout: 20000 }, () =>
        d.wrap(async () => {
            const w = connect(d.url, {});
            await connected(w);
            for (const bad of [{}, { room: '' }, { room: 'r', batch_ms: -1 }, { room: 'r', batch_ms: 10001 }, { room: 'r', batch_ms: '5' }, { userIds: [] }, { userIds: [1] }]) {
                const r = await w.emitWithAck('presence:sync', bad);
                assert.equal(r.error?.code, 'invalid_argument', JSON.stringify(bad));
            }
            const tok = (claims) => {
                const b64u = (v) => Buffer.from(JSON.stringify(v)).toString('base64url');
                const body = `${b64u({ alg: 'HS256', typ: 'JWT' })}.${b64u({ exp: Math.floor(Date.now() / 1000) + 3600, ...claims })}`;
                return `${body}.${crypto.createHmac('sha256', SECRET).update(body).digest('base64url')}`;
            };
            const j = connect(jd.url, { token: tok({ sub: 'jw', rooms: ['team-*'] }) });
            await connected(j);
            assert.equal((await j.emitWithAck('presence:sync', { room: 'team-a' })).ok, true);
            assert.equal((await j.emitWithAck('presence:sync', { room: 'other' })).error?.code, 'forbidden');
            assert.equal((await j.emitWithAck('presence:room:query', { room: 'team-b' })).ok, true);
            assert.equal((await j.emitWithAck('presence:room:query', { room: 'other' })).error?.code, 'forbidden');
            const anon = connect(jd.url, {});
            await connected(anon);
            assert.equal((await anon.emitWithAck('presence:sync', { room: 'other' })).ok, true, 'anonymous reads are allowed (anonymous_reads not set)');
        })());
});

describe('idle detection', () => {
    let d;
    before(async () => {
        d = await startDaemon({ set: DAEMON });
    });
    after(async () => {
        closeAll();
        await d?.stop();
    });

    const status = async (id) => (await truth(d.url, { userIds: [id] }))[0]?.status;

    test('away after the idle time or while hidden, back on input; a chosen busy stays', { timeout: 20000 }, () =>
        d.wrap(async () => {
            const clock = fakeClock();
            const win = new EventTarget();
            const doc = new EventTarget();
            doc.visibilityState = 'visible';
            const s = connect(d.url, { userId: 'idle-u' });
            await connected(s);
            const p = presence(s, { userIds: ['idle-u'], idle: { after: 60000 }, clock, window: win, document: doc });
            await p.ready;
            const until = (want, what) => waitUntil(async () => (await status('idle-u')) === want, { what });
            clock.advance(59000);
            await sleep(200);
            assert.equal(await status('idle-u'), 'online', 'not idle yet');
            win.dispatchEvent(new Event('keydown')); // input restarts the wait
            clock.advance(59000);
            await sleep(200);
            assert.equal(await status('idle-u'), 'online', 'input restarted the wait');
            clock.advance(1000);
            await until('away', 'away after 60 s without input');
            assert.equal(p.idle, true);
            await settle(() => p.list(), d.url, { userIds: ['idle-u'] }, 'the view shows the user away');
            win.dispatchEvent(new Event('mousemove'));
            await until('online', 'online again on input');
            doc.visibilityState = 'hidden';
            doc.dispatchEvent(new Event('visibilitychange'));
            await until('away', 'away while hidden');
            doc.visibilityState = 'visible';
            doc.dispatchEvent(new Event('visibilitychange'));
            await until('online', 'online when visible again');
            await p.setStatus('busy');
            clock.advance(120000);
            await sleep(200);
            assert.equal(await status('idle-u'), 'busy', 'a chosen busy is not replaced by away');
            p.close();
        })());
});
