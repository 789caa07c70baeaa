// GET /v1/events against both stores: the live stream of presence events in order, the resume
// from Last-Event-ID (header or ?lastEventId=) that replays exactly what was missed, a reset for
// an id that is no longer retained, and invisible users kept out of an open (keyless) stream.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startDaemon } from './lib/daemon.mjs';
import { startRedis } from './lib/redis.mjs';
import { ClientPool, sleep } from './lib/client.mjs';
import { SseStream, api } from './lib/http.mjs';

const types = (evs) => evs.map((e) => `${e.event}:${e.data.userId}${e.data.room ? '@' + e.data.room : ''}`);

for (const store of ['memory', 'redis']) {
    describe(`event stream (store=${store})`, () => {
        let redis, d, pool;
        const streams = [];
        const open = (opts) => {
            const s = new SseStream(d.url, opts);
            streams.push(s);
            return s;
        };
        before(async () => {
            const set = {};
            if (store === 'redis') {
                redis = await startRedis();
                Object.assign(set, { store: 'redis', redis: redis.url });
            }
            d = await startDaemon({ set });
            pool = new ClientPool();
        });
        after(async () => {
            streams.forEach((s) => s.close());
            pool.closeAll();
            await d?.stop();
            await redis?.stop();
        });
        const it = (name, fn) => test(name, { timeout: 20000 }, () => d.wrap(fn)());

        it('streams online, room join/leave, update and offline in order', async () => {
            const s = open();
            const res = await s.ready;
            assert.equal(res.status, 200);
            assert.equal(s.contentType, 'text/event-stream');
            await sleep(100);
            const c = await pool.connect(d.url, '/', { auth: { userId: 'sse-a', metadata: { k: 1 } } });
            await c.emitWithAck('presence:room:join', { room: 'r1' });
            await c.emitWithAck('presence:status', { status: 'away' });
            await c.emitWithAck('presence:room:leave', { room: 'r1' });
            c.close();
            const evs = await s.until((e) => e.some((x) => x.event === 'user.offline'), 5000, 'offline');
            assert.deepEqual(types(evs), ['user.online:sse-a', 'room.join:sse-a@r1', 'user.update:sse-a', 'room.leave:sse-a@r1', 'user.offline:sse-a']);
            const [on, , up, , off] = evs;
            assert.deepEqual({ ...on.data, at: 0 }, { id: on.id, type: 'user.online', userId: 'sse-a', socketId: c.id ?? on.data.socketId, status: 'online', metadata: { k: 1 }, at: 0 });
            assert.equal(up.data.status, 'away');
            assert.equal(up.data.prevStatus, 'online');
            assert.equal(typeof off.data.lastSeen, 'number');
            for (const e of evs) assert.equal(e.id, e.data.id);
        });

        it('resumes from Last-Event-ID with exactly the events missed', async () => {
            const s1 = open();
            await s1.ready;
            await sleep(100);
            const a = await pool.connect(d.url, '/', { auth: { userId: 'res-1' } });
            const first = await s1.until((e) => e.some((x) => x.data.userId === 'res-1'), 5000, 'res-1 online');
            const lastId = first.at(-1).id;
            s1.close();
            // Missed while disconnected:
            await a.emitWithAck('presence:room:join', { room: 'res-room' });
            const b = await pool.connect(d.url, '/', { auth: { userId: 'res-2' } });
            await sleep(300);
            const s2 = open({ lastEventId: lastId });
            await s2.ready;
            await s2.until((e) => e.some((x) => x.data.userId === 'res-2'), 5000, 'replay');
            // And live after the replay, without duplicates:
            b.close();
            const evs = await s2.until((e) => e.some((x) => x.event === 'user.offline' && x.data.userId === 'res-2'), 5000, 'live offline');
            assert.deepEqual(types(evs), ['room.join:res-1@res-room', 'user.online:res-2', 'user.offline:res-2']);
            const ids = evs.map((e) => e.id);
            assert.equal(new Set(ids).size, ids.length);
            // The query form works too, and an id older than anything kept says reset.
            const s3 = open({ query: `?lastEventId=${encodeURIComponent(lastId)}` });
            await s3.ready;
            await s3.until((e) => e.length >= 3, 5000, 'query resume');
            assert.deepEqual(types(s3.events.slice(0, 3)), types(evs));
            const gone = store === 'memory' ? '999999999' : '1-0';
            const s4 = open({ lastEventId: gone });
            await s4.ready;
            await s4.until((e) => e.some((x) => x.event === 'reset'), 5000, 'reset');
            a.close();
        });

        it('an open stream hides invisible users', async () => {
            const s = open();
            await s.ready;
            await sleep(100);
            const g = await pool.connect(d.url, '/', { auth: { userId: 'sse-ghost' } });
            await g.emitWithAck('presence:status', { status: 'invisible' });
            await g.emitWithAck('presence:status', { status: 'online' });
            g.close();
            const evs = await s.until((e) => e.filter((x) => x.data.userId === 'sse-ghost').length >= 4, 5000, 'ghost');
            // Turning invisible reads as offline, visible again as online.
            assert.deepEqual(types(evs.filter((x) => x.data.userId === 'sse-ghost')), [
                'user.online:sse-ghost', 'user.offline:sse-ghost', 'user.online:sse-ghost', 'user.offline:sse-ghost',
            ]);
            const m = await api(d.url, '/metrics');
            assert.match(m.text, /presenced_event_streams \d+/);
        });
    });
}
