// Webhooks miss nothing of a fresh cluster's first moments, nor after Redis loses its data: users
// connecting in the first milliseconds after /readyz on an empty Redis (one and two instances, a
// few repetitions each), and Redis restarted empty while users stay connected and then leave
// (a reset, then each user online again and offline, once each). Every user's user.online and
// user.offline reach a real receiver exactly once by event id, in order per user.
// WEBHOOK_FRESH_REPEAT sets the repetitions (default 3).
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { startDaemon } from './lib/daemon.mjs';
import { startRedis } from './lib/redis.mjs';
import { ClientPool, sleep } from './lib/client.mjs';
import { api, startReceiver } from './lib/http.mjs';

const REPEAT = Number(process.env.WEBHOOK_FRESH_REPEAT ?? 3);
const USERS = 5;

async function until(fn, ms, what) {
    const end = Date.now() + ms;
    for (;;) {
        const v = await fn();
        if (v) return v;
        if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
        await sleep(25);
    }
}

/** Every accepted event once by id; per user, the expected types in order. */
function assertDelivered(rx, want, what, evs = rx.accepted()) {
    const ids = evs.map((e) => e.id);
    assert.equal(new Set(ids).size, ids.length, `${what}: an event id delivered twice: ${ids}`);
    for (const [user, types] of Object.entries(want)) {
        const got = evs.filter((e) => e.userId === user && e.type.startsWith('user.')).map((e) => e.type);
        assert.deepEqual(got, types, `${what}: ${user}'s user events`);
    }
}

async function readyz(d) {
    await until(async () => (await api(d.url, '/readyz').catch(() => ({}))).status === 200, 10000, 'readyz 200');
}

describe('webhooks from a fresh start and after Redis lost its data', () => {
    const cleanup = [];
    after(async () => {
        for (const f of cleanup.reverse()) await f();
    });

    for (const instances of [1, 2]) {
        test(`users in the first milliseconds after /readyz on an empty Redis (${instances} instance(s), ${REPEAT} runs)`, { timeout: 60000 * REPEAT }, async (t) => {
            let lost = 0;
            for (let run = 0; run < REPEAT; run++) {
                const rx = await startReceiver();
                const redis = await startRedis();
                const set = { store: 'redis', redis: redis.url, webhook_url: rx.url };
                const daemons = [];
                const pool = new ClientPool();
                try {
                    for (let i = 0; i < instances; i++) daemons.push(await startDaemon({ set }));
                    await Promise.all(daemons.map(readyz));
                    const users = Array.from({ length: USERS }, (_, i) => `wf${run}-${i}`);
                    const socks = await Promise.all(users.map((userId, i) => pool.connect(daemons[i % instances].url, '/', { auth: { userId } })));
                    await until(() => rx.accepted().filter((e) => e.type === 'user.online').length >= USERS, 15000, 'every user.online');
                    for (const s of socks) s.close();
                    await until(() => rx.accepted().filter((e) => e.type === 'user.offline').length >= USERS, 15000, 'every user.offline');
                    await sleep(300); // a duplicate would have come by now
                    assertDelivered(rx, Object.fromEntries(users.map((u) => [u, ['user.online', 'user.offline']])), `run ${run}`);
                } catch (err) {
                    lost++;
                    throw err;
                } finally {
                    pool.closeAll();
                    for (const d of daemons) await d.stop();
                    await redis.stop();
                    await rx.close();
                }
            }
            t.diagnostic(`${REPEAT} runs with ${instances} instance(s), ${USERS} users each: ${lost} runs lost an event`);
        });
    }

    test('Redis restarted empty while users stay connected, then they leave: a reset, then online and offline once each', { timeout: 60000 }, async () => {
        const rx = await startReceiver();
        cleanup.push(() => rx.close());
        let redis = await startRedis();
        cleanup.push(() => redis.stop());
        const set = { store: 'redis', redis: redis.url, webhook_url: rx.url, instance_lease: 3 };
        const d = await startDaemon({ set });
        cleanup.push(() => d.stop());
        const pool = new ClientPool();
        cleanup.push(() => pool.closeAll());
        await d.wrap(async () => {
            await readyz(d);
            const users = Array.from({ length: USERS }, (_, i) => `wr-${i}`);
            const socks = [];
            for (const userId of users) socks.push(await pool.connect(d.url, '/', { auth: { userId } }));
            await until(() => rx.accepted().filter((e) => e.type === 'user.online').length >= USERS, 15000, 'every user.online');
            const port = redis.port;
            await redis.stop();
            redis = await startRedis({ port });
            await until(async () => (await api(d.url, '/readyz').catch(() => ({}))).status === 200, 15000, 'readyz again');
            // A new generation: the receiver is told to start again, then the users, registered
            // again, are announced online (the first events of the new stream) ...
            await until(() => rx.accepted().filter((e) => e.type === 'user.online').length >= 2 * USERS, 15000, 'every user.online again');
            // ... and their departures are delivered.
            for (const s of socks) s.close();
            await until(() => rx.accepted().filter((e) => e.type === 'user.offline').length >= USERS, 15000, 'every user.offline');
            await sleep(300);
            // The stream of a fresh Redis begins with the reset of its first generation, before
            // anything else; the restart begins a second one.
            const evs = rx.accepted();
            const resets = evs.filter((e) => e.type === 'reset');
            assert.equal(resets.length, 2, `two resets: ${JSON.stringify(resets)}`);
            assert.equal(evs[0], resets[0], 'the first generation begins with its reset');
            assert.ok(resets.every((e) => e.reason === 'store_empty'), JSON.stringify(resets));
            const at = evs.indexOf(resets[1]);
            assertDelivered(rx, Object.fromEntries(users.map((u) => [u, ['user.online']])), 'before the restart', evs.slice(1, at));
            assertDelivered(rx, Object.fromEntries(users.map((u) => [u, ['user.online', 'user.offline']])), 'after the restart', evs.slice(at + 1));
        })();
    });
});
