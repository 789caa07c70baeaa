// Webhooks: signed JSON batches to a small receiver, retries while it answers 500, a batch given up
// after webhook_retry_for (dropped, counted, logged, never sent again), the 10 s answer timeout,
// and, with two instances on one Redis, every event delivered by exactly one of them,
// user.online/offline once per user cluster-wide, and the pending batch of a killed instance
// delivered by the other.
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { startDaemon } from './lib/daemon.mjs';
import { startRedis } from './lib/redis.mjs';
import { ClientPool, sleep } from './lib/client.mjs';
import { startReceiver, sign, waitMetric, metric } from './lib/http.mjs';
import { fence, waitSockets, FENCE_PREFIX } from './lib/fence.mjs';

const SECRET = 'hook-secret';

async function until(fn, ms, what) {
    const end = Date.now() + ms;
    for (;;) {
        const v = await fn();
        if (v) return v;
        if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
        await sleep(50);
    }
}

/**
 * Delivery covers the events from the first delivery read on: with Redis, once the first
 * deliverer created the consumer group (docs/http-api.md, Webhooks); with the memory store, once
 * the webhook first read the store (a moment after start). Waits for that: the group in Redis,
 * or, with the memory store, a probe user (a fence id, kept out of accepted()) whose online the
 * receiver gets, a new probe each second until one arrives.
 */
async function deliveryStarted(url, rx, redis, { prefix = 'presenced:', ms = 10000 } = {}) {
    if (redis) {
        await until(async () => (await redis.command('XINFO', 'GROUPS', `${prefix}events`)) === '*1', ms, 'the webhooks consumer group');
        return;
    }
    const pool = new ClientPool();
    try {
        const deadline = Date.now() + ms;
        for (let n = 0; Date.now() < deadline; n++) {
            const id = `${FENCE_PREFIX}probe-${process.pid}-${n}`;
            await pool.connect(url, '/', { auth: { userId: id } });
            const end = Date.now() + 1000;
            while (Date.now() < end) {
                if (rx.fenceEvents().some((e) => e.userId === id)) return;
                await sleep(20);
            }
        }
        throw new Error(`the webhook delivered no probe within ${ms} ms`);
    } finally {
        pool.closeAll();
    }
}

const key = (e) => `${e.type}:${e.userId}${e.room ? '@' + e.room : ''}`;

