// Presence as applications use it, against both stores (memory, and Redis with one daemon):
// support-ticket routing, document viewers, multi-tab, ghosts, metadata, status and invisibility,
// spoofing, identification, ids that look like store keys, offline grace, scoped broadcast.
// Every test starts its own daemon (and, with Redis, its own key prefix on the file's redis-server).
import { test, describe, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import {
    PresenceEnv,
    STORES,
    E,
    sleep,
    waitFor,
    waitSockets,
    waitUntil,
    assertOnline,
    assertOffline,
    assertTime,
} from './lib/presence.mjs';
import { waitMetric } from './lib/http.mjs';

for (const store of STORES) {
    describe(`presence scenarios (store=${store})`, () => {
        const env = new PresenceEnv(store);
        before(() => env.setup());
        afterEach(() => env.cleanup());
        after(() => env.teardown());
        const it = (name, fn, timeout = 30000) => test(name, { timeout }, env.wrap(fn));

        it('support-ticket routing: one presence:query for 1000 agents answers every id in one ack', async () => {
            const d = await env.daemon({ max_bulk_ids: 1000 });
            const router = await env.client(d, { userId: 'st-router' });
            const ids = Array.from({ length: 1000 }, (_, i) => `st-agent-${String(i).padStart(4, '0')}`);
            const onlineIdx = [3, 500, 997];
            const leftIdx = 42; // was online, went offline
            const agents = await env.clients(d, onlineIdx.map((i) => ({ userId: ids[i] })));
            assert.equal(agents.length, 3);
            const left = await env.client(d, { userId: ids[leftIdx] });
            await router.rec.waitFor('presence:online', { userId: ids[leftIdx] });
            left.disconnect();
            const off = await router.rec.waitFor('presence:offline', { userId: ids[leftIdx] });
            for (const i of onlineIdx) await router.rec.waitFor('presence:online', { userId: ids[i] });

            const users = await router.query(ids);
            for (let i = 0; i < ids.length; i++) {
                const what = `${ids[i]}: ${JSON.stringify(users[ids[i]])}`;
                if (onlineIdx.includes(i)) assertOnline(users[ids[i]], 'online', what);
                else if (i === leftIdx) {
                    assertOffline(users[ids[i]], {}, what);
                    assert.equal(users[ids[i]].lastSeen, off.data.lastSeen, 'lastSeen kept after offline');
                } else assertOffline(users[ids[i]], { neverSeen: true }, what);
            }

            // An anonymous socket (a routing backend) may query too, and sees the same.
            const anon = await env.client(d, {});
            const again = await anon.query(ids);
            const brief = (u) => Object.fromEntries(Object.entries(u).map(([k, v]) => [k, [v.online, v.status]]));
            assert.deepEqual(brief(again), brief(users));

            // max_bulk_ids = 1000: one more id is refused; malformed requests too.
            await router.fails('presence:query', { userIds: [...ids, 'st-agent-extra'] }, E.INVALID);
            await router.fails('presence:query', { userIds: 'st-agent-0003' }, E.INVALID);
            await router.fails('presence:query', {}, E.INVALID);
            await router.fails('presence:query', { userIds: [42] }, E.INVALID);
            await router.fails('presence:query', { userIds: ['x'.repeat(129)] }, E.INVALID);
        });

        it('document viewers: room:join/leave reach the room sockets on first in / last out; room:query counts', async () => {
            const d = await env.daemon();
            const room = 'doc:42';
            const ann = await env.client(d, { userId: 'dv-ann' });
            const outsider = await env.client(d, { userId: 'dv-out' });
            await outsider.ok('presence:room:join', { room: 'doc:7' });
            const joined = await ann.ok('presence:room:join', { room });
            assert.equal(joined.room, room, `room:join ack names the room: ${JSON.stringify(joined)}`);
            assert.deepEqual(await ann.roomQuery(room), { onlineCount: 1, ids: ['dv-ann'] });

            // Bob opens the document in two tabs (one long-polling): one room:join.
            const bob1 = await env.client(d, { userId: 'dv-bob' });
            const bob2 = await env.client(d, { userId: 'dv-bob', transports: ['polling'] });
            await bob1.ok('presence:room:join', { room });
            const j = await ann.rec.waitFor('presence:room:join', { userId: 'dv-bob', room });
            assert.deepEqual(j.data, { userId: 'dv-bob', room });
            await bob2.ok('presence:room:join', { room });
            await bob1.ok('presence:room:join', { room }); // again on the same socket: nothing changes

            // Cat joins naming herself (allowed); every socket in the room hears it, both of Bob's tabs.
            const cat = await env.client(d, { userId: 'dv-cat' });
            await cat.ok('presence:room:join', { room, userId: 'dv-cat' });
            await ann.rec.waitFor('presence:room:join', { userId: 'dv-cat', room });
            await bob1.rec.waitFor('presence:room:join', { userId: 'dv-cat', room });
            await bob2.rec.waitFor('presence:room:join', { userId: 'dv-cat', room });
            assert.deepEqual(await outsider.roomQuery(room), { onlineCount: 3, ids: ['dv-ann', 'dv-bob', 'dv-cat'] });

            await env.fence(d, [ann, outsider]);
            ann.rec.assertCount('presence:room:join', { userId: 'dv-bob', room }, 1, "Bob's second tab");
            outsider.rec.assertNone('presence:room:join', { room }, 'not in the room');

            // Bob closes the document in one tab: still a viewer.
            await bob1.ok('presence:room:leave', { room });
            await env.fence(d, [ann]);
            ann.rec.assertNone('presence:room:leave', { userId: 'dv-bob' }, 'one tab of Bob still in the room');
            assert.deepEqual(await ann.roomQuery(room), { onlineCount: 3, ids: ['dv-ann', 'dv-bob', 'dv-cat'] });
            // ...and in the other: room:leave.
            const leftAck = await bob2.ok('presence:room:leave', { room });
            assert.equal(leftAck.room, room, `room:leave ack names the room: ${JSON.stringify(leftAck)}`);
            const l = await ann.rec.waitFor('presence:room:leave', { userId: 'dv-bob', room });
            assert.deepEqual(l.data, { userId: 'dv-bob', room });
            assert.deepEqual(await ann.roomQuery(room), { onlineCount: 2, ids: ['dv-ann', 'dv-cat'] });
            await bob1.ok('presence:room:leave', { room }); // not in it: nothing changes

            // Cat closes her tab: a disconnect leaves every room.
            cat.disconnect();
            const cl = await ann.rec.waitFor('presence:room:leave', { userId: 'dv-cat', room });
            assert.deepEqual(cl.data, { userId: 'dv-cat', room });
            assert.deepEqual(await ann.roomQuery(room), { onlineCount: 1, ids: ['dv-ann'] });
            assert.deepEqual(await ann.roomQuery('doc:7'), { onlineCount: 1, ids: ['dv-out'] });
            assert.deepEqual(await ann.roomQuery('doc:never'), { onlineCount: 0, ids: [] });

            await env.fence(d, [ann, outsider]);
            ann.rec.assertCount('presence:room:leave', { userId: 'dv-bob', room }, 1);
            ann.rec.assertCount('presence:room:leave', { userId: 'dv-cat', room }, 1);
            outsider.rec.assertNone('presence:room:join', { room });
            outsider.rec.assertNone('presence:room:leave', { room });

            // Rooms need an identified socket and a valid name.
            const anon = await env.client(d, {});
            await anon.fails('presence:room:join', { room }, E.NOT_IDENTIFIED);
            await anon.fails('presence:room:leave', { room }, E.NOT_IDENTIFIED);
            await ann.fails('presence:room:join', { room: '' }, E.INVALID);
            await ann.fails('presence:room:join', {}, E.INVALID);
            await ann.fails('presence:room:join', { room: 'r'.repeat(129) }, E.INVALID);
            await ann.fails('presence:room:query', {}, E.INVALID);
        });

        it('multi-tab: online while any of 3 tabs lives, exactly one offline after the last', async () => {
            const d = await env.daemon();
            const obs = await env.client(d, { userId: 'mt-obs' });
            const tab1 = await env.client(d, { userId: 'mt-u' });
            const on = await obs.rec.waitFor('presence:online', { userId: 'mt-u' });
            assert.equal(on.data.socketId, tab1.id);
            assert.equal(on.data.status, 'online');
            assert.ok(on.data.metadata === undefined || on.data.metadata === null, `no metadata: ${JSON.stringify(on.data)}`);
            const tab2 = await env.client(d, { userId: 'mt-u', transports: ['polling'] });
            const tab3 = await env.client(d, { userId: 'mt-u', transports: ['polling', 'websocket'], upgrade: true });
            await env.fence(d, [obs]);
            obs.rec.assertCount('presence:online', { userId: 'mt-u' }, 1, 'three tabs');
            assertOnline(await obs.queryOne('mt-u'));

            tab1.disconnect();
            tab3.disconnect();
            await waitSockets(d.url, 'mt-u', 1);
            await env.fence(d, [obs]);
            obs.rec.assertNone('presence:offline', { userId: 'mt-u' }, 'one tab still open');
            assertOnline(await obs.queryOne('mt-u'));

            const lastId = tab2.id;
            const t0 = Date.now();
            tab2.disconnect();
            const off = await obs.rec.waitFor('presence:offline', { userId: 'mt-u' });
            assert.equal(off.data.socketId, lastId, 'offline names the last socket');
            assertTime(off.data.lastSeen, 'offline lastSeen');
            assert.ok(off.data.lastSeen >= t0 - 1000, `lastSeen ${off.data.lastSeen} is about when the last tab closed (${t0})`);
            await env.fence(d, [obs]);
            obs.rec.assertCount('presence:offline', { userId: 'mt-u' }, 1);
            obs.rec.assertCount('presence:online', { userId: 'mt-u' }, 1);
            const q = await obs.queryOne('mt-u');
            assertOffline(q);
            assert.equal(q.lastSeen, off.data.lastSeen, 'query lastSeen equals the offline event lastSeen');
        });

        it('ghosts: a frozen client (SIGSTOP) and a killed one (SIGKILL) go offline by the Engine.IO heartbeat', async (t) => {
            const PI = 1000;
            const PT = 1000;
            const d = await env.daemon({ ping_interval: PI, ping_timeout: PT });
            const obs = await env.client(d, { userId: 'gh-obs' });
            const frozen = await env.child(d, 'gh-frozen', { transport: 'websocket' });
            const killed = await env.child(d, 'gh-killed', { transport: 'polling' });
            await obs.rec.waitFor('presence:online', { userId: 'gh-frozen', socketId: frozen.socketId });
            await obs.rec.waitFor('presence:online', { userId: 'gh-killed', socketId: killed.socketId });
            // Healthy clients answer the pings: nobody goes offline. Two pings received mean the
            // daemon accepted a pong (it sends the next ping only then).
            await waitUntil(() => frozen.pings >= 2 && killed.pings >= 2, { ms: 4 * (PI + PT), what: 'two pings to each child' });
            await env.fence(d, [obs]);
            obs.rec.assertNone('presence:offline', { userId: 'gh-frozen' }, 'before SIGSTOP');
            obs.rec.assertNone('presence:offline', { userId: 'gh-killed' }, 'before SIGKILL');

            const t0 = Date.now();
            frozen.proc.kill('SIGSTOP'); // TCP stays open, pongs stop
            killed.proc.kill('SIGKILL');
            const [offF, offK] = await Promise.all([
                obs.rec.waitFor('presence:offline', { userId: 'gh-frozen' }, 10 * (PI + PT)),
                obs.rec.waitFor('presence:offline', { userId: 'gh-killed' }, 10 * (PI + PT)),
            ]);
            // How long it took is a figure, not a verdict (ping_interval + ping_timeout = 2 s).
            t.diagnostic(`offline after SIGSTOP ${offF.at - t0} ms, after SIGKILL ${offK.at - t0} ms`);
            assert.equal(offF.data.socketId, frozen.socketId);
            assert.equal(offK.data.socketId, killed.socketId);
            await env.fence(d, [obs]);
            obs.rec.assertCount('presence:offline', { userId: 'gh-frozen' }, 1);
            obs.rec.assertCount('presence:offline', { userId: 'gh-killed' }, 1);
            const users = await obs.query(['gh-frozen', 'gh-killed']);
            assertOffline(users['gh-frozen']);
            assertOffline(users['gh-killed']);
            assert.ok(obs.connected, 'the observer stayed connected');
        });

        it('metadata: from auth in presence:online, from presence:status in presence:update; limits', async () => {
            const d = await env.daemon({ max_metadata_bytes: 256 });
            const obs = await env.client(d, { userId: 'md-obs' });
            const meta = { name: 'Ann Agent', team: 'billing', langs: ['fr', 'de'], level: 3, vip: false, desk: null };
            const ann = await env.client(d, { userId: 'md-ann', metadata: meta });
            const on = await obs.rec.waitFor('presence:online', { userId: 'md-ann' });
            assert.deepEqual(on.data, { userId: 'md-ann', socketId: ann.id, status: 'online', metadata: meta });
            const q = await obs.queryOne('md-ann');
            assertOnline(q);

            // status and metadata
            const meta2 = { ...meta, team: 'support' };
            await ann.ok('presence:status', { status: 'busy', metadata: meta2 });
            const u1 = await obs.rec.waitCount('presence:update', { userId: 'md-ann' }, 1);
            assert.deepEqual(u1.data, { userId: 'md-ann', status: 'busy', prevStatus: 'online', metadata: meta2 });
            // metadata only
            const meta3 = { name: 'Ann', ticket: 'T-1001' };
            await ann.ok('presence:status', { status: 'busy', metadata: meta3 });
            const u2 = await obs.rec.waitCount('presence:update', { userId: 'md-ann' }, 2);
            assert.deepEqual(u2.data, { userId: 'md-ann', status: 'busy', prevStatus: 'busy', metadata: meta3 });
            // status only: the metadata stays
            await ann.ok('presence:status', { status: 'away' });
            const u3 = await obs.rec.waitCount('presence:update', { userId: 'md-ann' }, 3);
            assert.deepEqual(u3.data, { userId: 'md-ann', status: 'away', prevStatus: 'busy', metadata: meta3 });
            // nothing changes: no update
            await ann.ok('presence:status', { status: 'away', metadata: meta3 });
            await ann.ok('presence:status', { status: 'away' });

            // too big (> 256 bytes) or not an object: refused, nothing changes
            await ann.fails('presence:status', { status: 'dnd', metadata: { blob: 'x'.repeat(300) } }, E.INVALID);
            await ann.fails('presence:status', { status: 'dnd', metadata: ['not', 'an', 'object'] }, E.INVALID);
            await ann.fails('presence:status', { status: 'dnd', metadata: 'text' }, E.INVALID);
            await ann.fails('presence:status', { status: 'dnd', metadata: 7 }, E.INVALID);

            // metadata given with a late presence:identify
            const late = await env.client(d, {});
            await late.ok('presence:identify', { userId: 'md-late', metadata: { role: 'viewer' } });
            const on2 = await obs.rec.waitFor('presence:online', { userId: 'md-late' });
            assert.deepEqual(on2.data, { userId: 'md-late', socketId: late.id, status: 'online', metadata: { role: 'viewer' } });
            // invalid metadata in auth is refused at connect
            for (const bad of [{ blob: 'z'.repeat(300) }, ['a'], 'text', 5]) {
                const s = env.pool.socket(d.url, '/', { transports: ['websocket'], auth: { userId: 'md-bad', metadata: bad } });
                const [err] = await waitFor(s, 'connect_error', { failOn: 'connect' });
                assert.equal(err.message, 'invalid metadata', `metadata ${JSON.stringify(bad).slice(0, 40)}`);
                s.close();
            }
            // a refused identify leaves the socket anonymous
            const late2 = await env.client(d, {});
            await late2.fails('presence:identify', { userId: 'md-late2', metadata: { blob: 'y'.repeat(300) } }, E.INVALID);
            await late2.fails('presence:identify', { userId: 'md-late2', metadata: [1] }, E.INVALID);
            await late2.fails('presence:room:join', { room: 'md-room' }, E.NOT_IDENTIFIED);

            await env.fence(d, [obs]);
            obs.rec.assertCount('presence:update', { userId: 'md-ann' }, 3, 'no-op and refused status calls');
            obs.rec.assertNone(null, { userId: 'md-late2' }, 'refused identify');
            obs.rec.assertNone(null, { userId: 'md-bad' }, 'refused connect');
            assertOnline(await obs.queryOne('md-ann'), 'away');
            assertOffline(await obs.queryOne('md-late2'), { neverSeen: true });
            // a valid identify still works afterwards
            await late2.ok('presence:identify', { userId: 'md-late2' });
            await obs.rec.waitFor('presence:online', { userId: 'md-late2', socketId: late2.id });
        });

        it('status changes, and invisible: offline to others, still sees others', async () => {
            const d = await env.daemon();
            const obs = await env.client(d, { userId: 'iv-obs' });
            const a1 = await env.client(d, { userId: 'iv-ann' });
            const a2 = await env.client(d, { userId: 'iv-ann' }); // a second tab
            await obs.rec.waitFor('presence:online', { userId: 'iv-ann' });
            const statuses = ['away', 'busy', 'dnd', 'online'];
            for (const [i, status] of statuses.entries()) {
                await a1.ok('presence:status', { status });
                const u = await obs.rec.waitCount('presence:update', { userId: 'iv-ann' }, i + 1);
                assert.equal(u.data.userId, 'iv-ann');
                assert.equal(u.data.status, status, `update #${i + 1}: ${JSON.stringify(u.data)}`);
                assertOnline(await obs.queryOne('iv-ann'), status, `after ${status}`);
            }
            // One update per change, none twice (in either tab).
            await env.fence(d, [obs, a2]);
            assert.deepEqual(obs.rec.list('presence:update', { userId: 'iv-ann' }).map((e) => e.data.status), statuses);
            assert.deepEqual(a2.rec.list('presence:update', { userId: 'iv-ann' }).map((e) => e.data.status), statuses);
            // the user's other tab hears it too (broadcast = all)
            await a2.rec.waitFor('presence:update', { userId: 'iv-ann', status: 'dnd' });
            for (const bad of ['sleeping', 'offline', 'ONLINE', '', 1, null]) {
                await a1.fails('presence:status', { status: bad }, E.INVALID);
            }
            await a1.fails('presence:status', {}, E.INVALID);

            // invisible: others get presence:offline and query offline
            await a1.ok('presence:status', { status: 'invisible' });
            const off = await obs.rec.waitFor('presence:offline', { userId: 'iv-ann' });
            const seenAt = obs.rec.events.indexOf(off);
            assertOffline(await obs.queryOne('iv-ann'));
            const anon = await env.client(d, {});
            assertOffline(await anon.queryOne('iv-ann'));

            // ...while still seeing others
            const cat = await env.client(d, { userId: 'iv-cat' });
            await a1.rec.waitFor('presence:online', { userId: 'iv-cat', socketId: cat.id });
            assertOnline(await a1.queryOne('iv-cat'));
            await cat.ok('presence:status', { status: 'busy' });
            await a1.rec.waitFor('presence:update', { userId: 'iv-cat', status: 'busy' });

            // a new tab and a metadata change while invisible reveal nothing
            const a3 = await env.client(d, { userId: 'iv-ann' });
            await a3.ok('presence:status', { status: 'invisible', metadata: { note: 'hidden' } });
            await env.fence(d, [obs]);
            assert.deepEqual(
                obs.rec.events.slice(seenAt + 1).filter((e) => e.data?.userId === 'iv-ann'),
                [],
                'no event about an invisible user',
            );
            assertOffline(await obs.queryOne('iv-ann'));

            // visible again: presence:online with the new status
            await a1.ok('presence:status', { status: 'away' });
            const back = await obs.rec.waitCount('presence:online', { userId: 'iv-ann' }, 2);
            assert.equal(back.data.status, 'away');
            assertOnline(await obs.queryOne('iv-ann'), 'away');

            // invisible again, then every tab closes: no second offline for the others
            await a2.ok('presence:status', { status: 'invisible' });
            await obs.rec.waitCount('presence:offline', { userId: 'iv-ann' }, 2);
            a1.disconnect();
            a2.disconnect();
            a3.disconnect();
            // Invisible: the HTTP API shows no sockets; the daemon's own count says when all
            // three closes reached it (iv-obs and iv-cat are the identified sockets left).
            await waitMetric(d.url, 'presenced_sockets_local', 2);
            await env.fence(d, [obs]);
            obs.rec.assertCount('presence:offline', { userId: 'iv-ann' }, 2, 'tabs of an invisible user closing');
            obs.rec.assertCount('presence:online', { userId: 'iv-ann' }, 2);
            assertOffline(await obs.queryOne('iv-ann'));
            obs.rec.assertNone(null, (x) => x?.status === 'invisible', 'the word invisible never reaches others');
            cat.rec.assertNone(null, (x) => x?.status === 'invisible', 'the word invisible never reaches others');
        });

        it('spoofing: a socket identified as A cannot heartbeat, join rooms or set status for B', async () => {
            const d = await env.daemon();
            const obs = await env.client(d, { userId: 'sp-obs' });
            const alice = await env.client(d, { userId: 'sp-alice' });
            const bob = await env.client(d, { userId: 'sp-bob' });
            await bob.ok('presence:room:join', { room: 'sp-room' });
            await obs.ok('presence:room:join', { room: 'sp-room' });
            await obs.rec.waitFor('presence:online', { userId: 'sp-bob' });
            await obs.rec.waitFor('presence:online', { userId: 'sp-alice' });
            const bobBefore = await obs.queryOne('sp-bob');
            const mark = obs.rec.events.length;

            await alice.fails('presence:heartbeat', { userId: 'sp-bob' }, E.FORBIDDEN);
            await alice.fails('presence:room:join', { room: 'sp-room', userId: 'sp-bob' }, E.FORBIDDEN);
            await alice.fails('presence:room:join', { room: 'sp-other', userId: 'sp-bob' }, E.FORBIDDEN);
            await alice.fails('presence:room:leave', { room: 'sp-room', userId: 'sp-bob' }, E.FORBIDDEN);
            await alice.fails('presence:status', { status: 'away', userId: 'sp-bob' }, E.FORBIDDEN);
            await alice.fails('presence:status', { status: 'invisible', userId: 'sp-bob', metadata: { x: 1 } }, E.FORBIDDEN);
            await alice.fails('presence:heartbeat', { userId: 'sp-carol' }, E.FORBIDDEN); // never seen
            await alice.fails('presence:status', { status: 'busy', userId: 'sp-carol' }, E.FORBIDDEN);
            await alice.fails('presence:room:join', { room: 'sp-room', userId: 'sp-carol' }, E.FORBIDDEN);
            await alice.fails('presence:identify', { userId: 'sp-bob' }, E.ALREADY);

            await env.fence(d, [obs]);
            assert.deepEqual(
                obs.rec.events.slice(mark).map((e) => `${e.event} ${JSON.stringify(e.data)}`),
                [],
                'refused commands emit nothing (about B, C, or A)',
            );
            const bobAfter = await obs.queryOne('sp-bob');
            assertOnline(bobAfter, 'online', 'B unchanged');
            assert.equal(bobAfter.lastSeen, bobBefore.lastSeen, "a refused heartbeat does not touch B's lastSeen");
            assertOffline(await obs.queryOne('sp-carol'), { neverSeen: true });
            assert.deepEqual(await obs.roomQuery('sp-room'), { onlineCount: 2, ids: ['sp-bob', 'sp-obs'] });
            assert.deepEqual(await obs.roomQuery('sp-other'), { onlineCount: 0, ids: [] });

            // Acting as oneself works (userId omitted or equal).
            const aBefore = (await obs.queryOne('sp-alice')).lastSeen;
            await sleep(30);
            await alice.ok('presence:heartbeat', { userId: 'sp-alice' });
            const aMid = (await obs.queryOne('sp-alice')).lastSeen;
            assert.ok(aMid > aBefore, `heartbeat refreshed lastSeen (${aBefore} → ${aMid})`);
            await sleep(30);
            await alice.ok('presence:heartbeat', {});
            assert.ok((await obs.queryOne('sp-alice')).lastSeen > aMid, 'heartbeat without userId refreshed lastSeen');
            await alice.ok('presence:status', { status: 'busy', userId: 'sp-alice' });
            await obs.rec.waitFor('presence:update', { userId: 'sp-alice', status: 'busy' });
            await alice.ok('presence:room:join', { room: 'sp-room', userId: 'sp-alice' });
            await obs.rec.waitFor('presence:room:join', { userId: 'sp-alice', room: 'sp-room' });
            await alice.ok('presence:room:leave', { room: 'sp-room', userId: 'sp-alice' });
            await obs.rec.waitFor('presence:room:leave', { userId: 'sp-alice', room: 'sp-room' });

            // Anonymous sockets act for nobody.
            const anon = await env.client(d, {});
            await anon.fails('presence:heartbeat', {}, E.NOT_IDENTIFIED);
            await anon.fails('presence:status', { status: 'away' }, E.NOT_IDENTIFIED);
            await anon.fails('presence:room:join', { room: 'sp-room' }, E.NOT_IDENTIFIED);
            obs.rec.assertNone(null, { userId: 'sp-carol' });
            obs.rec.assertNone('presence:update', { userId: 'sp-bob' });
        });

        it('identification: invalid userIds get connect_error "invalid userId"; anonymous sockets identify later', async () => {
            const d = await env.daemon();
            const obs = await env.client(d, { userId: 'id-obs' });
            const bads = ['', 'x'.repeat(129), 'é'.repeat(64) + 'x', 42, true, ['id-a'], { id: 'id-a' }, 'id-\u0001', 'id-\u007f', 'id-\nx', 'id-\u0085'];
            for (const bad of bads) {
                const s = env.pool.socket(d.url, '/', { transports: ['websocket'], auth: { userId: bad } });
                const [err] = await waitFor(s, 'connect_error', { failOn: 'connect' });
                assert.equal(err.message, 'invalid userId', `userId ${JSON.stringify(bad)}`);
                s.close();
            }
            // 128 bytes (64 × 2-byte é) is fine, and so are spaces and punctuation.
            const max = await env.client(d, { userId: 'é'.repeat(64) });
            await obs.rec.waitFor('presence:online', { userId: 'é'.repeat(64), socketId: max.id });
            const odd = await env.client(d, { userId: 'id odd {user}:#1' });
            await obs.rec.waitFor('presence:online', { userId: 'id odd {user}:#1', socketId: odd.id });

            // anonymous: may query and subscribe
            const anon = await env.client(d, {});
            assertOnline(await anon.queryOne('id-obs'));
            await anon.ok('presence:subscribe', { userIds: ['id-obs'] });
            await anon.ok('presence:unsubscribe', { userIds: ['id-obs'] });
            await anon.fails('presence:identify', { userId: '' }, E.INVALID);
            await anon.fails('presence:identify', { userId: 'x'.repeat(129) }, E.INVALID);
            await anon.fails('presence:identify', { userId: 5 }, E.INVALID);
            await anon.fails('presence:identify', {}, E.INVALID);
            await anon.ok('presence:identify', { userId: 'id-late' });
            const on = await obs.rec.waitFor('presence:online', { userId: 'id-late' });
            assert.equal(on.data.socketId, anon.id);
            await anon.fails('presence:identify', { userId: 'id-late' }, E.ALREADY);
            await anon.fails('presence:identify', { userId: 'id-other' }, E.ALREADY);
            await obs.fails('presence:identify', { userId: 'id-obs' }, E.ALREADY);
            await anon.ok('presence:room:join', { room: 'id-room' });
            assert.deepEqual(await obs.roomQuery('id-room'), { onlineCount: 1, ids: ['id-late'] });
            anon.disconnect();
            await obs.rec.waitFor('presence:offline', { userId: 'id-late' });
            await env.fence(d, [obs]);
            obs.rec.assertNone(null, { userId: 'id-other' });
            obs.rec.assertCount('presence:online', { userId: 'id-late' }, 1);
            for (const bad of bads) if (typeof bad === 'string') obs.rec.assertNone(null, { userId: bad });
            assert.deepEqual(await obs.roomQuery('id-room'), { onlineCount: 0, ids: [] });
        });

        it('user ids that look like store keys (u1, u1:sockets, ...) do not interfere', async () => {
            const d = await env.daemon();
            const obs = await env.client(d, { userId: 'ki-obs' });
            const ids = ['u1', 'u1:sockets', 'u1:rooms', 'u1:meta', '{u1}', 'u1 sockets', 'u1:sockets:u1', 'u1:'];
            const cs = {};
            for (const id of ids) cs[id] = await env.client(d, { userId: id });
            for (const id of ids) await obs.rec.waitFor('presence:online', { userId: id, socketId: cs[id].id });
            let users = await obs.query(ids);
            for (const id of ids) assertOnline(users[id], 'online', id);

            // rooms named like users
            await cs['u1'].ok('presence:room:join', { room: 'u1:sockets' });
            await cs['u1:sockets'].ok('presence:room:join', { room: 'u1' });
            assert.deepEqual(await obs.roomQuery('u1:sockets'), { onlineCount: 1, ids: ['u1'] });
            assert.deepEqual(await obs.roomQuery('u1'), { onlineCount: 1, ids: ['u1:sockets'] });

            await cs['u1:sockets'].ok('presence:status', { status: 'busy' });
            await obs.rec.waitFor('presence:update', { userId: 'u1:sockets', status: 'busy' });
            users = await obs.query(ids);
            for (const id of ids) assertOnline(users[id], id === 'u1:sockets' ? 'busy' : 'online', id);

            cs['u1:sockets'].disconnect();
            await obs.rec.waitFor('presence:offline', { userId: 'u1:sockets' });
            await env.fence(d, [obs]);
            for (const id of ids) if (id !== 'u1:sockets') obs.rec.assertNone('presence:offline', { userId: id }, `after u1:sockets left`);
            users = await obs.query(ids);
            for (const id of ids) {
                if (id === 'u1:sockets') assertOffline(users[id], {}, id);
                else assertOnline(users[id], 'online', id);
            }
            assert.deepEqual(await obs.roomQuery('u1'), { onlineCount: 0, ids: [] });
            assert.deepEqual(await obs.roomQuery('u1:sockets'), { onlineCount: 1, ids: ['u1'] });

            cs['u1'].disconnect();
            await obs.rec.waitFor('presence:offline', { userId: 'u1' });
            await env.fence(d, [obs]);
            users = await obs.query(ids);
            for (const id of ids) {
                if (id === 'u1' || id === 'u1:sockets') assertOffline(users[id], {}, id);
                else assertOnline(users[id], 'online', id);
            }
            for (const id of ids) obs.rec.assertCount('presence:online', { userId: id }, 1, id);
            obs.rec.assertCount('presence:offline', { userId: 'u1' }, 1);
            obs.rec.assertCount('presence:offline', { userId: 'u1:sockets' }, 1);
            assert.deepEqual(await obs.roomQuery('u1:sockets'), { onlineCount: 0, ids: [] });
        });

        it('offline_grace = 2 s: a reload within the grace makes no offline/online pair; staying away makes one offline', async (t) => {
            const GRACE = 2000;
            // Grace deadlines fire on the store's tick (Redis: every instance_lease / 3).
            const d = await env.daemon({ offline_grace: GRACE / 1000, instance_lease: 3 });
            const obs = await env.client(d, { userId: 'og-obs' });
            const tab1 = await env.client(d, { userId: 'og-u' });
            await obs.rec.waitFor('presence:online', { userId: 'og-u' });

            tab1.disconnect(); // page reload: the close reaches the store, then the new tab opens
            await waitSockets(d.url, 'og-u', 0);
            const tab2 = await env.client(d, { userId: 'og-u' });
            // A graceful fence closes after tab2 opened: its own offline fires on a tick after
            // its deadline, so after the deadline tab1's close set (had it not been cancelled).
            await env.fence(d, [obs], { graceful: true });
            obs.rec.assertNone('presence:offline', { userId: 'og-u' }, 'back within the grace');
            obs.rec.assertCount('presence:online', { userId: 'og-u' }, 1, 'back within the grace');
            assertOnline(await obs.queryOne('og-u'));

            const lastId = tab2.id;
            const t0 = Date.now();
            tab2.disconnect(); // gone for good
            await waitSockets(d.url, 'og-u', 0);
            // Inside the grace the user still reads as online (docs/presence-model.md, Liveness).
            const during = obs.rec.count('presence:offline', { userId: 'og-u' }) === 0 ? await obs.queryOne('og-u') : null;
            const off = await obs.rec.waitFor('presence:offline', { userId: 'og-u' }, GRACE + 15000);
            const dt = off.at - t0;
            t.diagnostic(`offline ${dt} ms after the last tab closed (grace ${GRACE} ms)`);
            if (during) assertOnline(during, 'online', 'inside the grace');
            assert.ok(dt >= GRACE - 200, `offline ${dt} ms after the last tab closed, before the ${GRACE} ms grace`);
            assert.equal(off.data.socketId, lastId);
            assertTime(off.data.lastSeen, 'offline lastSeen');
            assert.ok(off.data.lastSeen < t0 + 1000, `lastSeen ${off.data.lastSeen} is when the tab closed (${t0}), not the end of the grace`);
            // A deadline that fired twice would do so on a later tick: fence past one more grace.
            await env.fence(d, [obs], { graceful: true });
            obs.rec.assertCount('presence:offline', { userId: 'og-u' }, 1);
            obs.rec.assertCount('presence:online', { userId: 'og-u' }, 1);
            assertOffline(await obs.queryOne('og-u'));

            // and back later: a new online
            await env.client(d, { userId: 'og-u' });
            await obs.rec.waitCount('presence:online', { userId: 'og-u' }, 2);
        });

        it('broadcast=scoped: a room-mate and a subscriber get each event once (also when both), a stranger nothing', async () => {
            const d = await env.daemon({ broadcast: 'scoped' });
            const mate = await env.client(d, { userId: 'bs-mate' });
            await mate.ok('presence:room:join', { room: 'bs-room' });
            const sub = await env.client(d, {}); // anonymous subscriber
            await sub.ok('presence:subscribe', { userIds: ['bs-star', 'bs-nobody'] });
            // In the room and subscribed: still each event once (docs/protocol.md, "each socket once").
            const both = await env.client(d, { userId: 'bs-both' });
            await both.ok('presence:room:join', { room: 'bs-room' });
            await both.ok('presence:subscribe', { userIds: ['bs-star'] });
            const stranger = await env.client(d, { userId: 'bs-stranger' });
            await stranger.ok('presence:room:join', { room: 'bs-elsewhere' });

            const star = await env.client(d, { userId: 'bs-star', metadata: { team: 'a' } });
            const on = await sub.rec.waitFor('presence:online', { userId: 'bs-star' });
            assert.deepEqual(on.data, { userId: 'bs-star', socketId: star.id, status: 'online', metadata: { team: 'a' } });
            await star.ok('presence:room:join', { room: 'bs-room' });
            await mate.rec.waitFor('presence:room:join', { userId: 'bs-star', room: 'bs-room' });
            await star.ok('presence:status', { status: 'busy' });
            await mate.rec.waitFor('presence:update', { userId: 'bs-star', status: 'busy' });
            await sub.rec.waitFor('presence:update', { userId: 'bs-star', status: 'busy' });

            // unsubscribed: the subscriber (in no room) hears nothing more
            await sub.ok('presence:unsubscribe', { userIds: ['bs-star'] });
            await star.ok('presence:status', { status: 'away' });
            await mate.rec.waitFor('presence:update', { userId: 'bs-star', status: 'away' });
            await env.fence(d, [sub, mate]);
            sub.rec.assertNone('presence:update', { userId: 'bs-star', status: 'away' }, 'after unsubscribe');
            await sub.ok('presence:subscribe', { userIds: ['bs-star'] });

            const starId = star.id;
            star.disconnect();
            const offM = await mate.rec.waitFor('presence:offline', { userId: 'bs-star' });
            assert.equal(offM.data.socketId, starId);
            await mate.rec.waitFor('presence:room:leave', { userId: 'bs-star', room: 'bs-room' });
            await sub.rec.waitFor('presence:offline', { userId: 'bs-star' });
            await env.fence(d, [stranger, mate, sub, both]);
            // Exactly what each one is entitled to, each once.
            const seen = (c) => c.rec.about('bs-star').map((e) => `${e.event.slice(9)} ${e.data.status ?? e.data.room ?? ''}`.trim());
            // bs-star came online in no room: its online reached subscribers only.
            const roomView = ['room:join bs-room', 'update busy', 'update away', 'room:leave bs-room', 'offline'];
            assert.deepEqual(seen(mate), roomView, 'the room-mate');
            assert.deepEqual(seen(both), ['online online', ...roomView], 'in the room and subscribed: each event once');
            assert.deepEqual(seen(sub), ['online online', 'update busy', 'offline'], 'the subscriber (unsubscribed for "away")');
            stranger.rec.assertNone(null, { userId: 'bs-star' }, 'a stranger (no shared room, no subscription)');
            mate.rec.assertNone(null, { userId: 'bs-stranger' }, 'the stranger is a stranger to the mate too');
            sub.rec.assertNone(null, { userId: 'bs-stranger' });
            // scoping routes events; queries still answer everyone
            assertOffline(await stranger.queryOne('bs-star'));
            assertOnline(await stranger.queryOne('bs-mate'));
        });
    });
}
