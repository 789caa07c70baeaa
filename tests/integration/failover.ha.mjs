// Redis failovers while users churn (docs/operations.md, "Redis high availability"): the primary of
// a Sentinel set-up is killed with SIGKILL and a replica promoted; a primary of a 3-primary Redis
// Cluster is killed and its replica takes over; a range of slots, some partitions of presenced's
// keys among them, moves from one cluster primary to another. Two instances serve sixteen
// users who connect, join and leave rooms, change status and close; observers on both instances
// build their views from the events alone (lib/churn.mjs's View: a reset voids a view, what
// follows rebuilds it). The users go on through the outage; the test measures the time until the store
// answers again and, once the churn has stopped, until its answers and every observer's view agree
// with the live sockets; it churns again on the promoted primary, and finally checks that every
// transition was announced exactly once and that nobody is left online without a socket once a
// lease has passed.
//
// Run by ctest as redis_failover (tests/integration/run.sh BIN failover.ha.mjs).
// FAILOVER_SEED fixes the random schedule (default: random, printed); FAILOVER_CHURN_MS the churn
// time of each phase (default 1500).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startDaemon } from './lib/daemon.mjs';
import { ClientPool, sleep } from './lib/client.mjs';
import { prng, fence } from './lib/presence.mjs';
import { Topology, keyPrefixes } from './lib/topology.mjs';
import { Churner, compareAll, observe } from './lib/churn.mjs';

const LEASE_S = 3;
const USERS = [...Array(16).keys()].map((n) => `u${n}`);
const OBSERVERS = ['obs-0', 'obs-1'];
const ROOMS = ['room-a', 'room-b', 'room-c'];
// How long the users churn before the fault, after it and again at the end (FAILOVER_CHURN_MS; the
// default keeps the ctest short, a longer churn finds more).
const CHURN_MS = Number(process.env.FAILOVER_CHURN_MS ?? 1500);

/** Two instances on `topo`, an observer on each in every room, and a churner over both. */
async function setUp(topo, seed, t, partitions) {
    const pool = new ClientPool();
    const daemons = [];
    const set = {
        redis_prefix: `fo${process.pid}-${seed}:`,
        instance_lease: LEASE_S,
        ping_interval: 2000,
        ping_timeout: 10000,
        rate_limit: 100000,
        rate_burst: 100000,
    };
    for (let i = 0; i < 2; i++) daemons.push(await startDaemon({ set, extraArgs: ['--store', 'redis', '--redis', topo.url] }));
    const urls = daemons.map((d) => d.url);
    const views = [];
    const observers = [];
    for (let i = 0; i < 2; i++) {
        const o = await observe(pool, urls[i], OBSERVERS[i], `observer on ${'AB'[i]}`);
        views.push(o.view);
        observers.push(o.socket);
    }
    for (const s of observers) {
        for (const room of ROOMS) assert.equal((await s.timeout(10000).emitWithAck('presence:room:join', { room })).ok, true);
    }
    await sleep(500);
    for (const v of views) v.start(OBSERVERS, ROOMS);
    const churner = new Churner({ pool, urls, users: USERS, rooms: ROOMS, rnd: prng(seed) });
    t.diagnostic(`seed ${seed} (FAILOVER_SEED=${seed} replays it)`);
    const compare = () =>
        compareAll({
            want: churner.truth(OBSERVERS),
            observer: observers[0],
            usersUrl: urls[1],
            roomsUrl: urls[0],
            views,
            users: [...USERS, ...OBSERVERS],
            rooms: ROOMS,
        }).catch((e) => [`comparison failed: ${e.message}`]);
    const close = async () => {
        for (const v of views) v.closing = true;
        pool.closeAll();
        for (const d of daemons) await d.kill('SIGKILL').catch(() => {});
    };
    const annotate = (err) => daemons.reduce((e, d) => d.annotate(e), err);
    return { pool, daemons, urls, views, observers, churner, compare, close, annotate, partitions };
}

/** Polls presence:query of every user (on a cluster: partitions on every primary) on both
 * instances until both answer; resolves with when, or null. */
async function untilAvailable(env, ms) {
    const end = Date.now() + ms;
    while (Date.now() < end) {
        const answers = await Promise.all(
            env.observers.map((o) =>
                o
                    .timeout(2000)
                    .emitWithAck('presence:query', { userIds: [...USERS, ...OBSERVERS] })
                    .catch(() => null),
            ),
        );
        if (answers.every((a) => a?.ok === true)) return Date.now();
        await sleep(50);
    }
    return null;
}

/** Polls `compare` until it finds nothing; resolves with the time that took, or the last problems. */
async function untilCorrect(compare, ms) {
    const start = Date.now();
    let problems;
    do {
        problems = await compare();
        if (problems.length === 0) return { ms: Date.now() - start, problems };
        await sleep(100);
    } while (Date.now() - start < ms);
    return { ms: null, problems };
}

/**
 * The common course of a failover scenario: churn, the fault (`strike` resolves once it is
 * done), the time to a correct view, churn again, then exactly once and no ghost after a lease.
 */