describe('webhooks', () => {
    const cleanup = [];
    after(async () => {
        for (const f of cleanup.reverse()) await f();
    });

    for (const store of ['memory', 'redis']) {
        test(`batches are signed, ordered and retried on 500 (store=${store})`, { timeout: 30000 }, async () => {
            let failing = 2;
            const rx = await startReceiver({ secret: SECRET, respond: () => (failing-- > 0 ? 500 : 200) });
            cleanup.push(() => rx.close());
            const set = { webhook_url: rx.url, webhook_secret: SECRET, webhook_retry_for: 60 };
            let redis;
            if (store === 'redis') {
                redis = await startRedis();
                cleanup.push(() => redis.stop());
                Object.assign(set, { store: 'redis', redis: redis.url });
            }
            const d = await startDaemon({ set });
            cleanup.push(() => d.stop());
            const pool = new ClientPool();
            cleanup.push(() => pool.closeAll());
            await d.wrap(async () => {
                await deliveryStarted(d.url, rx, redis);
                const socks = [];
                for (let i = 0; i < 5; i++) socks.push(await pool.connect(d.url, '/', { auth: { userId: `wh-${i}` } }));
                await socks[0].emitWithAck('presence:room:join', { room: 'wh-room' });
                socks[0].close();
                await until(() => rx.accepted().some((e) => e.type === 'user.offline'), 15000, 'the offline accepted');
                // Batches go out in stream order: once the fence is accepted, so is all before it.
                await fence(d.url, [rx]);
                // The first two attempts failed and carried the same body as the accepted one.
                assert.equal(rx.requests[0].status, 500);
                assert.equal(rx.requests[1].status, 500);
                assert.equal(rx.requests[2].body, rx.requests[0].body, 'a retry resends the same batch');
                for (const r of rx.requests) {
                    assert.equal(r.valid, true, 'signature');
                    assert.equal(r.signature, sign(SECRET, r.body));
                    assert.ok(r.events.length >= 1 && r.events.length <= 100);
                }
                assert.ok(rx.requests.some((r) => r.events.length > 1), 'events are batched');
                let evs = rx.accepted();
                if (store === 'redis') {
                    // A fresh Redis's stream begins with the reset of its first generation.
                    assert.deepEqual(evs[0], { id: evs[0].id, type: 'reset', reason: 'store_empty', at: evs[0].at });
                    evs = evs.slice(1);
                }
                assert.deepEqual(evs.map(key), [
                    'user.online:wh-0', 'user.online:wh-1', 'user.online:wh-2', 'user.online:wh-3', 'user.online:wh-4',
                    'room.join:wh-0@wh-room', 'room.leave:wh-0@wh-room', 'user.offline:wh-0',
                ]);
                for (const e of evs) {
                    assert.equal(typeof e.id, 'string');
                    assert.equal(typeof e.at, 'number');
                }
                // The counters agree with what the receiver saw: 2 failures, every accepted batch
                // and every event in them (probes and fences included; the fence's own offline may
                // still be on its way, so the receiver's side is read again at each poll).
                const ok = () => rx.requests.filter((r) => r.status === 200);
                await waitMetric(d.url, 'presenced_webhook_deliveries_total', () => ok().length);
                await waitMetric(d.url, 'presenced_webhook_events_total', () => ok().reduce((n, r) => n + r.events.length, 0));
                await waitMetric(d.url, 'presenced_webhook_failures_total{kind="http"}', 2);
            })();
        });
    }

    test('a batch refused for longer than webhook_retry_for is dropped, counted and logged; delivery goes on', { timeout: 30000 }, async () => {
        // The receiver refuses every batch while `refuse` is set (the doomed user's online).
        let refuse = false;
        const doomed = (r) => r.events?.some((e) => e.userId === 'doomed');
        const rx = await startReceiver({ respond: () => (refuse ? 500 : 200) });
        cleanup.push(() => rx.close());
        const d = await startDaemon({ set: { webhook_url: rx.url, webhook_retry_for: 1 } });
        cleanup.push(() => d.stop());
        const pool = new ClientPool();
        cleanup.push(() => pool.closeAll());
        await d.wrap(async () => {
            await deliveryStarted(d.url, rx);
            refuse = true;
            const u = await pool.connect(d.url, '/', { auth: { userId: 'doomed' } });
            // Retried (same body), then given up once webhook_retry_for (1 s) has passed.
            await waitMetric(d.url, 'presenced_webhook_dropped_total', 1, { ms: 15000 });
            refuse = false;
            const tries = rx.requests.filter(doomed);
            assert.ok(tries.length >= 2, `retried before giving up: ${tries.length} attempts`);
            assert.ok(tries.every((r) => r.status === 500 && r.body === tries[0].body), 'every attempt the same refused batch');
            assert.ok(tries.at(-1).at - tries[0].at >= 1000 - 50, `given up only after webhook_retry_for: ${tries.at(-1).at - tries[0].at} ms`);
            assert.match(d.stderrText, /level=error msg="webhooks: giving up on a batch"/);
            // The next events are delivered; the dropped ones never are.
            u.close();
            await until(() => rx.accepted().some((e) => e.type === 'user.offline' && e.userId === 'doomed'), 10000, 'the next batch');
            await fence(d.url, [rx]);
            assert.deepEqual(rx.accepted().map(key), ['user.offline:doomed'], 'the dropped online is not sent again');
            assert.equal(await metric(d.url, 'presenced_webhook_dropped_total'), 1);
        })();
    });

    test('a receiver that does not answer within 10 s gets the same batch again', { timeout: 40000 }, async () => {
        // The first request is held without an answer; the others are accepted.
        const rx = await startReceiver({ respond: (n) => (n === 1 ? null : 200) });
        cleanup.push(() => rx.close());
        const d = await startDaemon({ set: { webhook_url: rx.url } });
        cleanup.push(() => d.stop());
        const pool = new ClientPool();
        cleanup.push(() => pool.closeAll());
        await d.wrap(async () => {
            // The first batch (a probe's online) is held; delivery goes on once it is retried.
            await deliveryStarted(d.url, rx, null, { ms: 30000 });
            const [held, again] = rx.requests;
            assert.equal(held.status, null, 'the first attempt got no answer');
            assert.equal(again.body, held.body, 'the same batch again');
            assert.ok(again.at - held.at >= 10000 - 100, `not before the 10 s answer timeout: ${again.at - held.at} ms`);
            assert.equal(await metric(d.url, 'presenced_webhook_failures_total{kind="network"}'), 1, 'one failure: the timeout');
            assert.equal(await metric(d.url, 'presenced_webhook_dropped_total'), 0);
        })();
    });

    test('two instances: each event once, online/offline once per user, failover', { timeout: 60000 }, async () => {
        let failing = false;
        const rx = await startReceiver({ secret: SECRET, respond: () => (failing ? 500 : 200) });
        cleanup.push(() => rx.close());
        const redis = await startRedis();
        cleanup.push(() => redis.stop());
        const set = { store: 'redis', redis: redis.url, webhook_url: rx.url, webhook_secret: SECRET, instance_lease: 3 };
        const a = await startDaemon({ set });
        const b = await startDaemon({ set });
        let killed = null;
        cleanup.push(() => a.stop({ expectClean: killed !== a }), () => b.stop({ expectClean: killed !== b }));
        const pool = new ClientPool();
        cleanup.push(() => pool.closeAll());
        await deliveryStarted(a.url, rx, redis);
        // One user on both instances, others on one each.
        const u1a = await pool.connect(a.url, '/', { auth: { userId: 'both' } });
        const u1b = await pool.connect(b.url, '/', { auth: { userId: 'both' } });
        const onA = await pool.connect(a.url, '/', { auth: { userId: 'only-a' } });
        const onB = await pool.connect(b.url, '/', { auth: { userId: 'only-b' } });
        await waitSockets(a.url, 'both', 2);
        u1a.close();
        await waitSockets(a.url, 'both', 1);
        u1b.close();
        onA.close();
        onB.close();
        await until(() => ['both', 'only-a', 'only-b'].every((u) => rx.accepted().some((e) => e.type === 'user.offline' && e.userId === u)), 10000, 'three offlines');
        await fence(b.url, [rx]);
        const evs = rx.accepted();
        const ids = evs.map((e) => e.id);
        assert.equal(new Set(ids).size, ids.length, `each event once: ${ids}`);
        for (const u of ['both', 'only-a', 'only-b']) {
            assert.equal(evs.filter((e) => e.userId === u && e.type === 'user.online').length, 1, `${u} online once`);
            assert.equal(evs.filter((e) => e.userId === u && e.type === 'user.offline').length, 1, `${u} offline once`);
        }
        // Stream order: ids increase.
        const sorted = [...ids].sort((x, y) => {
            const [xm, xs] = x.split('-').map(BigInt);
            const [ym, ys] = y.split('-').map(BigInt);
            return xm === ym ? Number(xs - ys) : Number(xm - ym);
        });
        assert.deepEqual(ids, sorted);

        // Failover: the receiver fails, the delivering instance dies with a batch pending, and the
        // other one delivers it once the lock expires.
        failing = true;
        const before = rx.accepted().length;
        const x = await pool.connect(b.url, '/', { auth: { userId: 'failover' } });
        await until(() => rx.requests.some((r) => r.status === 500 && r.events?.some((e) => e.userId === 'failover')), 10000, 'a failed attempt');
        // Kill the instance that holds the delivery lock (its id is in the lock and in its log).
        const holderId = await redis.command('GET', 'presenced:whlock');
        assert.ok([a.instanceId, b.instanceId].includes(holderId), `the lock (${holderId}) names an instance`);
        const holder = a.instanceId === holderId ? a : b;
        killed = holder;
        await holder.kill('SIGKILL');
        failing = false;
        const t0 = Date.now();
        await until(() => rx.accepted().slice(before).some((e) => e.userId === 'failover' && e.type === 'user.online'), 30000, 'failover delivery');
        assert.ok(Date.now() - t0 >= 5000, 'delivered by the survivor after the lock expired');
        x.close();
    });
});
