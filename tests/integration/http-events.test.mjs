// GET /v1/events against both stores: the live stream of presence events in order, the resume
// from Last-Event-ID (header or ?lastEventId=) that replays exactly what was missed, a reset for
// an id that is no longer retained, and invisible users kept out of an open (keyless) stream.
// Then a reader that falls more than 1 MB behind is dropped (and counted) while another gets
// every event, and an idle stream gets its ": ping" comment.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startDaemon } from './lib/daemon.mjs';
import { startRedis } from './lib/redis.mjs';
import { ClientPool } from './lib/client.mjs';
import net from 'node:net';
import { SseStream, waitMetric, metric } from './lib/http.mjs';
import { fence, waitSockets } from './lib/fence.mjs';

const types = (evs) => evs.map((e) => `${e.event}:${e.data.userId}${e.data.room ? '@' + e.data.room : ''}`);

/** Compares two event ids as the store orders them ("7" < "12"; "1-5" < "2-0"). */
const cmpId = (x, y) => {
    const [xm, xs = 0n] = x.split('-').map(BigInt);
    const [ym, ys = 0n] = y.split('-').map(BigInt);
    return xm === ym ? (xs < ys ? -1 : xs > ys ? 1 : 0) : xm < ym ? -1 : 1;
};

/** A timestamp from this run: ms since the epoch, within the last minute. */
const assertAbout = (v) => assert.ok(Number.isInteger(v) && v > Date.now() - 60000 && v <= Date.now() + 5000, `timestamp ${v}`);

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
            const s = await open().opened();
            assert.equal(s.status, 200);
            assert.equal(s.contentType, 'text/event-stream');
            const c = await pool.connect(d.url, '/', { auth: { userId: 'sse-a', metadata: { k: 1 } } });
            const sid = c.id; // undefined once closed
            await c.emitWithAck('presence:room:join', { room: 'r1' });
            await c.emitWithAck('presence:status', { status: 'away' });
            await c.emitWithAck('presence:room:leave', { room: 'r1' });
            c.close();
            await s.until((e) => e.some((x) => x.event === 'user.offline'), 5000, 'offline');
            await fence(d.url, [s]);
            const evs = s.events;
            assert.deepEqual(types(evs), ['user.online:sse-a', 'room.join:sse-a@r1', 'user.update:sse-a', 'room.leave:sse-a@r1', 'user.offline:sse-a']);
            const [on, , up, , off] = evs;
            assert.equal(typeof sid, 'string');
            assert.deepEqual({ ...on.data, at: 0 }, { id: on.id, type: 'user.online', userId: 'sse-a', socketId: sid, status: 'online', metadata: { k: 1 }, at: 0 });
            assertAbout(on.data.at);
            assert.deepEqual({ ...up.data, at: 0 }, { id: up.id, type: 'user.update', userId: 'sse-a', status: 'away', prevStatus: 'online', metadata: { k: 1 }, at: 0 });
            assert.deepEqual({ ...off.data, at: 0, lastSeen: 0 }, { id: off.id, type: 'user.offline', userId: 'sse-a', socketId: sid, lastSeen: 0, at: 0 });
            assertAbout(off.data.lastSeen);
            for (const e of evs) assert.equal(e.id, e.data.id);
            // Stream ids grow with the events.
            const ids = evs.map((e) => e.id);
            assert.deepEqual([...ids].sort(cmpId), ids, 'ids in stream order');
        });

        it('resumes from Last-Event-ID with exactly the events missed', async () => {
            const s1 = await open().opened();
            const a = await pool.connect(d.url, '/', { auth: { userId: 'res-1' } });
            const first = await s1.until((e) => e.some((x) => x.data.userId === 'res-1'), 5000, 'res-1 online');
            const lastId = first.at(-1).id;
            s1.close();
            // Missed while disconnected (decided before the resume: the store has them):
            await a.emitWithAck('presence:room:join', { room: 'res-room' });
            const b = await pool.connect(d.url, '/', { auth: { userId: 'res-2' } });
            await waitSockets(d.url, 'res-2', 1);
            const s2 = open({ lastEventId: lastId });
            await s2.ready;
            await s2.until((e) => e.some((x) => x.data.userId === 'res-2'), 5000, 'replay');
            // And live after the replay, without duplicates:
            b.close();
            await s2.until((e) => e.some((x) => x.event === 'user.offline' && x.data.userId === 'res-2'), 5000, 'live offline');
            // The query form works too.
            const s3 = open({ query: `?lastEventId=${encodeURIComponent(lastId)}` });
            await s3.ready;
            await fence(d.url, [s2, s3]);
            const want = ['room.join:res-1@res-room', 'user.online:res-2', 'user.offline:res-2'];
            assert.deepEqual(types(s2.events), want, 'replay then live, each event once');
            assert.deepEqual(types(s3.events), want, '?lastEventId= resumes the same way');
            assert.deepEqual(s3.events.map((e) => e.id), s2.events.map((e) => e.id), 'the same ids');
            // An id older than anything kept says reset, then goes on live.
            const gone = store === 'memory' ? '999999999' : '1-0';
            const s4 = open({ lastEventId: gone });
            await s4.ready;
            await s4.until((e) => e.some((x) => x.event === 'reset'), 5000, 'reset');
            a.close();
            await fence(d.url, [s4]);
            assert.deepEqual(types(s4.events), ['reset:undefined', 'room.leave:res-1@res-room', 'user.offline:res-1'], 'reset, then live events only');
        });

        it('an open stream hides invisible users', async () => {
            const s = await open().opened();
            const g = await pool.connect(d.url, '/', { auth: { userId: 'sse-ghost' } });
            await g.emitWithAck('presence:status', { status: 'invisible' });
            await g.emitWithAck('presence:status', { status: 'online' });
            g.close();
            await s.until((e) => e.filter((x) => x.data.userId === 'sse-ghost').length >= 4, 5000, 'ghost');
            await fence(d.url, [s]);
            // Turning invisible reads as offline, visible again as online.
            assert.deepEqual(types(s.events), [
                'user.online:sse-ghost', 'user.offline:sse-ghost', 'user.online:sse-ghost', 'user.offline:sse-ghost',
            ]);
        });
    });
}

