// Presence across instances sharing one Redis: events and queries agree across daemons, a SIGKILLed
// instance's users go offline once through the lease reap, a tab moving between instances races its
// predecessor's close without breaking the online/offline alternation, Redis emptied (FLUSHALL or a
// restart) while users are connected tells observers to start again and announces them all once
// more, without offline events, and Redis down keeps connections up while commands answer
// store_unavailable.
//
// PRESENCE_RACE_ITER sets the race iterations (default below); PRESENCE_RACE_SEED replays a schedule.
import { test, describe, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { startRedis, presenceKey } from './lib/redis.mjs';
import { metric, SseStream } from './lib/http.mjs';
import {
    PresenceEnv,
    E,
    sleep,
    waitFor,
    waitUntil,
    waitSockets,
    prng,
    assertOnline,
    assertOffline,
    assertTime,
} from './lib/presence.mjs';

const RACE_ITER_DEFAULT = 1000;
const LEASE_S = 3; // instance_lease: the smallest allowed, so that reaps come quickly
const TICK_MS = (LEASE_S * 1000) / 3; // lease refresh and reap period
// The race tests poll presence:query in tight loops from one observer socket: lift the per-socket
// command rate limit (default 20/s), which is not what they check.
const PING = { ping_interval: 1000, ping_timeout: 1000, rate_limit: 100000, rate_burst: 100000 };

describe('presence cluster (store=redis)', () => {
    const env = new PresenceEnv('redis');
    before(() => env.setup());
    afterEach(() => env.cleanup());
    after(() => env.teardown());
    const it = (name, fn, timeout = 30000) => test(name, { timeout }, env.wrap(fn));

    /** Every id online (query through client c)? */
    async function allOnline(c, ids) {
        const users = await c.query(ids);
        return ids.every((id) => users[id].online);
    }

    /** online/offline events about userId as a string of '+' and '-', in arrival order. */
    function transitions(rec, userId) {
        return rec
            .about(userId)
            .filter((e) => e.event === 'presence:online' || e.event === 'presence:offline')
            .map((e) => (e.event === 'presence:online' ? '+' : '-'))
            .join('');
    }

    /** Asserts s is "+-+-...", starting with online; names the first violation. */
    function assertAlternates(s, what) {
        for (let i = 0; i < s.length; i++) {
            const want = i % 2 === 0 ? '+' : '-';
            if (s[i] !== want) {
                assert.fail(
                    `${what}: event #${i + 1} is ${s[i] === '+' ? 'online' : 'offline'} after ${i === 0 ? 'nothing' : s[i - 1] === '+' ? 'online' : 'offline'} ` +
                        `(sequence around it: ...${s.slice(Math.max(0, i - 10), i + 10)}...)`,
                );
            }
        }
    }

    it('two instances: a client on B sees online/offline/update/room events of a user on A; queries agree', async () => {
        const A = await env.daemon(PING);
        const B = await env.daemon(PING);
        const obsA = await env.client(A, { userId: 'c2-obsa' });
        const obsB = await env.client(B, { userId: 'c2-obsb' });
        const viewer = await env.client(B, { userId: 'c2-viewer' });
        await viewer.ok('presence:room:join', { room: 'c2-doc' });

        const meta = { desk: 'B7' };
        const u = await env.client(A, { userId: 'c2-u', metadata: meta });
        const on = await obsB.rec.waitFor('presence:online', { userId: 'c2-u' });
        assert.deepEqual(on.data, { userId: 'c2-u', socketId: u.id, status: 'online', metadata: meta });
        await obsA.rec.waitFor('presence:online', { userId: 'c2-u' });

        const ids = ['c2-u', 'c2-viewer', 'c2-nobody'];
        const qa = await obsA.query(ids);
        const qb = await obsB.query(ids);
        assert.deepEqual(qa, qb, 'A and B answer the same');
        assertOnline(qa['c2-u']);
        assertOnline(qa['c2-viewer']);
        assertOffline(qa['c2-nobody'], { neverSeen: true });

        await u.ok('presence:room:join', { room: 'c2-doc' });
        assert.deepEqual(await viewer.rec.waitFor('presence:room:join', { userId: 'c2-u', room: 'c2-doc' }).then((e) => e.data), {
            userId: 'c2-u',
            room: 'c2-doc',
        });
        const rA = await obsA.roomQuery('c2-doc');
        assert.deepEqual(rA, { onlineCount: 2, ids: ['c2-u', 'c2-viewer'] });
        assert.deepEqual(await obsB.roomQuery('c2-doc'), rA);

        await u.ok('presence:status', { status: 'dnd' });
        const up = await obsB.rec.waitFor('presence:update', { userId: 'c2-u', status: 'dnd' });
        assert.deepEqual(up.data, { userId: 'c2-u', status: 'dnd', prevStatus: 'online', metadata: meta });
        assertOnline(await obsB.queryOne('c2-u'), 'dnd');

        // a second tab on B, then the tab on A closes: still online, nobody hears otherwise
        const u2 = await env.client(B, { userId: 'c2-u' });
        u.disconnect();
        await waitSockets(A.url, 'c2-u', 1);
        await env.fence(A, [obsA, obsB]);
        obsA.rec.assertNone('presence:offline', { userId: 'c2-u' }, 'a tab still open on B');
        obsB.rec.assertNone('presence:offline', { userId: 'c2-u' }, 'a tab still open on B');
        obsB.rec.assertCount('presence:online', { userId: 'c2-u' }, 1);
        assertOnline(await obsA.queryOne('c2-u'), 'dnd');
        // the room membership was the A tab's: it left
        await viewer.rec.waitFor('presence:room:leave', { userId: 'c2-u', room: 'c2-doc' });

        const lastId = u2.id;
        u2.disconnect();
        const [offA, offB] = await Promise.all([
            obsA.rec.waitFor('presence:offline', { userId: 'c2-u' }),
            obsB.rec.waitFor('presence:offline', { userId: 'c2-u' }),
        ]);
        assert.deepEqual(offA.data, offB.data, 'the same offline event on A and B');
        assert.equal(offB.data.socketId, lastId);
        assertTime(offB.data.lastSeen);
        await env.fence(B, [obsA, obsB]);
        for (const o of [obsA, obsB]) {
            o.rec.assertCount('presence:offline', { userId: 'c2-u' }, 1);
            o.rec.assertCount('presence:online', { userId: 'c2-u' }, 1);
        }
        const qa2 = await obsA.query(ids);
        assert.deepEqual(qa2, await obsB.query(ids), 'A and B still agree');
        assertOffline(qa2['c2-u']);
        assert.equal(qa2['c2-u'].lastSeen, offB.data.lastSeen);
    });

    it(`SIGKILL of instance A (instance_lease=${LEASE_S}): its users go offline exactly once, seen on B and C`, async (t) => {
        const set = { ...PING, instance_lease: LEASE_S };
        const A = await env.daemon(set);
        const B = await env.daemon(set);
        const C = await env.daemon(set); // a second possible reaper: still one offline per user
        const obsB = await env.client(B, { label: 'observer on B' });
        const obsC = await env.client(C, { label: 'observer on C' });
        const mate = await env.client(B, { userId: 'ck-mate' });
        await mate.ok('presence:room:join', { room: 'ck-room' });

        const ids = ['ck-1', 'ck-2', 'ck-3', 'ck-4', 'ck-5'];
        const onA = await env.clients(A, ids.map((userId) => ({ userId })));
        const sidOf = Object.fromEntries(onA.map((c) => [c.userId, c.id]));
        await onA[0].ok('presence:room:join', { room: 'ck-room' });
        await mate.rec.waitFor('presence:room:join', { userId: 'ck-1', room: 'ck-room' });
        await env.client(A, { userId: 'ck-both' });
        await env.client(B, { userId: 'ck-both' });
        for (const id of [...ids, 'ck-both']) {
            await obsB.rec.waitFor('presence:online', { userId: id });
            await obsC.rec.waitFor('presence:online', { userId: id });
        }
        for (const [id, u] of Object.entries(await obsB.query([...ids, 'ck-both']))) assertOnline(u, 'online', id);

        const deadA = A.instanceId;
        assert.ok(deadA, 'instance id of A in its log');
        const t0 = Date.now();
        await env.killDaemon(A, 'SIGKILL');
        const offs = await Promise.all(
            ids.flatMap((id) => [obsB, obsC].map((o) => o.rec.waitFor('presence:offline', { userId: id }, 5 * (LEASE_S * 1000 + TICK_MS)))),
        );
        t.diagnostic(`last offline ${Math.max(...offs.map((e) => e.at)) - t0} ms after the SIGKILL (lease ${LEASE_S} s)`);
        for (const e of offs) {
            assert.equal(e.data.socketId, sidOf[e.data.userId], `offline of ${e.data.userId} names its socket on A`);
            assertTime(e.data.lastSeen, `lastSeen of ${e.data.userId}`);
        }
        await mate.rec.waitFor('presence:room:leave', { userId: 'ck-1', room: 'ck-room' });

        // The reap is over once A has left the instance set and its socket hash is gone; B and C
        // together reaped A's six sockets, each once. Only then can a fence rule out duplicates.
        await waitUntil(async () => (await env.redis.command('ZSCORE', `${env.prefix}instances`, deadA)) === '$-1', { what: 'A out of the instance set' });
        assert.equal(await env.redis.command('EXISTS', presenceKey(env.prefix, 'i', deadA)), ':0', "A's socket hash is gone");
        const reaped = (await metric(B.url, 'presenced_reaped_sockets_total')) + (await metric(C.url, 'presenced_reaped_sockets_total'));
        assert.equal(reaped, ids.length + 1, 'sockets reaped by B and C together: the 6 of A, each once');
        await env.fence(B, [obsB, obsC, mate]);
        for (const o of [obsB, obsC]) {
            for (const id of ids) o.rec.assertCount('presence:offline', { userId: id }, 1, id);
            o.rec.assertNone('presence:offline', { userId: 'ck-both' }, 'ck-both has a tab on B');
            o.rec.assertNone('presence:offline', { userId: 'ck-mate' });
        }
        mate.rec.assertCount('presence:room:leave', { userId: 'ck-1', room: 'ck-room' }, 1);
        for (const o of [obsB, obsC]) {
            const users = await o.query([...ids, 'ck-both', 'ck-mate']);
            for (const id of ids) assertOffline(users[id], {}, id);
            assertOnline(users['ck-both']);
            assertOnline(users['ck-mate']);
            assert.deepEqual(await o.roomQuery('ck-room'), { onlineCount: 1, ids: ['ck-mate'] });
        }
    });

    it('race: a new tab on one instance while the last tab on the other closes; truth and strict alternation', async (t) => {
        const N = Number(process.env.PRESENCE_RACE_ITER ?? RACE_ITER_DEFAULT);
        const seed = Number(process.env.PRESENCE_RACE_SEED ?? Math.floor(Math.random() * 2 ** 31));
        assert.ok(Number.isInteger(N) && N > 0, 'PRESENCE_RACE_ITER is a positive integer');
        const rnd = prng(seed);
        const ctx = `seed ${seed} (PRESENCE_RACE_SEED=${seed} replays the delays)`;
        const U = 'race-u';
        const A = await env.daemon(PING);
        const B = await env.daemon(PING);
        const inst = [A, B];
        const obs = [await env.client(A, { label: 'observer on A' }), await env.client(B, { label: 'observer on B' })];

        let side = 0; // the instance of the current tab
        let cur = await env.client(A, { userId: U });
        let forcedOffline = 0;
        const t0 = Date.now();
        for (let i = 0; i < N; i++) {
            if (!cur) cur = await env.client(inst[side], { userId: U });
            const other = 1 - side;
            const next = await env.client(inst[other], { userId: U, connect: false, autoConnect: false });
            const closing = cur;
            const connected = waitFor(next.socket, 'connect', { failOn: 'connect_error' });
            const d1 = rnd() * 5;
            const d2 = rnd() * 5;
            await Promise.all([
                sleep(d1).then(() => next.socket.connect()),
                sleep(d2).then(() => closing.disconnect()),
                connected,
            ]);
            env.forget(closing);
            cur = next;
            side = other;
            let truth = true;
            if (rnd() < 0.1) {
                // sometimes the user goes away for real
                cur.disconnect();
                env.forget(cur);
                cur = null;
                truth = false;
                forcedOffline++;
            }
            const q = obs[i % 2];
            await waitUntil(async () => (await q.queryOne(U)).online === truth, {
                ms: 3000,
                every: 5,
                what: `iteration ${i}: query on ${i % 2 ? 'B' : 'A'} says online=${truth}; ${ctx}`,
            });
        }
        const loopMs = Date.now() - t0;
        if (cur) {
            cur.disconnect();
            env.forget(cur);
        }
        for (const o of obs) {
            await waitUntil(async () => transitions(o.rec, U).endsWith('-') && !(await o.queryOne(U)).online, {
                ms: 5000,
                what: `the final offline on ${o.label}; ${ctx}`,
            });
        }
        await env.fence(A, obs);
        const seqA = transitions(obs[0].rec, U);
        const seqB = transitions(obs[1].rec, U);
        assertAlternates(seqA, `observer on A, ${ctx}`);
        assertAlternates(seqB, `observer on B, ${ctx}`);
        // One stream, read by both instances: the same transitions, in the same order.
        assert.equal(seqA, seqB, `A and B saw the same transitions (${ctx})`);
        const offlines = seqA.split('-').length - 1;
        assert.ok(offlines >= forcedOffline + 1, `${offlines} offline events for ${forcedOffline} forced offlines + the last (${ctx})`);
        for (const o of obs) assertOffline(await o.queryOne(U));
        t.diagnostic(`race: ${N} iterations in ${loopMs} ms, ${offlines} offline events, ${ctx}`);
    }, 120000);

    /** Two instances with 100 users (50 each, metadata, some in a room, one busy), all online. */
    async function hundredUsers(tag) {
        const set = { ...PING, instance_lease: LEASE_S };
        const A = await env.daemon(set);
        const B = await env.daemon(set);
        const obs = [await env.client(A, { label: 'observer on A' }), await env.client(B, { label: 'observer on B' })];
        const ids = Array.from({ length: 100 }, (_, i) => `${tag}-${String(i).padStart(3, '0')}`);
        const clients = await Promise.all(ids.map((userId, i) => env.client(i % 2 ? B : A, { userId, metadata: { n: i } })));
        const room = `${tag}-room`;
        await Promise.all(clients.slice(0, 10).map((c) => c.ok('presence:room:join', { room })));
        await clients[0].ok('presence:status', { status: 'busy' });
        for (const o of obs) {
            // every online event delivered before the test takes its marks
            for (const id of ids) await o.rec.waitFor('presence:online', { userId: id });
            await waitUntil(() => allOnline(o, ids), { what: `all 100 online on ${o.label}` });
            assert.deepEqual((await o.roomQuery(room)).onlineCount, 10);
        }
        return { A, B, obs, ids, clients, room };
    }

    /** Resolves once every daemon has refreshed its lease in Redis `n` more times (ticked). */
    async function ticked(daemons, n) {
        const score = (d) => env.redis.command('ZSCORE', `${env.prefix}instances`, d.instanceId);
        const first = await Promise.all(daemons.map(score));
        const seen = daemons.map((_, k) => new Set([first[k]]));
        await waitUntil(
            async () => {
                const now = await Promise.all(daemons.map(score));
                now.forEach((v, k) => v !== '$-1' && seen[k].add(v));
                return seen.every((set) => set.size > n);
            },
            { ms: 10 * TICK_MS * n, what: `${n} lease refreshes of every instance` },
        );
    }

    /**
     * After Redis lost everything (docs/presence-model.md, "Redis lost its data"): every observer
     * is told to start again (presence:resync {reset: true}) before anything of the new
     * generation, and then each of the users is announced online exactly once, with the status
     * and metadata they had; nobody is announced offline. Queries, rooms and status agree.
     */
    async function assertAllBack({ A, B, obs, ids, clients, room }, since, marks, what) {
        for (const o of obs) {
            await o.rec.waitFor('presence:resync', { reset: true }, 30000);
            await waitUntil(() => allOnline(o, ids), { ms: 30000, every: 100, what: `all 100 online on ${o.label} ${what}` });
        }
        const backMs = Date.now() - since;
        // A spurious reap or re-announcement would come from a tick: let each instance tick twice
        // more, then fence, so that anything they decided is in before the counts.
        await ticked([A, B], 2);
        await env.fence(A, obs);
        const idSet = new Set(ids);
        obs.forEach((o, k) => {
            const since = o.rec.events.slice(marks[k]);
            const resets = since.filter((e) => e.event === 'presence:resync' && e.data?.reset === true);
            assert.equal(resets.length, 1, `one reset ${what} (${o.label})`);
            const at = since.indexOf(resets[0]);
            const about = (list) => list.filter((e) => idSet.has(e.data?.userId)).map((e) => `${e.event} ${JSON.stringify(e.data)}`);
            assert.deepEqual(about(since.slice(0, at)), [], `nothing about the 100 users before the reset ${what} (${o.label})`);
            const after = since.slice(at + 1).filter((e) => idSet.has(e.data?.userId));
            assert.deepEqual(about(after.filter((e) => e.event !== 'presence:online')), [], `only online events about the 100 users after the reset (${o.label})`);
            const onlines = after.map((e) => e.data);
            assert.deepEqual(onlines.map((d) => d.userId).sort(), [...ids].sort(), `each of the 100 announced online once ${what} (${o.label})`);
            for (const d of onlines) {
                const i = ids.indexOf(d.userId);
                assert.equal(d.status, i === 0 ? 'busy' : 'online', `${d.userId}'s status ${what}`);
                assert.deepEqual(d.metadata, { n: i }, `${d.userId}'s metadata ${what}`);
            }
        });
        for (const o of obs) {
            const users = await o.query(ids);
            for (const id of ids) assertOnline(users[id], id === ids[0] ? 'busy' : 'online', `${id} ${what} (${o.label})`);
            assert.deepEqual(await o.roomQuery(room), { onlineCount: 10, ids: ids.slice(0, 10) }, `room membership ${what}`);
        }
        const dropped = clients.filter((c) => !c.connected || c.disconnects.length);
        assert.equal(dropped.length, 0, `clients disconnected ${what}: ${dropped.map((c) => `${c.userId} ${c.disconnects}`).join(', ')}`);
        return backMs;
    }

    it('Redis emptied by FLUSHALL while 100 users are connected: a reset, then all announced online again once, no offline events', async (t) => {
        const h = await hundredUsers('fl');
        const marks = h.obs.map((o) => o.rec.events.length);
        assert.equal(await env.redis.command('FLUSHALL'), '+OK');
        const since = Date.now();
        t.diagnostic(`all 100 back ${await assertAllBack(h, since, marks, 'after FLUSHALL')} ms after FLUSHALL`);
        // and presence works as before
        h.clients[1].disconnect();
        for (const o of h.obs) await o.rec.waitFor('presence:offline', { userId: h.ids[1] });
    });

    it('redis-server restarted empty on the same port while 100 users are connected: a reset, then all announced online again once, no offline events', async (t) => {
        const h = await hundredUsers('rs');
        const marks = h.obs.map((o) => o.rec.events.length);
        // An HTTP reader of the event stream (no key: it sees what anyone may read).
        const sse = await new SseStream(h.B.url).opened();
        t.after(() => sse.close());
        const port = env.redis.port;
        // A key of the test's own: gone after the restart only if the data went with it (the
        // instances write again as soon as they are back, so the key count proves nothing).
        assert.equal(await env.redis.command('SET', 'rs-marker', '1'), '+OK');
        await env.redis.stop();
        for (const o of h.obs) {
            await waitUntil(
                async () => {
                    const r = await o.call('presence:query', { userIds: [h.ids[0]] });
                    return r?.ok === false && r.error?.code === E.UNAVAILABLE;
                },
                { what: `store_unavailable on ${o.label} while Redis is down` },
            );
        }
        env.redis = await startRedis({ port });
        const since = Date.now();
        assert.equal(await env.redis.command('EXISTS', 'rs-marker'), ':0', 'the new redis-server starts empty');
        t.diagnostic(`all 100 back ${await assertAllBack(h, since, marks, 'after the Redis restart')} ms after the restart`);
        // The SSE reader too: a reset (no user), then each of the 100 online once, nobody offline.
        const idSet = new Set(h.ids);
        const count = (evs, type) => evs.filter((e) => e.event === type && idSet.has(e.data.userId)).length;
        const afterReset = (evs) => evs.slice(evs.findIndex((e) => e.event === 'reset'));
        await sse.until((evs) => evs.some((e) => e.event === 'reset') && count(afterReset(evs), 'user.online') >= 100 && count(afterReset(evs), 'room.join') >= 10, 30000, 'a reset, then 100 user.online and 10 room.join');
        const resets = sse.events.filter((e) => e.event === 'reset');
        assert.equal(resets.length, 1, `one reset on the SSE stream: ${JSON.stringify(resets)}`);
        assert.equal(resets[0].data.type, 'reset');
        assert.equal(resets[0].data.reason, 'store_empty');
        assert.equal(resets[0].data.id, resets[0].id);
        assert.equal(resets[0].data.userId, undefined);
        const at = sse.events.indexOf(resets[0]);
        const about = (evs) => evs.filter((e) => idSet.has(e.data.userId)).map((e) => `${e.event} ${e.data.userId}`);
        assert.deepEqual(about(sse.events.slice(0, at)), [], 'nothing about the 100 users on the SSE stream before the reset');
        assert.deepEqual(about(sse.events.slice(at + 1)).sort(), h.ids.map((u) => `user.online ${u}`).concat(h.ids.slice(0, 10).map((u) => `room.join ${u}`)).sort(), 'each of the 100 online once (and the 10 in the room joining it) on the SSE stream after the reset');
        h.clients[2].disconnect();
        for (const o of h.obs) await o.rec.waitFor('presence:offline', { userId: h.ids[2] });
    });

    it('a user who connects before the daemon has reached Redis is registered once it has', async () => {
        const port = env.redis.port;
        // A key of the test's own: gone after the restart only if the data went with it (the
        // instances write again as soon as they are back, so the key count proves nothing).
        assert.equal(await env.redis.command('SET', 'rs-marker', '1'), '+OK');
        await env.redis.stop();
        const A = await env.daemon({ ...PING, instance_lease: LEASE_S }, { waitReady: false });
        const early = await env.client(A, { userId: 'sb-1' });
        // The daemon has handled the early socket (a later command on it is answered) while
        // Redis is down.
        await early.fails('presence:heartbeat', {}, E.UNAVAILABLE);
        env.redis = await startRedis({ port });
        const obs = await env.client(A, { label: 'observer' });
        await waitUntil(() => allOnline(obs, ['sb-1']), { ms: 30000, every: 100, what: 'sb-1 online once Redis is reachable' });
        assert.ok(early.connected && early.disconnects.length === 0, 'the early client stayed connected');
        await early.ok('presence:room:join', { room: 'sb-room' });
        assert.deepEqual(await obs.roomQuery('sb-room'), { onlineCount: 1, ids: ['sb-1'] });
    });

    it('Redis down: commands answer store_unavailable, connections stay up, and it all works again once Redis is back', async () => {
        const A = await env.daemon({ ...PING, instance_lease: LEASE_S });
        const obs = await env.client(A, { label: 'anonymous observer' });
        const u1 = await env.client(A, { userId: 'rd-1' });
        const u2 = await env.client(A, { userId: 'rd-2', transports: ['polling'] });
        await u1.ok('presence:room:join', { room: 'rd-room' });
        await obs.rec.waitFor('presence:online', { userId: 'rd-1' });
        await obs.rec.waitFor('presence:online', { userId: 'rd-2' });
        const anon = await env.client(A, {});
        const port = env.redis.port;
        const mark = obs.rec.events.length;

        await env.redis.stop();
        const pingsAtDown = [obs, u1, u2, anon].map((c) => c.pings);
        await waitUntil(
            async () => {
                const r = await u1.call('presence:query', { userIds: ['rd-1'] });
                return r?.ok === false && r.error?.code === E.UNAVAILABLE;
            },
            { what: 'presence:query answering store_unavailable' },
        );
        await u1.fails('presence:query', { userIds: ['rd-1', 'rd-2'] }, E.UNAVAILABLE);
        await u1.fails('presence:room:query', { room: 'rd-room' }, E.UNAVAILABLE);
        await u1.fails('presence:heartbeat', {}, E.UNAVAILABLE);
        await u1.fails('presence:status', { status: 'away' }, E.UNAVAILABLE);
        await u1.fails('presence:room:join', { room: 'rd-other' }, E.UNAVAILABLE);
        await u2.fails('presence:room:leave', { room: 'rd-room' }, E.UNAVAILABLE);
        await anon.fails('presence:identify', { userId: 'rd-3' }, E.UNAVAILABLE);

        // The heartbeat goes on without Redis: two more pings each (the daemon sends the next one
        // only after the previous pong) outlast ping_interval + ping_timeout.
        await waitUntil(() => [obs, u1, u2, anon].every((c, k) => c.pings >= pingsAtDown[k] + 2), {
            ms: 10 * (PING.ping_interval + PING.ping_timeout),
            what: 'two pings to every client while Redis is down',
        });
        for (const c of [obs, u1, u2, anon]) {
            assert.ok(c.connected && c.disconnects.length === 0, `${c.label} stayed connected (${c.disconnects})`);
        }
        await u2.fails('presence:query', { userIds: ['rd-1'] }, E.UNAVAILABLE);

        env.redis = await startRedis({ port });
        // The outage lasted long enough for the reconnect backoff to grow (it may reach 5 s).
        await waitUntil(() => allOnline(obs, ['rd-1', 'rd-2']), { ms: 30000, every: 100, what: 'rd-1 and rd-2 online once Redis is back' });
        assert.deepEqual(await obs.roomQuery('rd-room'), { onlineCount: 1, ids: ['rd-1'] });
        await u1.ok('presence:status', { status: 'away' });
        await obs.rec.waitFor('presence:update', { userId: 'rd-1', status: 'away' });
        await anon.ok('presence:identify', { userId: 'rd-3' });
        await obs.rec.waitFor('presence:online', { userId: 'rd-3' });
        await env.fence(A, [obs]);
        // The new redis-server started empty: a new generation, announced by a reset, in which
        // the users who never left come online once; nobody goes offline.
        const since = obs.rec.events.slice(mark);
        const at = since.findIndex((e) => e.event === 'presence:resync' && e.data?.reset === true);
        assert.ok(at >= 0, `a reset after Redis came back empty; ${obs.rec.describe()}`);
        const transitions = (list) => list.filter((e) => e.event === 'presence:offline' || e.event === 'presence:online').map((e) => `${e.event} ${e.data.userId}`);
        assert.deepEqual(transitions(since.slice(0, at)), [], 'no online/offline event before the reset');
        assert.deepEqual(transitions(since.slice(at + 1)).sort(), ['presence:online rd-1', 'presence:online rd-2', 'presence:online rd-3'], 'each user online once in the new generation, no offline');
    });
});