async function scenario(t, topo, what, strike) {
    const seed = Number(process.env.FAILOVER_SEED ?? Math.floor(Math.random() * 2 ** 31));
    // The daemons' default partitions on a cluster (redis_partitions), for the fences.
    const partitions = topo.kind === 'cluster' ? 12 : 1;
    const env = await setUp(topo, seed, t, partitions);
    try {
        env.churner.start();
        await sleep(CHURN_MS);
        // Times count from the kill itself (strike resolves with it), or from the start of a move.
        const began = Date.now();
        const t0 = (await strike()) ?? began;
        // The users go on through the outage (their commands fail meanwhile); once the store
        // answers again they churn a little longer, then stop.
        const avail = await untilAvailable(env, 60000);
        assert.ok(avail !== null, `the store answers again after ${what}`);
        await sleep(CHURN_MS);
        await env.churner.stop();
        const t1 = Date.now();
        const back = await untilCorrect(env.compare, 60000);
        assert.deepEqual(back.problems, [], `a correct view after ${what}`);
        t.diagnostic(`${what}: the store answered again ${avail - t0} ms after it; the store and every view were correct ${back.ms} ms after the churn stopped (${Date.now() - t0} ms after it)`);

        env.churner.start();
        await sleep(CHURN_MS);
        await env.churner.stop();
        const settled = await untilCorrect(env.compare, 30000);
        assert.deepEqual(settled.problems, [], 'a correct view after churning on');
        // No ghost: a lease later, still nobody online without a socket.
        await sleep(LEASE_S * 1000 + 500);
        assert.deepEqual(await env.compare(), [], 'a lease later');
        // Counted after a fence on each instance: nothing decided before can still arrive.
        for (const url of env.urls) await fence(url, env.views, { partitions: env.partitions });
        const violations = env.views.flatMap((v) => v.violations);
        const s = env.churner.stats;
        t.diagnostic(`${s.actions} actions (${s.connects} connects, ${s.closes} closes, ${s.joins} joins, ${s.leaves} leaves, ${s.statuses} status changes, ${s.failed} refused); resets seen ${env.views.map((v) => v.resets)}`);
        if (violations.length) {
            const who = new Set(violations.map((v) => v.split(': ')[1].split('@')[0]));
            for (const u of who) t.diagnostic(`${u} at observer A: ${env.views[0].log.filter((l) => l.split(' ')[2] === u).join('; ')}`);
            for (const u of who) t.diagnostic(`${u} by the test: ${env.churner.about(u).join('; ')}`);
        }
        assert.deepEqual(violations, [], 'every transition announced exactly once');
    } catch (err) {
        throw env.annotate(err);
    } finally {
        await env.close();
    }
}

describe('Redis failover while users churn', () => {
    test('Sentinel: SIGKILL of the primary, a replica promoted', { timeout: 180000 }, async (t) => {
        const topo = await Topology.start('sentinel');
        try {
            const primary = await topo.primaryPort();
            await scenario(t, topo, 'the SIGKILL of the primary', () => topo.killSynced(primary));
            const now = await topo.primaryPort();
            assert.notEqual(now, primary, 'Sentinel promoted a replica');
        } finally {
            await topo.stop();
        }
    });

    test('Cluster: SIGKILL of a primary, its replica takes over', { timeout: 180000 }, async (t) => {
        const topo = await Topology.start('cluster');
        try {
            const [victim] = await topo.primaries();
            await scenario(t, topo, 'the SIGKILL of a cluster primary', () => topo.killSynced(victim));
            const now = await topo.primaries();
            assert.equal(now.length, 3, 'three primaries again');
            assert.ok(!now.includes(victim), 'the killed node is not among them');
        } finally {
            await topo.stop();
        }
    });

    test('Cluster: 2000 slots moved from one primary to another while users churn', { timeout: 240000 }, async (t) => {
        const topo = await Topology.start('cluster');
        try {
            const [from, to] = await topo.primaries();
            const before = await topo.slotCount(to);
            // A key in each of the daemons' partitions (the prefix does not change the slot).
            const keys = keyPrefixes('p:', 12).map((p) => `${p}probe`);
            const on = async () => Promise.all(keys.map((k) => topo.nodeFor(k)));
            const was = await on();
            await scenario(t, topo, 'moving 2000 slots', async () => {
                const start = Date.now();
                await topo.reshard(from, to, 2000);
                t.diagnostic(`redis-cli moved the slots in ${Date.now() - start} ms`);
            });
            assert.equal(await topo.slotCount(to), before + 2000, 'the slots moved');
            // The first 2000 slots of a primary's third of the slots hold a whole partition's
            // range: at least one partition moved while the users churned.
            const moved = (await on()).filter((port, i) => was[i] === from && port === to).length;
            assert.ok(moved >= 1, `a partition of the daemons moved (${moved})`);
            t.diagnostic(`${moved} of 12 partitions moved from one primary to the other`);
        } finally {
            await topo.stop();
        }
    });
});
