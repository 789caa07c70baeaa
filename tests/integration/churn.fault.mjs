// Randomized churn under faults (docs/presence-model.md, "Invariants"): real socket.io-clients
// connect, identify, join and leave rooms, change status and close on three instances, while a
// fault proxy between each instance and Redis (tests/fault) stalls, cuts and delays its traffic,
// Redis is restarted with its data (AOF) and without, and instances are SIGSTOPped or kill -9ed.
// Once things settle, every observer's view (built from the events it received) must equal the
// store's answer (HTTP /v1 and presence:query) and the live sockets; every transition must have
// been announced exactly once (per observer and per webhook delivery, per user: online/offline
// alternate, room join/leave alternate); and once everyone has gone, no key may be left in Redis
// but the documented retention ones.
//
// CHURN_SEED (default 1) fixes the random schedule; CHURN_SECONDS (default 45) the churn time.
// CHURN_DATA_LOSS=1 adds Redis restarts without its data, which still can announce a user online
// twice (docs/presence-model.md, "Redis lost its data"): off in CI until that is fixed.
// Run by ctest as fault_churn; by hand: tests/integration/run.sh build-test/presenced churn.fault.mjs
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Daemon, freePort, binaryPath } from './lib/daemon.mjs';
import { redisCommand } from './lib/redis.mjs';
import { ClientPool, sleep } from './lib/client.mjs';
import { api, startReceiver } from './lib/http.mjs';
import { prng } from './lib/presence.mjs';
import { Churner, EventView as View, compareAll, observe } from './lib/churn.mjs';

const SEED = Number(process.env.CHURN_SEED ?? 1);
const SECONDS = Number(process.env.CHURN_SECONDS ?? 45);
const USERS = 16;
const ROOMS = ['room-a', 'room-b', 'room-c'];
const MAX_SOCKETS = 40;
const LEASE_S = 3;
const PREFIX = `churn${process.pid}:`;

function faultProxyPath() {
    return process.env.FAULT_PROXY ?? path.join(path.dirname(binaryPath()), 'tests/integration/fault/fault_proxy');
}

/** The fault proxy program: one per instance, driven over stdin. */
class FaultProxy {
    static async start(targetPort) {
        const p = new FaultProxy();
        p.proc = spawn(faultProxyPath(), [String(targetPort)], { stdio: ['pipe', 'pipe', 'inherit'] });
        p.lines = [];
        p.waiters = [];
        let buf = '';
        p.proc.stdout.setEncoding('utf8');
        p.proc.stdout.on('data', (d) => {
            buf += d;
            let nl;
            while ((nl = buf.indexOf('\n')) >= 0) {
                const line = buf.slice(0, nl);
                buf = buf.slice(nl + 1);
                const w = p.waiters.shift();
                if (w) w(line);
                else p.lines.push(line);
            }
        });
        const first = await p.next();
        p.port = Number(first.replace('port ', ''));
        return p;
    }

    next() {
        if (this.lines.length) return Promise.resolve(this.lines.shift());
        return new Promise((r) => this.waiters.push(r));
    }

    async set(mode) {
        this.proc.stdin.write(mode + '\n');
        assert.equal(await this.next(), 'ok');
    }

    async stop() {
        this.proc.stdin.end();
        await new Promise((r) => (this.proc.exitCode !== null ? r() : this.proc.once('exit', r)));
    }
}

/** A redis-server with an append-only file (fsync always) in a directory of its own. */
class Redis {
    constructor(port, dir) {
        this.port = port;
        this.dir = dir;
        this.proc = null;
    }

    async start({ empty = false } = {}) {
        if (empty) {
            await rm(path.join(this.dir, 'appendonlydir'), { recursive: true, force: true });
        }
        const args = ['--port', String(this.port), '--bind', '127.0.0.1', '--dir', this.dir, '--save', '', '--appendonly', 'yes', '--appendfsync', 'always'];
        this.proc = spawn(process.env.REDIS_SERVER || 'redis-server', args, { stdio: 'ignore' });
        const end = Date.now() + 10000;
        for (;;) {
            try {
                if ((await redisCommand(this.port, ['PING'])) === '+PONG') return;
            } catch {
                // not up yet
            }
            if (Date.now() > end) throw new Error('redis-server did not start');
            await sleep(20);
        }
    }

