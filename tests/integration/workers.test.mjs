// workers = 2: one supervisor, two worker processes sharing one port (SO_REUSEPORT), each client
// address steered to one worker by the kernel, presence shared through Redis.
//
// Clients connect from eight loopback addresses (127.0.0.2 .. 127.0.0.9, an http.Agent with
// localAddress for the polling requests, localAddress for the WebSocket), half with the default
// transports (long-polling, then the upgrade) and half polling only: every one connects (a
// session's requests reaching another worker would be refused as "Session ID unknown"), each
// worker's /metrics (admin port + i) counts exactly the clients whose address hashes to it, and a
// user on one worker sees the online and offline events of users on the other. Then: SIGHUP
// reaches every worker; kill -9 of a worker gets it restarted (new pid, log line) and its
// clients reconnect; SIGTERM stops every worker and the supervisor exits 0; and
// --check-config refuses workers = 2 without store = redis. Which worker an address reaches is
// learnt from the workers themselves (a probe from each address, counted in each worker's
// /metrics), never computed by the test.
import { test, describe, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import { Daemon, binaryPath } from './lib/daemon.mjs';
import { startRedis } from './lib/redis.mjs';
import { ClientPool, waitFor } from './lib/client.mjs';
import { PClient, waitUntil } from './lib/presence.mjs';
import { fence } from './lib/fence.mjs';

const WORKERS = 2;
const SOURCES = [2, 3, 4, 5, 6, 7, 8, 9].map((i) => `127.0.0.${i}`);

/** A port below the ephemeral range (which client sockets use here) that is free right now. */
async function lowPort(span = 1) {
    for (let tries = 0; tries < 100; tries++) {
        const p = 20000 + Math.floor(Math.random() * 12000);
        const free = await Promise.all(
            Array.from({ length: span }, (_, k) =>
                new Promise((resolve) => {
                    const s = net.createServer();
                    s.once('error', () => resolve(false));
                    s.listen(p + k, '127.0.0.1', () => s.close(() => resolve(true)));
                }),
            ),
        );
        if (free.every(Boolean)) return p;
    }
    throw new Error('no free port below 32768');
}

async function getText(url) {
    const r = await fetch(url, { signal: AbortSignal.timeout(2000) });
    return { status: r.status, text: await r.text() };
}

/** The value of an unlabelled (or exactly labelled) metric in Prometheus text, or NaN. */
function metric(text, name) {
    const line = text.split('\n').find((l) => l.startsWith(name + ' '));
    return line ? Number(line.slice(name.length + 1)) : NaN;
}

/** Worker pids by index, from the supervisor's "worker started" lines (the latest wins). */
function workerPids(d) {
    const pids = [];
    for (const m of d.stderrText.matchAll(/msg="worker started" index=(\d+) pid=(\d+)/g)) pids[Number(m[1])] = Number(m[2]);
    return pids;
}

function alive(pid) {
    try {
        process.kill(pid, 0);
        return true;
    } catch {
        return false;
    }
}

describe('workers = 2 behind one port', () => {
    let redis, d, adminPort;
    const pool = new ClientPool();
    const agents = new Map();
    const steer = new Map(); // source address -> the worker the kernel sent its connections to
    const workerOf = (src) => steer.get(src);

    const adminUrl = (i) => `http://127.0.0.1:${adminPort + i}`;

    /** A socket.io-client whose TCP connections all come from `src`. */
    function client(src, userId, opts = {}) {
        if (!agents.has(src)) agents.set(src, new http.Agent({ keepAlive: true, localAddress: src }));
        const s = pool.socket(d.url, '/', { agent: agents.get(src), localAddress: src, auth: { userId }, ...opts });
        return new PClient(s, { userId, label: `${userId}@${src}` });
    }

    async function connected(c) {
        if (!c.socket.connected) await waitFor(c.socket, 'connect', { failOn: 'connect_error', ms: 10000 });
        return c;
    }

    async function allReady() {
        await waitUntil(
            async () => {
                for (let i = 0; i < WORKERS; i++) if ((await getText(`${adminUrl(i)}/readyz`)).status !== 200) return false;
                return true;
            },
            { ms: 15000, what: 'every worker answering /readyz 200' },
        );
    }

    before(async () => {
        redis = await startRedis({ port: await lowPort() });
        const port = await lowPort();
        adminPort = await lowPort(WORKERS);
        d = new Daemon({
            host: '127.0.0.1',
            port,
            args: [
                '--listen', `127.0.0.1:${port}`,
                '--store', 'redis',
                '--redis', redis.url,
                '--set', `workers=${WORKERS}`,
                '--set', 'broadcast=all',
                '--set', 'instance_lease=3',
                '--set', `admin_listen=127.0.0.1:${adminPort}`,
                '--set', `redis_prefix=wk${process.pid}:`,
            ],
        });
        await d.start();
        await allReady();
        // Learn the steering from the daemon: a probe from each address, twice (the same worker
        // both times, or sessions could not last), counted by one worker's presenced_sockets_local.
        const local = async () => {
            const out = [];
            for (let w = 0; w < WORKERS; w++) out.push(metric((await getText(`${adminUrl(w)}/metrics`)).text, 'presenced_sockets_local'));
            return out;
        };
        for (const src of SOURCES) {
            for (let round = 0; round < 2; round++) {
                const probe = await connected(client(src, `probe-${src}`, { transports: ['websocket'] }));
                let counts;
                await waitUntil(async () => (counts = await local()).reduce((a, b) => a + b, 0) === 1, { what: `the probe from ${src} counted by one worker` });
                const w = counts.indexOf(1);
                if (round === 1) assert.equal(w, steer.get(src), `${src} reached worker ${steer.get(src)}, then worker ${w}`);
                steer.set(src, w);
                probe.disconnect();
                await waitUntil(async () => (await local()).every((n) => n === 0), { what: `the probe from ${src} gone` });
            }
        }
    });

    afterEach(() => pool.closeAll());

    after(async () => {
        pool.closeAll();
        for (const a of agents.values()) a.destroy();
        if (d) await d.kill('SIGKILL');
        if (redis) await redis.stop();
    });

    test('the addresses 127.0.0.2..9 reach both workers (else this test proves nothing)', () => {
        const per = new Set(SOURCES.map((s) => workerOf(s)));
        assert.deepEqual([...per].sort(), [0, 1], `steering seen: ${JSON.stringify([...steer])}`);
    });

    test('clients from 8 addresses, polling then WebSocket or polling only, share presence across workers', async () =>
        d.wrap(async () => {
            // One observer per worker, connected first so that it sees everyone else come online.
            const observers = [];
            for (let w = 0; w < WORKERS; w++) {
                const src = SOURCES.find((s) => workerOf(s) === w);
                observers[w] = await connected(client(src, `observer${w}`));
            }
            const users = [];
            for (const src of SOURCES) {
                const n = src.split('.')[3];
                users.push({ src, c: client(src, `up${n}`) }); // default transports
                users.push({ src, c: client(src, `poll${n}`, { transports: ['polling'] }) });
            }
            await Promise.all(users.map((u) => connected(u.c)));

            // Every default client upgrades to WebSocket; the polling-only ones stay on polling.
            await waitUntil(() => users.every((u) => (u.c.label.startsWith('up') ? u.c.socket.io.engine.transport.name === 'websocket' : true)), {
                ms: 10000,
                what: 'every default-transport client upgraded to WebSocket',
            });
            for (const u of users) if (u.c.label.startsWith('poll')) assert.equal(u.c.socket.io.engine.transport.name, 'polling');

            // Each worker serves exactly the clients whose address the kernel sends to it.
            const want = Array(WORKERS).fill(0);
            for (let w = 0; w < WORKERS; w++) want[w] += 1; // its observer
            for (const u of users) want[workerOf(u.src)]++;
            await waitUntil(
                async () => {
                    for (let w = 0; w < WORKERS; w++) {
                        const m = (await getText(`${adminUrl(w)}/metrics`)).text;
                        if (metric(m, 'presenced_sockets_local') !== want[w]) return false;
                    }
                    return true;
                },
                { ms: 5000, what: `presenced_sockets_local per worker = ${JSON.stringify(want)}` },
            );
            const m0 = (await getText(`${adminUrl(0)}/metrics`)).text;
            assert.equal(metric(m0, 'presenced_sockets_cluster'), users.length + WORKERS, 'the cluster count covers both workers');
            assert.equal(metric(m0, 'presenced_instances'), WORKERS);

            // Online events of every user reach the observer of each worker, each once.
            for (const o of observers)
                for (const u of users) await o.rec.waitFor('presence:online', { userId: u.c.userId }, 5000);
            await fence(d.url, observers);
            for (const o of observers) for (const u of users) o.rec.assertCount('presence:online', { userId: u.c.userId }, 1);
            // Offline events too, across workers: the users of worker 0 leave, worker 1 hears it.
            const leaving = users.filter((u) => workerOf(u.src) === 0);
            assert.ok(leaving.length > 0);
            for (const u of leaving) u.c.disconnect();
            for (const u of leaving) await observers[1].rec.waitFor('presence:offline', { userId: u.c.userId }, 5000);
            await fence(d.url, observers);
            for (const o of observers) {
                for (const u of leaving) o.rec.assertCount('presence:offline', { userId: u.c.userId }, 1);
                for (const u of users.filter((x) => !leaving.includes(x))) o.rec.assertNone('presence:offline', { userId: u.c.userId });
            }
            const q = await observers[1].query(leaving.map((u) => u.c.userId));
            for (const u of leaving) assert.equal(q[u.c.userId].online, false);
            const stay = users.filter((u) => workerOf(u.src) === 1);
            const q2 = await observers[0].query(stay.map((u) => u.c.userId));
            for (const u of stay) assert.equal(q2[u.c.userId].online, true, `${u.c.userId} online as seen from worker 0`);
        })());

    test('SIGHUP reaches every worker', async () =>
        d.wrap(async () => {
            const before = d.stderrText.length;
            d.signal('SIGHUP');
            await waitUntil(
                () => {
                    const text = d.stderrText.slice(before);
                    return Array.from({ length: WORKERS }, (_, i) => text.includes(`msg="configuration reloaded" worker=${i} `)).every(Boolean);
                },
                { ms: 5000, what: 'configuration reloaded by every worker' },
            );
        })());

    test('kill -9 of a worker: the supervisor starts it again and its clients reconnect', async () =>
        d.wrap(async () => {
            const victim = 1;
            const src = SOURCES.find((s) => workerOf(s) === victim);
            const other = SOURCES.find((s) => workerOf(s) !== victim);
            const watcher = await connected(client(other, 'watcher'));
            const c = await connected(client(src, 'phoenix', { reconnection: true, reconnectionDelay: 200, reconnectionDelayMax: 500 }));
            // Not in the middle of the upgrade: engine.io-client 6.6 that loses the server while its
            // WebSocket probe is under way can switch to the dead probe anyway and then waits for
            // the ping timeout (45 s) before it reconnects.
            await waitUntil(() => c.socket.io.engine.transport.name === 'websocket', { what: 'the upgrade to WebSocket' });
            const firstId = c.socket.id;
            const oldPid = workerPids(d)[victim];
            assert.ok(oldPid && alive(oldPid), `worker ${victim} has a live pid (${oldPid})`);

            process.kill(oldPid, 'SIGKILL');
            await waitUntil(() => d.stderrText.includes(`msg="worker exited; starting it again" index=${victim} pid=${oldPid} signal=9`), {
                ms: 5000,
                what: 'the supervisor logging the exit',
            });
            await waitUntil(() => workerPids(d)[victim] !== oldPid, { ms: 5000, what: 'a new worker started' });
            const newPid = workerPids(d)[victim];
            assert.ok(alive(newPid), `new worker ${newPid} runs`);
            await allReady();

            // The client comes back, on the new worker, and is online for the other worker.
            await waitUntil(() => c.socket.connected && c.socket.id !== firstId, { ms: 15000, what: 'the client reconnecting' });
            const m = (await getText(`${adminUrl(victim)}/metrics`)).text;
            assert.equal(metric(m, 'presenced_sockets_local'), 1, 'the new worker holds the reconnected client');
            await waitUntil(async () => (await watcher.queryOne('phoenix')).online === true, { what: 'phoenix online seen from the other worker' });
            assert.equal((await c.queryOne('watcher')).online, true);
        })());

    test('SIGTERM: every worker stops and the supervisor exits 0', async () =>
        d.wrap(async () => {
            const pids = workerPids(d);
            assert.equal(pids.filter(Boolean).length, WORKERS);
            const info = await d.stop();
            assert.deepEqual(info, { code: 0, signal: null });
            for (const pid of pids) assert.equal(alive(pid), false, `worker ${pid} is gone`);
            for (let i = 0; i < WORKERS; i++) assert.match(d.stderrText, new RegExp(`msg="worker stopped" index=${i} pid=${pids[i]} exit=0`));
            d = null;
        })());
});

test('--check-config refuses workers = 2 without store = redis, and with conformance', () => {
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('PRESENCED_')));
    const run = (...args) => spawnSync(binaryPath(), ['--check-config', ...args], { env, encoding: 'utf8' });
    let r = run('--set', 'workers=2', '--store', 'memory');
    assert.equal(r.status, 1);
    assert.match(r.stderr, /workers: more than 1 needs store = redis/);
    r = run('--set', 'workers=2', '--redis', 'redis://127.0.0.1:6379', '--conformance');
    assert.equal(r.status, 1);
    assert.match(r.stderr, /workers.*conformance/);
    r = run('--set', 'workers=2', '--redis', 'redis://127.0.0.1:6379');
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /configuration ok/);
    r = run('--set', 'workers=65', '--redis', 'redis://127.0.0.1:6379');
    assert.equal(r.status, 1);
    assert.match(r.stderr, /workers/);
});

