// Liveness guarantees of the Redis store across instances (docs/presence-model.md, "Liveness"
// and "socket_close"; docs/redis-schema.md): a dead instance of more than 2000 sockets is reaped
// in slices, each socket's offline once; an instance reaped while it was alive announces its
// users again when it comes back; a grace deadline fires once whichever instance ticks, also
// when the instance that started it is gone; reaps, server-side disconnects and shutdown are not
// graceful; shutdown releases the lease at once; an offline user's record lives for
// last_seen_retention and is then unknown (HTTP 404).
//
// Counts are taken after a fence (lib/fence.mjs), and only once the event that could repeat is
// over: the dead instance gone from Redis, the reaped-sockets counters added up.
import { test, describe, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { PresenceEnv, waitUntil, waitSockets, assertOnline, assertOffline } from './lib/presence.mjs';
import { openEngineWs } from './lib/client.mjs';
import { SseStream, api, metric } from './lib/http.mjs';
import { presenceKey } from './lib/redis.mjs';

const LEASE_S = 3; // the smallest instance_lease: reaps come a few seconds after a death
const GRACE_S = 2;

describe('liveness across instances (store=redis)', () => {
    const env = new PresenceEnv('redis');
    const streams = [];
    before(() => env.setup());
    afterEach(async () => {
        for (const s of streams.splice(0)) s.close();
        await env.cleanup();
    });
    after(() => env.teardown());
    const it = (name, fn, timeout = 60000) => test(name, { timeout }, env.wrap(fn));

    /** An open, registered event stream of daemon d. */
    async function sse(d) {
        const s = new SseStream(d.url);
        streams.push(s);
        return s.opened();
    }

    /** Resolves once instance `d` is out of the instance set and its socket hash is gone. */
    async function reaped(d, ms = 30000) {
        const id = d.instanceId;
        assert.ok(id, 'the instance id is in the log');
        await waitUntil(async () => (await env.redis.command('ZSCORE', `${env.prefix}instances`, id)) === '$-1', {
            ms,
            what: `instance ${id} out of the instance set`,
        });
        assert.equal(await env.redis.command('EXISTS', presenceKey(env.prefix, 'i', id)), ':0', `the socket hash of ${id} is gone`);
    }

    const count = (s, type, userId) => s.events.filter((e) => e.event === type && e.data.userId === userId).length;

    it('a dead instance with 2100 sockets (more than one 2000-socket slice) is reaped: each offline once', async (t) => {
        const N = 2100;
        // broadcast = scoped: the 2100 sockets hear nothing of each other (no 2100² fan-out);
        // the event streams see every event.
        const set = { instance_lease: LEASE_S, broadcast: 'scoped', max_connections_per_ip: 5000, max_sessions_per_ip: 5000, max_connections: 5000 };
        const A = await env.daemon(set);
        const B = await env.daemon(set);
        const C = await env.daemon(set); // a second possible reaper: slices may go to either
        const sB = await sse(B);
        const ids = Array.from({ length: N }, (_, i) => `rp-${String(i).padStart(4, '0')}`);
        const t0 = Date.now();
        for (let i = 0; i < N; i += 100) {
            await Promise.all(
                ids.slice(i, i + 100).map(async (userId) => {
                    const { raw } = await openEngineWs(env.pool, A.wsUrl);
                    raw.send(`40${JSON.stringify({ userId })}`);
                    const reply = await raw.next();
                    assert.match(String(reply), /^40\{"sid":/, `CONNECT of ${userId}`);
                }),
            );
        }
        await waitUntil(async () => (await metric(A.url, 'presenced_sockets_local')) === N, { ms: 30000, what: `${N} sockets on A` });
        await sB.until((e) => e.filter((x) => x.event === 'user.online').length === N, 30000, `${N} online events`);
        t.diagnostic(`${N} sockets opened on A in ${Date.now() - t0} ms`);

        const t1 = Date.now();
        await env.killDaemon(A, 'SIGKILL');
        await reaped(A, 60000);
        t.diagnostic(`A reaped ${Date.now() - t1} ms after the SIGKILL`);
        const reapedB = await metric(B.url, 'presenced_reaped_sockets_total');
        const reapedC = await metric(C.url, 'presenced_reaped_sockets_total');
        t.diagnostic(`B reaped ${reapedB} sockets, C ${reapedC}`);
        assert.equal(reapedB + reapedC, N, 'every socket of A reaped once, by B or C');
        await env.fence(B, [sB]);
        const wrong = ids.filter((id) => count(sB, 'user.offline', id) !== 1 || count(sB, 'user.online', id) !== 1);
        assert.deepEqual(wrong.slice(0, 10), [], `${wrong.length} users without exactly one online and one offline`);
        assert.equal(sB.events.length, 2 * N, 'nothing but those events');
        // The store agrees: nobody left online.
        const q = await api(B.url, '/v1/users/bulk', { method: 'POST', body: { userIds: ids.slice(0, 1000) } });
        assert.equal(q.status, 200);
        assert.deepEqual(Object.values(q.json.users).filter(Boolean), [], 'no reaped user reads online');
        assert.deepEqual((await api(B.url, '/v1/stats')).json.cluster, { usersOnline: 0, sockets: 0, rooms: 0, instances: 2 });
    }, 120000);

    it('an instance reaped while alive (frozen past its lease) announces its users again: online and room:join, once', async () => {
        const set = { instance_lease: LEASE_S };
        const A = await env.daemon(set);
        const B = await env.daemon(set);
        // Room events reach the room's sockets: the observer is in both rooms.
        const obs = await env.client(B, { userId: 'ra-obs', label: 'observer on B' });
        await obs.ok('presence:room:join', { room: 'ra-r1' });
        await obs.ok('presence:room:join', { room: 'ra-r2' });
        const u = await env.client(A, { userId: 'ra-u', metadata: { desk: 1 } });
        await u.ok('presence:room:join', { room: 'ra-r1' });
        await u.ok('presence:room:join', { room: 'ra-r2' });
        await u.ok('presence:status', { status: 'busy' });
        await obs.rec.waitFor('presence:update', { userId: 'ra-u', status: 'busy' });

        // Frozen past its lease, A is reaped: observers see the user leave.
        A.signal('SIGSTOP');
        try {
            await obs.rec.waitFor('presence:offline', { userId: 'ra-u' }, 30000);
            await reaped(A);
        } finally {
            A.signal('SIGCONT');
        }
        // A finds its lease lost at its next tick and puts its live sockets back: the user (whose
        // record says offline) comes back, with status, metadata and rooms as they were.
        const back = await obs.rec.waitCount('presence:online', { userId: 'ra-u' }, 2, 30000);
        assert.deepEqual(back.data, { userId: 'ra-u', socketId: u.id, status: 'busy', metadata: { desk: 1 } });
        await obs.rec.waitCount('presence:room:join', { userId: 'ra-u', room: 'ra-r2' }, 2, 10000);
        await env.fence(A, [obs]);
        const about = obs.rec.about('ra-u').map((e) => `${e.event.slice(9)}${e.data.room ? ' ' + e.data.room : ''}`);
        assert.deepEqual(about, [
            'online', 'room:join ra-r1', 'room:join ra-r2', 'update',
            'room:leave ra-r1', 'room:leave ra-r2', 'offline', // the reap
            'online', 'room:join ra-r1', 'room:join ra-r2', // back, once each
        ]);
        assert.equal(A.stderrText.match(/msg="instance lease was lost/g)?.length, 1, 'the lost lease noticed once');
        assert.ok(u.connected && u.disconnects.length === 0, 'the user stayed connected throughout');
        assertOnline(await obs.queryOne('ra-u'), 'busy');
        assert.deepEqual(await obs.roomQuery('ra-r1'), { onlineCount: 2, ids: ['ra-obs', 'ra-u'] });
        // And presence goes on as usual.
        u.disconnect();
        await obs.rec.waitCount('presence:offline', { userId: 'ra-u' }, 2);
    });

    it('a grace deadline fires once across three instances, also when the instance that started it died', async (t) => {
        const set = { instance_lease: LEASE_S, offline_grace: GRACE_S };
        const A = await env.daemon(set);
        const B = await env.daemon(set);
        const C = await env.daemon(set);
        const obsB = await env.client(B, { label: 'observer on B' });
        const obsC = await env.client(C, { label: 'observer on C' });

        // A user closes gracefully on A, comes back on B within the grace: no offline anywhere.
        const u1 = await env.client(A, { userId: 'gx-back' });
        await obsC.rec.waitFor('presence:online', { userId: 'gx-back' });
        u1.disconnect();
        await waitSockets(B.url, 'gx-back', 0);
        await env.client(B, { userId: 'gx-back' });
        // A graceful fence closes after that: its offline comes after the deadline u1 set.
        await env.fence(C, [obsB, obsC], { graceful: true });
        for (const o of [obsB, obsC]) {
            o.rec.assertNone('presence:offline', { userId: 'gx-back' }, 'back on B within the grace');
            o.rec.assertCount('presence:online', { userId: 'gx-back' }, 1);
        }

        // A user closes gracefully on A, and A dies inside the grace: B or C fires the deadline.
        const u2 = await env.client(A, { userId: 'gx-gone' });
        await obsB.rec.waitFor('presence:online', { userId: 'gx-gone' });
        const t0 = Date.now();
        u2.disconnect();
        await waitSockets(B.url, 'gx-gone', 0);
        assertOnline(await obsB.queryOne('gx-gone'), 'online', 'inside the grace');
        await env.killDaemon(A, 'SIGKILL');
        const [offB, offC] = await Promise.all([
            obsB.rec.waitFor('presence:offline', { userId: 'gx-gone' }, 30000),
            obsC.rec.waitFor('presence:offline', { userId: 'gx-gone' }, 30000),
        ]);
        t.diagnostic(`offline ${offB.at - t0} ms after the close (grace ${GRACE_S} s)`);
        assert.ok(offB.at - t0 >= GRACE_S * 1000 - 200, `not before the grace: ${offB.at - t0} ms`);
        assert.deepEqual(offB.data, offC.data, 'the same event on B and C');
        // A second firing would come on a later tick: fence past one more grace.
        await env.fence(B, [obsB, obsC], { graceful: true });
        for (const o of [obsB, obsC]) o.rec.assertCount('presence:offline', { userId: 'gx-gone' }, 1);
        assertOffline(await obsC.queryOne('gx-gone'));
    });

    it('a reap is not graceful: with offline_grace = 60 s the users of a dead instance go offline at the reap', async () => {
        const set = { instance_lease: LEASE_S, offline_grace: 60 };
        const A = await env.daemon(set);
        const B = await env.daemon(set);
        const obs = await env.client(B, { userId: 'ng-obs', label: 'observer on B' });
        await obs.ok('presence:room:join', { room: 'ng-room' });
        const u = await env.client(A, { userId: 'ng-reaped' });
        await u.ok('presence:room:join', { room: 'ng-room' });
        await obs.rec.waitFor('presence:room:join', { userId: 'ng-reaped' });
        const sid = u.id; // undefined once the client sees the connection go
        await env.killDaemon(A, 'SIGKILL');
        // Far sooner than the grace: the test's own deadline is half of it.
        const off = await obs.rec.waitFor('presence:offline', { userId: 'ng-reaped' }, 30000);
        assert.equal(off.data.socketId, sid);
        const r = await api(B.url, '/v1/users/ng-reaped');
        assert.equal(r.json.online, false, `offline at once, not inside a grace: ${r.text}`);
        await reaped(A);
        await env.fence(B, [obs]);
        obs.rec.assertCount('presence:offline', { userId: 'ng-reaped' }, 1);
        obs.rec.assertCount('presence:room:leave', { userId: 'ng-reaped', room: 'ng-room' }, 1);
    });

    it('shutdown (SIGTERM) releases the lease at once and closes its sockets without grace', async () => {
        // A long lease and grace: only the release can make A disappear at once, only a
        // non-graceful close can make its users offline at once.
        const set = { instance_lease: 60, offline_grace: 60 };
        const A = await env.daemon(set);
        const B = await env.daemon(set);
        const obs = await env.client(B, { userId: 'sd-obs', label: 'observer on B' });
        await obs.ok('presence:room:join', { room: 'sd-room' });
        const u = await env.client(A, { userId: 'sd-a' });
        await u.ok('presence:room:join', { room: 'sd-room' });
        const both = await env.client(A, { userId: 'sd-both' });
        await env.client(B, { userId: 'sd-both' });
        await obs.rec.waitFor('presence:room:join', { userId: 'sd-a' });
        await waitSockets(B.url, 'sd-both', 2);
        assert.equal((await api(B.url, '/v1/stats')).json.cluster.instances, 2);
        const idA = A.instanceId;
        const sid = u.id; // undefined once the client sees the connection go

        assert.deepEqual(await A.stop(), { code: 0, signal: null });
        // Released before the exit, not left to expire in 60 s.
        assert.equal(await env.redis.command('ZSCORE', `${env.prefix}instances`, idA), '$-1', 'the lease released');
        assert.equal(await env.redis.command('EXISTS', presenceKey(env.prefix, 'i', idA)), ':0', "A's socket hash removed");
        assert.equal((await api(B.url, '/v1/stats')).json.cluster.instances, 1);
        const off = await obs.rec.waitFor('presence:offline', { userId: 'sd-a' }, 10000);
        assert.equal(off.data.socketId, sid);
        await env.fence(B, [obs]);
        obs.rec.assertCount('presence:offline', { userId: 'sd-a' }, 1);
        obs.rec.assertCount('presence:room:leave', { userId: 'sd-a', room: 'sd-room' }, 1);
        obs.rec.assertNone('presence:offline', { userId: 'sd-both' }, 'connected on B too');
        assertOffline(await obs.queryOne('sd-a'));
        assertOnline(await obs.queryOne('sd-both'));
        assert.ok(both.disconnects.length > 0, 'the client on A was disconnected');
    });

    it('last_seen_retention: the offline record expires after it; then the user is unknown (404, lastSeen null)', async () => {
        const RETENTION_S = 60; // the smallest allowed
        const d = await env.daemon({ last_seen_retention: RETENTION_S });
        const obs = await env.client(d, { userId: 'ls-obs' });
        const u = await env.client(d, { userId: 'ls-u', metadata: { k: 1 } });
        await obs.rec.waitFor('presence:online', { userId: 'ls-u' });
        const key = presenceKey(env.prefix, 'u', 'ls-u');
        assert.equal(await env.redis.command('PTTL', key), ':-1', 'no expiry while online');
        u.disconnect();
        const off = await obs.rec.waitFor('presence:offline', { userId: 'ls-u' });
        const ttl = Number((await env.redis.command('PTTL', key)).slice(1));
        assert.ok(ttl > (RETENTION_S - 10) * 1000 && ttl <= RETENTION_S * 1000, `the record expires in last_seen_retention: PTTL ${ttl} ms`);
        // Kept until then:
        const kept = await api(d.url, '/v1/users/ls-u');
        assert.equal(kept.status, 200);
        assert.equal(kept.json.lastSeen, off.data.lastSeen);
        assert.deepEqual(kept.json.metadata, { k: 1 });
        assert.equal((await obs.queryOne('ls-u')).lastSeen, off.data.lastSeen);
        // The retention runs out (Redis expires the key: here, now, rather than in 60 s).
        assert.equal(await env.redis.command('PEXPIRE', key, 1), ':1');
        await waitUntil(async () => (await env.redis.command('EXISTS', key)) === ':0', { what: 'the record expired' });
        const gone = await api(d.url, '/v1/users/ls-u');
        assert.equal(gone.status, 404);
        assert.deepEqual(gone.json, { error: { code: 'not_found', message: 'unknown user' } });
        assertOffline(await obs.queryOne('ls-u'), { neverSeen: true });
        assert.deepEqual((await api(d.url, '/v1/users?ids=ls-u')).json, { users: { 'ls-u': false } });
    });

    it('a server-side disconnect is not graceful, across instances (offline_grace = 60 s)', async () => {
        const set = { instance_lease: LEASE_S, offline_grace: 60 };
        const A = await env.daemon(set);
        const B = await env.daemon(set);
        const obs = await env.client(B, { label: 'observer on B' });
        const onA = await env.client(A, { userId: 'kick' });
        const onB = await env.client(B, { userId: 'kick' });
        const sids = [onA.id, onB.id];
        await waitSockets(B.url, 'kick', 2);
        const r = await api(B.url, '/v1/users/kick/disconnect', { method: 'POST' });
        assert.equal(r.status, 202);
        const off = await obs.rec.waitFor('presence:offline', { userId: 'kick' }, 30000);
        assert.ok(sids.includes(off.data.socketId), `the offline names one of its sockets: ${JSON.stringify(off.data)}`);
        assert.equal((await api(B.url, '/v1/users/kick')).json.online, false, 'offline at once, not inside a grace');
        // The kick and the offline event travel on different connections: either may come first.
        for (const c of [onA, onB]) {
            await waitUntil(() => c.disconnects.length > 0 || !c.connected, { ms: 10000, what: `${c.label} disconnected` });
        }
        await env.fence(B, [obs]);
        obs.rec.assertCount('presence:offline', { userId: 'kick' }, 1);
        obs.rec.assertCount('presence:online', { userId: 'kick' }, 1);
    });
});

describe('server-side disconnect (store=memory)', () => {
    const env = new PresenceEnv('memory');
    before(() => env.setup());
    afterEach(() => env.cleanup());
    after(() => env.teardown());

    test('with offline_grace = 60 s the kicked user goes offline at once', { timeout: 30000 }, env.wrap(async () => {
        const d = await env.daemon({ offline_grace: 60 });
        const obs = await env.client(d, { userId: 'mk-obs' });
        const u = await env.client(d, { userId: 'mk-u' });
        const sid = u.id;
        await obs.rec.waitFor('presence:online', { userId: 'mk-u' });
        assert.equal((await api(d.url, '/v1/users/mk-u/disconnect', { method: 'POST' })).status, 202);
        const off = await obs.rec.waitFor('presence:offline', { userId: 'mk-u' }, 15000);
        assert.equal(off.data.socketId, sid);
        assertOffline(await obs.queryOne('mk-u'));
        await env.fence(d, [obs]);
        obs.rec.assertCount('presence:offline', { userId: 'mk-u' }, 1);
    }));
});