    async stop(sig = 'SIGTERM') {
        if (!this.proc || this.proc.exitCode !== null) return;
        const done = new Promise((r) => this.proc.once('exit', r));
        this.proc.kill(sig);
        await done;
    }

    /** Keys under the test's prefix, and their types. */
    async keys() {
        const out = [];
        let cursor = '0';
        do {
            const r = await rawCommand(this.port, ['SCAN', cursor, 'MATCH', `${PREFIX}*`, 'COUNT', '1000']);
            cursor = r[0];
            out.push(...r[1]);
        } while (cursor !== '0');
        return out;
    }
}

/** A command whose (nested) array reply is parsed: enough for SCAN and GET. */
function rawCommand(port, args) {
    return new Promise((resolve, reject) => {
        import('node:net').then(({ default: net }) => {
            const sock = net.connect({ host: '127.0.0.1', port });
            let buf = Buffer.alloc(0);
            sock.on('error', reject);
            sock.on('connect', () => {
                let req = `*${args.length}\r\n`;
                for (const a of args) req += `$${Buffer.byteLength(String(a))}\r\n${a}\r\n`;
                sock.write(req);
            });
            sock.on('data', (d) => {
                buf = Buffer.concat([buf, d]);
                const r = parse(buf, 0);
                if (r) {
                    sock.destroy();
                    resolve(r.value);
                }
            });
        });
    });
    function parse(b, at) {
        const nl = b.indexOf('\r\n', at);
        if (nl < 0) return null;
        const head = b.toString('utf8', at, nl);
        const t = head[0];
        const rest = head.slice(1);
        if (t === '+' || t === '-' || t === ':') return { value: rest, end: nl + 2 };
        if (t === '$') {
            const n = Number(rest);
            if (n < 0) return { value: null, end: nl + 2 };
            if (b.length < nl + 2 + n + 2) return null;
            return { value: b.toString('utf8', nl + 2, nl + 2 + n), end: nl + 2 + n + 2 };
        }
        if (t === '*') {
            const n = Number(rest);
            const out = [];
            let pos = nl + 2;
            for (let i = 0; i < n; i++) {
                const e = parse(b, pos);
                if (!e) return null;
                out.push(e.value);
                pos = e.end;
            }
            return { value: out, end: pos };
        }
        throw new Error(`unexpected reply ${head}`);
    }
}