describe('event stream: slow readers and keep-alive (store=memory)', () => {
    let d, pool;
    const streams = [];
    before(async () => {
        // Large metadata makes large events; the rate limit is not what this checks.
        d = await startDaemon({ set: { max_metadata_bytes: 262144, rate_limit: 100000, rate_burst: 100000 } });
        pool = new ClientPool();
    });
    after(async () => {
        streams.forEach((s) => s.close());
        pool.closeAll();
        await d?.stop();
    });

    test('a reader that falls more than 1 MB behind is dropped and counted; the others get every event', { timeout: 60000 }, () =>
        d.wrap(async () => {
            assert.equal(await metric(d.url, 'presenced_event_streams'), 0);
            const fast = new SseStream(d.url);
            streams.push(fast);
            await fast.opened();
            assert.equal(await metric(d.url, 'presenced_event_streams'), 1);
            // The slow reader sends its request and never reads.
            const slow = net.connect({ host: d.host, port: d.port });
            slow.on('error', () => {});
            let slowEnded = false;
            slow.on('end', () => (slowEnded = true));
            await new Promise((r) => slow.once('connect', r));
            slow.pause();
            slow.write('GET /v1/events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n');
            // presenced_event_streams counts exactly the open streams: these two.
            await waitMetric(d.url, 'presenced_event_streams', 2);
            const dropped = () => metric(d.url, 'presenced_slow_consumers_dropped_total{kind="sse"}');
            assert.equal(await dropped(), 0);

            // Events of ~256 KB each until the daemon drops the slow reader: what the kernel
            // buffers first is not up to the daemon, the 1 MB beyond it is.
            const c = await pool.connect(d.url, '/', { auth: { userId: 'big' } });
            const blob = 'x'.repeat(250000);
            let sent = 0;
            while ((await dropped()) === 0) {
                assert.ok(sent < 200, `still not dropped after ${sent} events of 250 KB`);
                const ack = await c.emitWithAck('presence:status', { status: sent % 2 ? 'away' : 'busy', metadata: { blob, n: sent } });
                assert.equal(ack.ok, true, JSON.stringify(ack));
                sent++;
            }
            assert.equal(await dropped(), 1, 'dropped once, counted once');
            await waitMetric(d.url, 'presenced_event_streams', 1);
            // Its connection is closed: once read, it ends.
            slow.resume();
            slow.on('data', () => {});
            const deadline = Date.now() + 15000;
            while (!slowEnded) {
                assert.ok(Date.now() < deadline, 'the slow reader was not disconnected');
                await new Promise((r) => setTimeout(r, 20));
            }
            // The fast reader got everything, each once.
            await fence(d.url, [fast]);
            const ups = fast.events.filter((e) => e.event === 'user.update');
            assert.deepEqual(ups.map((e) => e.data.metadata.n), Array.from({ length: sent }, (_, i) => i));
            c.close();
        })());

    test('an idle stream gets a ": ping" comment (every 15 s)', { timeout: 40000 }, () =>
        d.wrap(async () => {
            const s = new SseStream(d.url);
            streams.push(s);
            await s.opened();
            await s.until((_, st) => st.comments.includes('ping'), 20000, 'a ": ping" comment');
            // Comments only: the earlier tests' users may still be going offline on this daemon,
            // so events on the stream are not a failure here; the comments are.
            assert.deepEqual(s.comments.slice(0, 2), ['presenced event stream', 'ping']);
        })());
});