test(`churn under faults (seed ${SEED}, ${SECONDS} s)`, { timeout: (SECONDS + 240) * 1000 }, async (t) => {
    const rnd = prng(SEED);
    const pick = (a) => a[Math.floor(rnd() * a.length)];
    const dir = await mkdtemp(path.join(os.tmpdir(), 'presenced-churn-'));
    const redis = new Redis(await freePort(), dir);
    const rx = await startReceiver();
    const pool = new ClientPool();
    const daemons = [];
    const proxies = [];
    const faults = {};
    const faultLog = [];
    const fault = (k) => (faults[k] = (faults[k] ?? 0) + 1);
    const annotate = (err) => {
        let e = err;
        for (const d of daemons) e = d.annotate(e);
        return e;
    };
    try {
        await redis.start({ empty: true });
        const set = {
            store: 'redis',
            redis_prefix: PREFIX,
            instance_lease: LEASE_S,
            offline_grace: 1,
            ping_interval: 2000,
            ping_timeout: 10000,
            rate_limit: 100000,
            rate_burst: 100000,
            webhook_url: rx.url,
        };
        for (let i = 0; i < 3; i++) {
            const p = await FaultProxy.start(redis.port);
            proxies.push(p);
            const port = await freePort();
            const args = ['--listen', `127.0.0.1:${port}`, '--redis', `redis://127.0.0.1:${p.port}`];
            for (const [k, v] of Object.entries(set)) args.push('--set', `${k}=${v}`);
            const d = new Daemon({ host: '127.0.0.1', port, args });
            await d.start();
            daemons.push(d);
        }
        // Every event of the stream delivered to the receiver (the group has nothing pending and no
        // lag), so that emptying Redis loses none of them; bounded, as a stopped deliverer keeps
        // its lock for 10 s.
        const webhooksCaughtUp = async () => {
            const end = Date.now() + 20000;
            while (Date.now() < end) {
                const groups = await rawCommand(redis.port, ['XINFO', 'GROUPS', `${PREFIX}events`]).catch(() => []);
                const g = Object.fromEntries((groups[0] ?? []).reduce((a, v, i, arr) => (i % 2 ? a : [...a, [v, arr[i + 1]]]), []));
                if (g.pending === '0' && (g.lag === '0' || g.lag === null)) return;
                await sleep(100);
            }
        };
        // Every running instance has restored its sockets since `since` (its log says so).
        const restored = async (since) => {
            const end = Date.now() + 20000;
            const done = (d) => {
                const lines = d.stderrText.split('\n').filter((l) => l.includes('msg="reconciled with redis"') && l.includes('restore=1'));
                const ts = lines.length ? Date.parse((lines.at(-1).match(/ts=(\S+)/) ?? [])[1]) : 0;
                return ts >= since;
            };
            while (!daemons.every((d) => d.exitInfo || done(d))) {
                if (Date.now() > end) throw new Error('the instances did not restore within 20 s of Redis coming back empty');
                await sleep(50);
            }
        };
        const ready = async (d) => {
            const end = Date.now() + 20000;
            while ((await api(d.url, '/readyz').catch(() => ({}))).status !== 200) {
                if (Date.now() > end) throw new Error(`${d.url} not ready`);
                await sleep(50);
            }
        };
        for (const d of daemons) await ready(d);

        // Observers on A and B (C may be killed): identified, in every room, never leaving. Their
        // views start from that known state once both are in.
        const views = [];
        const observers = [];
        for (let i = 0; i < 2; i++) {
            const o = await observe(pool, daemons[i].url, `obs-${i}`, `observer on ${'AB'[i]}`);
            views.push(o.view);
            observers.push(o.socket);
        }
        for (const s of observers) {
            for (const room of ROOMS) {
                const r = await s.timeout(10000).emitWithAck('presence:room:join', { room });
                assert.equal(r.ok, true);
            }
        }
        await sleep(1000);
        for (const v of views) v.reset(['obs-0', 'obs-1'], ROOMS);
        const hookSkip = rx.accepted().length; // the observers' own arrival

        // The clients: live sockets and, per socket, the rooms its join acks put it in.
        const users = [...Array(USERS).keys()].map((n) => `u${n}`);
        const churner = new Churner({ pool, urls: daemons.map((d) => d.url), users, rooms: ROOMS, rnd, maxSockets: MAX_SOCKETS });
        const stats = churner.stats;
        churner.start();

        // The faults, one at a time.
        const until = Date.now() + SECONDS * 1000;
        while (Date.now() < until) {
            await sleep(500 + rnd() * 1500);
            const kinds = ['stall', 'cut', 'delay', 'stop', 'kill', 'redis-aof', 'hold'];
            if (process.env.CHURN_DATA_LOSS === '1') kinds.push('redis-empty');
            const kind = pick(kinds);
            const i = Math.floor(rnd() * 3);
            const ms = 500 + Math.floor(rnd() * 4000);
            fault(kind);
            faultLog.push(`${Date.now() % 100000} ${kind} ${i} ${ms}`);
            if (kind === 'stall' || kind === 'cut' || kind === 'hold') {
                await proxies[i].set(kind === 'hold' ? 'hold_replies' : kind);
                await sleep(ms);
                await proxies[i].set('pass');
            } else if (kind === 'delay') {
                await proxies[i].set(`delay ${50 + Math.floor(rnd() * 250)}`);
                await sleep(ms);
                await proxies[i].set('pass');
            } else if (kind === 'stop') {
                daemons[i].signal('SIGSTOP');
                await sleep(ms);
                daemons[i].signal('SIGCONT');
            } else if (kind === 'kill') {
                // C only: the observers live on A and B.
                await daemons[2].kill('SIGKILL');
                await sleep(ms / 2);
                await daemons[2].start();
            } else if (kind === 'redis-aof') {
                await redis.stop();
                await sleep(ms / 4);
                await redis.start();
            } else {
                // Redis loses its data: events decided in its last moments, and transitions while
                // it is down, cannot be announced to everyone (docs/presence-model.md, "Redis lost
                // its data"): the churn waits for the readers to catch up and for Redis to be
                // back.
                churner.paused = true;
                await sleep(1000);
                await webhooksCaughtUp();
                await redis.stop('SIGKILL');
                const wiped = Date.now();
                await redis.start({ empty: true });
                for (const d of daemons) await ready(d);
                await restored(wiped);
                churner.paused = false;
            }
        }
        await churner.stop();

        // Settle, then compare: the truth (live sockets), the store (HTTP and presence:query),
        // every observer's view. After Redis lost its data, a user's status is the one the socket
        // that registers them again last set (docs/presence-model.md): not checked then.
        const everyone = users.concat(['obs-0', 'obs-1']);
        const compare = () =>
            compareAll({
                want: churner.truth(['obs-0', 'obs-1']),
                observer: observers[0],
                usersUrl: daemons[1].url,
                roomsUrl: daemons[0].url,
                views,
                users: everyone,
                rooms: ROOMS,
                statuses: !faults['redis-empty'],
            });
        let problems = [];
        const settleEnd = Date.now() + 40000;
        for (;;) {
            problems = await compare().catch((e) => [`comparison failed: ${e.message}`]);
            if (problems.length === 0 || Date.now() > settleEnd) break;
            await sleep(500);
        }
        const violations = views.flatMap((v) => v.violations);
        // Webhooks (at least once: a receiver drops ids it has seen, as here): per user online and
        // offline alternate, per room join and leave.
        const hooks = new View('webhooks');
        const ids = new Set();
        let redelivered = 0;
        for (const o of ['obs-0', 'obs-1']) {
            hooks.seq.set(o, '+');
            for (const r of ROOMS) hooks.seq.set(`${o}@${r}`, 'j');
        }
        for (const e of rx.accepted().slice(hookSkip)) {
            if (ids.has(e.id)) {
                redelivered++;
                continue;
            }
            ids.add(e.id);
            const name = { 'user.online': 'presence:online', 'user.offline': 'presence:offline', 'room.join': 'presence:room:join', 'room.leave': 'presence:room:leave' }[e.type];
            if (name) hooks.apply(name, e);
        }
        violations.push(...hooks.violations);
        t.diagnostic(`seed ${SEED}: ${stats.actions} actions (${stats.connects} connects, ${stats.closes} closes, ${stats.joins} joins, ${stats.leaves} leaves, ${stats.statuses} status changes); faults ${JSON.stringify(faults)}; ${ids.size} webhook events (${redelivered} delivered again)`);
        t.diagnostic(`violations: ${problems.length + violations.length}`);
        if (problems.length) {
            const who = new Set(problems.flatMap((p) => [...p.matchAll(/ (u\d+|obs-\d) /g)].map((m) => m[1])));
            t.diagnostic(`faults: ${faultLog.join('; ')}`);
            for (const u of who) t.diagnostic(`${u} at observer A: ${views[0].log.filter((l) => l.split(' ')[2] === u).join('; ')}`);
            for (const u of who) t.diagnostic(`${u} by the test: ${churner.about(u).join('; ')}`);
            for (const u of who) t.diagnostic(`${u} live: ${churner.liveOf(u).join('; ')}`);
        }
        assert.deepEqual(problems, [], `after settling (seed ${SEED})`);
        assert.deepEqual(violations, [], `transitions announced exactly once (seed ${SEED})`);

        // Everyone leaves (and their offline grace runs out); the instances shut down: only
        // retention keys stay.
        pool.closeAll();
        await sleep(1000 + (LEASE_S * 1000) / 3 + 1000);
        for (const d of daemons) await d.stop();
        const left = await redis.keys();
        const allowed = async (k) => {
            const rest = k.slice(PREFIX.length);
            // Offline users' records (last_seen_retention), the event stream, the two counters,
            // the webhook lock (expires by itself), and the epoch of an instance that was killed
            // (expires after `ttl`).
            if (rest.startsWith('u:') || ['events', 'count_online', 'count_rooms', 'whlock'].includes(rest)) return true;
            return rest.startsWith('e:') && Number(await rawCommand(redis.port, ['PTTL', k])) > 0;
        };
        const unexpected = [];
        for (const k of left) if (!(await allowed(k))) unexpected.push(k);
        assert.deepEqual(unexpected, [], 'keys left in Redis after everyone left');
        for (const c of ['count_online', 'count_rooms']) {
            const v = await rawCommand(redis.port, ['GET', PREFIX + c]);
            assert.ok(v === null || v === '0', `${c} is ${v} after everyone left`);
        }
    } catch (err) {
        throw annotate(err);
    } finally {
        pool.closeAll();
        for (const d of daemons) await d.kill('SIGKILL').catch(() => {});
        for (const p of proxies) await p.stop().catch(() => {});
        await redis.stop('SIGKILL').catch(() => {});
        await rx.close();
        await rm(dir, { recursive: true, force: true });
    }
});
