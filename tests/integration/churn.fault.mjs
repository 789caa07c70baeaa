// Randomized churn under faults (docs/presence-model.md, "Invariants"): real socket.io-clients
// connect, identify, join and leave rooms, change status and close on three instances, while a
// fault proxy between each instance and Redis (tests/fault) stalls, cuts and delays its traffic,
// Redis is restarted with its data (AOF), restarted without it and flushed (FLUSHALL) while the
// churn goes on, and instances are SIGSTOPped or kill -9ed.
// Every observer (two Socket.IO clients and a webhook receiver) builds its view only from the
// events it receives, as docs/protocol.md tells a client to: a reset (Redis lost its data) voids
// it, and what follows rebuilds it. Checked while it runs: every transition is announced once
// per generation (per user, online and offline alternate starting with online; per user and room,
// join and leave alternate starting with join), an update, a room join or an offline only comes
// for a user the view has online (and an offline only once the user's rooms were left), and
// sequences only go up. Once things settle, every view (users online, their status, room
// members) must equal the store's answer (HTTP /v1 and presence:query) and the live sockets;
// once everyone has gone, no key may be left in Redis but the documented retention ones.
//
// CHURN_SEED (default 1) fixes the faults (kinds, targets, durations, spacing) and the clients'
// random choices (how those interleave with the faults still depends on timing); CHURN_SECONDS
// (default 45) the churn time; CHURN_DATA_LOSS=0 leaves out the faults that lose Redis's data (to
// tell failures apart); CHURN_FAULTS replays the faults of a run (the "faults:" line a failing
// run prints), or a named schedule (PRESETS, e.g. CHURN_FAULTS=pause-loss), instead of drawing
// them. A failing run prints its problems and writes each
// instance's log to a directory it names.
// Run by ctest as fault_churn; by hand: tests/integration/run.sh build-test/presenced churn.fault.mjs
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Daemon, freePort, binaryPath } from './lib/daemon.mjs';
import { redisCommand } from './lib/redis.mjs';
import { ClientPool, sleep, withTimeout } from './lib/client.mjs';
import { api, startReceiver } from './lib/http.mjs';
import { prng } from './lib/presence.mjs';
import { View, observe } from './lib/churn.mjs';

const SEED = Number(process.env.CHURN_SEED ?? 1);
// Named fault schedules for CHURN_FAULTS. pause-loss: an instance SIGSTOPped past its lease (its
// sockets reaped), then Redis loses its data (flushed, restarted empty) or restarts just after
// it resumes, while its reconciliation runs; again and again, on A and B.
const PRESETS = {
    'pause-loss':
        '1000 stop 1 4000; 5300 redis-flush 0 0; 7000 stop 0 3600; 10700 redis-empty 0 1200; ' +
        '13500 stop 1 3500; 17150 redis-flush 0 0; 17600 redis-flush 0 0; 19000 stop 1 4000; ' +
        '23050 redis-aof 0 1600; 25500 stop 0 3300; 28850 redis-empty 0 2000; 31500 stop 1 3200; ' +
        '34750 redis-flush 0 0',
};
const SECONDS = Number(process.env.CHURN_SECONDS ?? 45);
// A whole run takes SECONDS plus about 15 s (up to 40 s more when views are slow to settle); one
// that has not ended after this fails with its report, well before the test's own timeout.
const RUN_BUDGET_S = SECONDS + 200;
const USERS = 16;
const ROOMS = ['room-a', 'room-b', 'room-c'];
const MAX_SOCKETS = 40;
const LEASE_S = 3;
const PREFIX = `churn${process.pid}:`;
const STATUSES = ['online', 'away', 'busy', 'dnd'];

function faultProxyPath() {
    return process.env.FAULT_PROXY ?? path.join(path.dirname(binaryPath()), 'tests/integration/fault/fault_proxy');
}

/** How long one step of the test may take before it fails, naming the step (a hang is a failure). */
const STEP_MS = 10000;

/** The fault proxy program: one per instance, driven over stdin. */
class FaultProxy {
    static async start(targetPort) {
        const p = new FaultProxy();
        p.proc = spawn(faultProxyPath(), [String(targetPort)], { stdio: ['pipe', 'pipe', 'inherit'] });
        p.lines = [];
        p.waiters = [];
        p.exitInfo = null;
        let buf = '';
        p.proc.stdout.setEncoding('utf8');
        p.proc.stdout.on('data', (d) => {
            buf += d;
            let nl;
            while ((nl = buf.indexOf('\n')) >= 0) {
                const line = buf.slice(0, nl);
                buf = buf.slice(nl + 1);
                const w = p.waiters.shift();
                if (w) w.resolve(line);
                else p.lines.push(line);
            }
        });
        // A proxy that dies fails whoever waits for its answer, rather than leaving them waiting.
        const gone = (info) => {
            p.exitInfo ??= info;
            for (const w of p.waiters.splice(0)) w.reject(new Error(`fault proxy exited (${JSON.stringify(p.exitInfo)})`));
        };
        p.proc.once('exit', (code, signal) => gone({ code, signal }));
        p.proc.once('error', (err) => gone({ error: err.message }));
        p.proc.stdin.on('error', () => {}); // a dead proxy's closed pipe: reported by next()
        const first = await p.next();
        p.port = Number(first.replace('port ', ''));
        return p;
    }

    /** The next line it prints; fails when it exits or says nothing within ms. */
    next(ms = STEP_MS) {
        if (this.lines.length) return Promise.resolve(this.lines.shift());
        if (this.exitInfo) return Promise.reject(new Error(`fault proxy exited (${JSON.stringify(this.exitInfo)})`));
        const w = {};
        const line = new Promise((resolve, reject) => Object.assign(w, { resolve, reject }));
        this.waiters.push(w);
        return withTimeout(line, ms, `an answer from the fault proxy (pid ${this.proc.pid})`).catch((err) => {
            this.waiters = this.waiters.filter((x) => x !== w);
            throw err;
        });
    }

    async set(mode) {
        this.proc.stdin.write(mode + '\n');
        assert.equal(await this.next(), 'ok', `fault proxy: ${mode}`);
    }

    /** Ends its input, which makes it exit; one that does not within 3 s is killed. */
    async stop() {
        if (this.exitInfo || this.proc.exitCode !== null || this.proc.signalCode !== null) return;
        const exited = new Promise((r) => this.proc.once('exit', r));
        this.proc.stdin.end();
        const timer = setTimeout(() => this.proc.kill('SIGKILL'), 3000);
        await exited;
        clearTimeout(timer);
    }
}

/** A redis-server with an append-only file (fsync always) in a directory of its own. */
class Redis {
    constructor(port, dir) {
        this.port = port;
        this.dir = dir;
        this.proc = null;
        this.output = ''; // the tail of what every redis-server of the run logged
    }

    async start({ empty = false } = {}) {
        if (empty) {
            await rm(path.join(this.dir, 'appendonlydir'), { recursive: true, force: true });
        }
        const args = ['--port', String(this.port), '--bind', '127.0.0.1', '--dir', this.dir, '--save', '', '--appendonly', 'yes', '--appendfsync', 'always'];
        const proc = spawn(process.env.REDIS_SERVER || 'redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
        this.proc = proc;
        let exit = null;
        proc.once('exit', (code, signal) => (exit = { code, signal }));
        for (const s of [proc.stdout, proc.stderr]) {
            s.setEncoding('utf8');
            s.on('data', (c) => (this.output = (this.output + c).slice(-32000)));
        }
        const end = Date.now() + STEP_MS;
        for (;;) {
            // One that exits at once (its port taken by someone else meanwhile) would otherwise
            // leave the test talking to whatever listens there now.
            if (exit) throw new Error(`redis-server exited at start (${JSON.stringify(exit)}):\n${this.output.slice(-2000)}`);
            try {
                if ((await redisCommand(this.port, ['PING'])) === '+PONG') return;
            } catch {
                // not up yet
            }
            if (Date.now() > end) throw new Error(`redis-server did not answer PING within ${STEP_MS} ms:\n${this.output.slice(-2000)}`);
            await sleep(20);
        }
    }

    /**
     * Stops it and waits for it to exit. A Redis that ignores SIGTERM (e.g. busy in a script that
     * never ends) is a failure of the run, not a wait forever: killed, and reported.
     */
    async stop(sig = 'SIGTERM') {
        const proc = this.proc;
        if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
        const done = new Promise((r) => proc.once('exit', r));
        proc.kill(sig);
        try {
            await withTimeout(done, STEP_MS, `redis-server to exit on ${sig}`);
        } catch (err) {
            proc.kill('SIGKILL');
            await done;
            throw new Error(`${err.message}; its log:\n${this.output.slice(-2000)}`);
        }
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

/**
 * A command whose (nested) array reply is parsed: enough for SCAN and GET. Fails on an error
 * reply, a closed connection or no answer within STEP_MS.
 */
function rawCommand(port, args) {
    return new Promise((resolve, reject) => {
        const sock = net.connect({ host: '127.0.0.1', port });
        let buf = Buffer.alloc(0);
        const done = (err, value) => {
            sock.removeAllListeners();
            sock.on('error', () => {});
            sock.destroy();
            if (err) reject(new Error(`redis ${args[0]}: ${err.message ?? err}`));
            else resolve(value);
        };
        sock.setTimeout(STEP_MS, () => done(new Error(`no answer within ${STEP_MS} ms`)));
        sock.on('error', done);
        sock.on('close', () => done(new Error('connection closed before the answer')));
        sock.on('connect', () => {
            let req = `*${args.length}\r\n`;
            for (const a of args) req += `$${Buffer.byteLength(String(a))}\r\n${a}\r\n`;
            sock.write(req);
        });
        sock.on('data', (d) => {
            buf = Buffer.concat([buf, d]);
            let r;
            try {
                r = parse(buf, 0);
            } catch (err) {
                return done(err);
            }
            if (!r) return;
            if (r.error) done(new Error(r.value));
            else done(null, r.value);
        });
    });
    function parse(b, at) {
        const nl = b.indexOf('\r\n', at);
        if (nl < 0) return null;
        const head = b.toString('utf8', at, nl);
        const t = head[0];
        const rest = head.slice(1);
        if (t === '-') return { value: rest, end: nl + 2, error: true };
        if (t === '+' || t === ':') return { value: rest, end: nl + 2 };
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

/** The scheduler state of a process (R running, S sleeping, T stopped...), '?' if unknown. */
function procState(pid) {
    try {
        return readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '')[0];
    } catch {
        return '?';
    }
}

/** Every thread's stack of a running process, when gdb is there and may attach; else why not. */
function stacks(pid) {
    const r = spawnSync('gdb', ['-p', String(pid), '-batch', '-ex', 'thread apply all bt'], { encoding: 'utf8', timeout: 30000 });
    if (r.error) return `(no stacks: ${r.error.message})`;
    return r.stdout.split('\n').filter((l) => /^(#|Thread)/.test(l)).join('\n') || `(no stacks: ${r.stderr.trim().slice(0, 300)})`;
}

/** Whether an instance answers GET /healthz within 2 s (its event loop turns). */
async function answers(d) {
    return (await api(d.url, '/healthz', { ms: 2000 }).catch(() => ({}))).status === 200;
}

/**
 * What a failed run leaves for its post-mortem: the phase it was in, the faults line that replays
 * it (CHURN_FAULTS), the state of each process, and a directory with each instance's log and
 * Redis's, plus the stacks of an instance that no longer answers or of a proxy that did not.
 */
async function report(t, err, { phase, faultLog, daemons, proxies, redis }) {
    t.diagnostic(`failed while ${phase}: ${String(err?.message ?? err).split('\n')[0]}`);
    t.diagnostic(`faults: ${faultLog.join('; ')}`);
    const logs = await mkdtemp(path.join(os.tmpdir(), `presenced-churn-${SEED}-logs-`));
    for (const [i, d] of daemons.entries()) {
        const name = `instance-${'ABC'[i]}`;
        let text = d.stderrText ?? '';
        let state;
        if (d.exitInfo || !d.proc) state = `exited ${JSON.stringify(d.exitInfo)}`;
        else if (procState(d.proc.pid) === 'T') state = `stopped (SIGSTOP, pid ${d.proc.pid})`;
        else if (await answers(d)) {
            // Not ready: its store is unavailable (Redis unreachable, or a reconciliation stuck).
            const ready = (await api(d.url, '/readyz', { ms: 2000 }).catch(() => ({}))).status;
            state = `answers /healthz, /readyz ${ready ?? 'no answer'} (pid ${d.proc.pid})`;
        }
        else {
            state = `does not answer /healthz within 2 s (pid ${d.proc.pid}, state ${procState(d.proc.pid)}); stacks in its log`;
            text += `\n--- stacks, taken when the run failed ---\n${stacks(d.proc.pid)}\n`;
        }
        t.diagnostic(`${name}: ${state}`);
        await writeFile(path.join(logs, `${name}.log`), text);
    }
    for (const [i, p] of proxies.entries()) {
        const pid = p.proc.pid;
        const state = p.exitInfo ? `exited ${JSON.stringify(p.exitInfo)}` : `running (pid ${pid}, state ${procState(pid)})`;
        t.diagnostic(`fault proxy of ${'ABC'[i]}: ${state}`);
        if (!p.exitInfo && String(err?.message).includes(`fault proxy (pid ${pid})`)) {
            await writeFile(path.join(logs, `proxy-${'ABC'[i]}.stacks`), stacks(pid));
        }
    }
    const ping = await rawCommand(redis.port, ['PING']).catch((e) => e.message);
    t.diagnostic(`redis-server: ${redis.proc?.exitCode === null && redis.proc?.signalCode === null ? 'running' : 'not running'}, PING: ${ping}`);
    await writeFile(path.join(logs, 'redis.log'), redis.output);
    t.diagnostic(`instance logs: ${logs}`);
}

test(`churn under faults (seed ${SEED}, ${SECONDS} s)`, { timeout: (SECONDS + 240) * 1000 }, async (t) => {
    // Two schedules: the clients' actions, and the faults (kind, target, duration, spacing), each
    // from its own generator so that a seed always injects the same faults, however the actions
    // interleave with them.
    const rnd = prng(SEED);
    const frnd = prng(SEED + 0x9e3779b9);
    const pick = (a, r = rnd) => a[Math.floor(r() * a.length)];
    const dir = await mkdtemp(path.join(os.tmpdir(), 'presenced-churn-'));
    const redis = new Redis(await freePort(), dir);
    const rx = await startReceiver();
    const pool = new ClientPool();
    const daemons = [];
    const proxies = [];
    const stats = { actions: 0, connects: 0, closes: 0, joins: 0, leaves: 0, statuses: 0, faults: {} };
    const faultLog = [];
    const fault = (k) => (stats.faults[k] = (stats.faults[k] ?? 0) + 1);
    const annotate = (err) => {
        let e = err;
        for (const d of daemons) e = d.annotate(e);
        return e;
    };
    // Where the run is, for the report of a failure: a run that fails or stops making progress
    // says in which phase, with the faults line to replay and the instances' logs.
    let phase = 'starting Redis';
    let stopChurn = false;
    // The observers' views: a disconnect counts against one until it is closing.
    const views = [];
    const closeViews = () => views.forEach((v) => (v.closing = true));
    const run = async () => {
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
        phase = 'starting the proxies and instances';
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
        phase = 'waiting for the instances to be ready';
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
        const observers = [];
        phase = 'connecting the observers';
        for (let i = 0; i < 2; i++) {
            const o = await withTimeout(observe(pool, daemons[i].url, `obs-${i}`, `observer on ${'AB'[i]}`), STEP_MS, `observer ${i} to connect`);
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
        for (const v of views) v.start(['obs-0', 'obs-1'], ROOMS);
        const hookSkip = rx.accepted().length; // the observers' own arrival
        phase = 'churning (no fault yet)';

        // The clients: live sockets and, per socket, the rooms its join acks put it in.
        const live = new Map(); // socket -> {user, rooms:Set, d}
        const actLog = [];
        const act = async () => {
            stats.actions++;
            const sockets = [...live.keys()];
            const r = rnd();
            if ((r < 0.3 && live.size < MAX_SOCKETS) || sockets.length === 0) {
                const di = Math.floor(rnd() * 3);
                const user = `u${Math.floor(rnd() * USERS)}`;
                const s = pool.socket(daemons[di].url, '/', { transports: ['websocket'], auth: { userId: user } });
                const ok = await new Promise((res) => {
                    s.once('connect', () => res(true));
                    s.once('connect_error', () => res(false));
                    setTimeout(() => res(false), 5000);
                });
                if (!ok || !s.connected) {
                    s.disconnect();
                    return;
                }
                stats.connects++;
                live.set(s, { user, rooms: new Set(), di });
                actLog.push(`${Date.now() % 100000} connect ${user} ${di} ${s.id}`);
                s.on('disconnect', (why) => {
                    actLog.push(`${Date.now() % 100000} disconnected ${user} ${di} ${why}`);
                    live.delete(s);
                });
                return;
            }
            const s = pick(sockets);
            const k = live.get(s);
            // One command at a time per socket, so that its acks say what it is in.
            if (!k || k.busy) return;
            k.busy = true;
            try {
                await command(s, k, r);
            } finally {
                k.busy = false;
            }
        };
        const command = async (s, k, r) => {
            if (r < 0.45) {
                actLog.push(`${Date.now() % 100000} close ${k.user} ${k.di} ${s.id}`);
                stats.closes++;
                live.delete(s);
                s.disconnect();
            } else if (r < 0.75) {
                const room = pick(ROOMS);
                const join = rnd() < 0.6;
                if (!join) k.rooms.delete(room); // the gateway leaves locally whatever the store says
                const a = await s
                    .timeout(10000)
                    .emitWithAck(join ? 'presence:room:join' : 'presence:room:leave', { room })
                    .catch(() => null);
                if (join) stats.joins++;
                else stats.leaves++;
                if (join && a?.ok && live.has(s)) k.rooms.add(room);
                actLog.push(`${Date.now() % 100000} ${join ? 'join' : 'leave'} ${k.user} ${k.di} ${s.id} ${room} ${JSON.stringify(a)}`);
            } else {
                stats.statuses++;
                await s.timeout(10000).emitWithAck('presence:status', { status: pick(STATUSES) }).catch(() => null);
            }
        };
        const churn = (async () => {
            const inflight = new Set();
            while (!stopChurn) {
                if (inflight.size >= 8) {
                    await sleep(10);
                    continue;
                }
                const p = act().catch(() => {});
                inflight.add(p);
                p.finally(() => inflight.delete(p));
                await sleep(5 + rnd() * 25);
            }
            await Promise.all(inflight);
        })();

        // The faults, one at a time: drawn from the seed, or replayed from CHURN_FAULTS (the
        // "faults:" line a failing run prints: "TIME KIND TARGET MS; ...", TIME in ms).
        const replay = (PRESETS[process.env.CHURN_FAULTS] ?? process.env.CHURN_FAULTS ?? '').split(';').map((f) => f.trim().split(/\s+/)).filter((f) => f.length >= 4);
        const until = Date.now() + SECONDS * 1000;
        const replayFrom = replay.length ? Date.now() + 1000 - Number(replay[0][0]) : 0;
        const replaying = replay.length > 0;
        while (replaying ? replay.length > 0 : Date.now() < until) {
            const next = replay.shift();
            await sleep(next ? Math.max(0, replayFrom + Number(next[0]) - Date.now()) : 500 + frnd() * 1500);
            const kinds = ['stall', 'cut', 'delay', 'stop', 'kill', 'redis-aof', 'hold'];
            if (process.env.CHURN_DATA_LOSS !== '0') kinds.push('redis-empty', 'redis-flush');
            const kind = next ? next[1] : pick(kinds, frnd);
            const i = next ? Number(next[2]) : Math.floor(frnd() * 3);
            const ms = next ? Number(next[3]) : 500 + Math.floor(frnd() * 4000);
            const delayMs = kind === 'delay' ? Number(next?.[4] ?? 50 + Math.floor(frnd() * 250)) : '';
            fault(kind);
            faultLog.push(`${Date.now() % 100000} ${kind} ${i} ${ms} ${delayMs}`.trim());
            phase = `churning: fault ${faultLog.length} (${faultLog.at(-1)})`;
            if (kind === 'stall' || kind === 'cut' || kind === 'hold') {
                await proxies[i].set(kind === 'hold' ? 'hold_replies' : kind);
                await sleep(ms);
                await proxies[i].set('pass');
            } else if (kind === 'delay') {
                await proxies[i].set(`delay ${delayMs}`);
                await sleep(ms);
                await proxies[i].set('pass');
            } else if (kind === 'stop') {
                daemons[i].signal('SIGSTOP');
                await sleep(ms);
                daemons[i].signal('SIGCONT');
            } else if (kind === 'kill') {
                // C only: the observers live on A and B.
                await withTimeout(daemons[2].kill('SIGKILL'), STEP_MS, 'instance C to exit on SIGKILL');
                await sleep(ms / 2);
                await daemons[2].start();
            } else if (kind === 'redis-aof') {
                await redis.stop();
                await sleep(ms / 4);
                await redis.start();
            } else if (kind === 'redis-empty') {
                // Redis loses its data while the churn goes on: killed, back empty.
                await redis.stop('SIGKILL');
                await sleep(ms / 4);
                await redis.start({ empty: true });
            } else {
                // ... or is emptied under the instances' feet, with no reconnection to tell them.
                await rawCommand(redis.port, ['FLUSHALL']);
            }
        }
        stopChurn = true;
        phase = "waiting for the clients' last actions";
        await withTimeout(churn, 3 * STEP_MS, phase);
        phase = 'settling';

        // Settle, then compare: the truth (live sockets), the store (HTTP and presence:query),
        // every observer's view.
        const users = [...Array(USERS).keys()].map((n) => `u${n}`).concat(['obs-0', 'obs-1']);
        const truth = () => {
            const online = new Set(['obs-0', 'obs-1']);
            const rooms = new Map(ROOMS.map((r) => [r, new Set(['obs-0', 'obs-1'])]));
            for (const [s, k] of live) {
                if (!s.connected) continue;
                online.add(k.user);
                for (const r of k.rooms) rooms.get(r).add(k.user);
            }
            return { online, rooms };
        };
        const compare = async () => {
            const liveIds = [...live.entries()].map(([s, k]) => `${k.user}:${s.id}:${s.connected}:${[...k.rooms]}`);
            lastLive = liveIds;
            const want = truth();
            const problems = [];
            const observed = [...views, hooks()];
            const q = await observers[0].timeout(10000).emitWithAck('presence:query', { userIds: users });
            const http = (await api(daemons[1].url, `/v1/users?ids=${users.join(',')}`)).json;
            for (const u of users) {
                const on = want.online.has(u);
                if (http?.users?.[u] !== on) problems.push(`HTTP says ${u} online=${http?.users?.[u]}, live sockets say ${on}`);
                if (q?.users?.[u]?.online !== on) problems.push(`presence:query says ${u} online=${q?.users?.[u]?.online}`);
                for (const v of observed) {
                    if (v.online.has(u) !== on) problems.push(`${v.label} sees ${u} online=${v.online.has(u)}, truth ${on}`);
                    if (on && v.online.has(u) && v.online.get(u) !== q?.users?.[u]?.status) {
                        problems.push(`${v.label} sees ${u} ${v.online.get(u)}, store ${q?.users?.[u]?.status}`);
                    }
                }
            }
            for (const room of ROOMS) {
                const page = (await api(daemons[0].url, `/v1/rooms/${room}?limit=1000`)).json;
                const got = [...(page?.users ?? [])].map((x) => (typeof x === 'string' ? x : x.userId)).sort();
                const w = [...want.rooms.get(room)].sort();
                if (JSON.stringify(got) !== JSON.stringify(w)) {
                    const diff = got.filter((x) => !w.includes(x)).concat(w.filter((x) => !got.includes(x)));
                    problems.push(`HTTP room ${room}: ${got}, live sockets: ${w} (differ: ${diff.map((x) => ` ${x} `).join(',')})`);
                }
                for (const v of observed) {
                    const seen = [...(v.rooms.get(room) ?? [])].sort();
                    if (JSON.stringify(seen) !== JSON.stringify(w)) problems.push(`${v.label} room ${room}: ${seen}, live: ${w}`);
                }
            }
            return problems;
        };
        // Webhooks (at least once: a receiver drops ids it has seen, as here), from the observers'
        // arrival on: the same view, built from what the receiver accepted so far.
        let redelivered = 0;
        let hookIds = new Set();
        const hooks = () => {
            const v = new View('webhooks');
            v.start(['obs-0', 'obs-1'], ROOMS);
            const ids = new Set();
            redelivered = 0;
            for (const e of rx.accepted().slice(hookSkip)) {
                if (ids.has(e.id)) {
                    redelivered++;
                    continue;
                }
                ids.add(e.id);
                if (e.type === 'reset') {
                    v.apply('presence:resync', { reset: true, seq: e.id });
                    continue;
                }
                const name = { 'user.online': 'presence:online', 'user.offline': 'presence:offline', 'user.update': 'presence:update', 'room.join': 'presence:room:join', 'room.leave': 'presence:room:leave' }[e.type];
                if (name) v.apply(name, { ...e, seq: e.id });
            }
            hookIds = ids;
            return v;
        };
        let problems = [];
        let lastLive = [];
        const settleEnd = Date.now() + 40000;
        for (;;) {
            problems = await compare().catch((e) => [`comparison failed: ${e.message}`]);
            if (problems.length === 0 || Date.now() > settleEnd) break;
            await sleep(500);
        }
        const hookView = hooks();
        const violations = views.concat(hookView).flatMap((v) => v.violations);
        t.diagnostic(`seed ${SEED}: ${stats.actions} actions (${stats.connects} connects, ${stats.closes} closes, ${stats.joins} joins, ${stats.leaves} leaves, ${stats.statuses} status changes); faults ${JSON.stringify(stats.faults)}; resets seen ${views.map((v) => v.resets)} (webhooks ${hookView.resets}); ${hookIds.size} webhook events (${redelivered} delivered again)`);
        t.diagnostic(`violations: ${problems.length + violations.length}`);
        for (const p of problems.slice(0, 40)) t.diagnostic(`problem: ${p}`);
        for (const v of violations.slice(0, 40)) t.diagnostic(`violation: ${v}`);
        if (problems.length) {
            const who = new Set(problems.flatMap((p) => [...p.matchAll(/ (u\d+|obs-\d) /g)].map((m) => m[1])));
            const about = (u) => (l) => l.split(' ')[2] === u || l.split(' ')[1] === 'reset';
            for (const u of who) t.diagnostic(`${u} at observer A: ${views[0].log.filter(about(u)).join('; ')}`);
            for (const u of who) t.diagnostic(`${u} by the test: ${actLog.filter((l) => l.includes(` ${u} `)).join('; ')}`);
            for (const u of who) t.diagnostic(`${u} live: ${lastLive.filter((l) => l.startsWith(`${u}:`)).join('; ')}`);
        }
        assert.deepEqual(problems, [], `after settling (seed ${SEED})`);
        assert.deepEqual(violations, [], `transitions announced exactly once (seed ${SEED})`);

        closeViews();
        // Everyone leaves (and their offline grace runs out); the instances shut down: only
        // retention keys stay.
        phase = 'everyone left: stopping the instances';
        pool.closeAll();
        await sleep(1000 + (LEASE_S * 1000) / 3 + 1000);
        for (const d of daemons) await d.stop();
        phase = 'checking the keys left in Redis';
        const left = await redis.keys();
        const allowed = async (k) => {
            const rest = k.slice(PREFIX.length);
            // Offline users' records (last_seen_retention), the event stream and its generation,
            // the rooms counter, the webhook lock (expires by itself), and the epoch of an instance
            // that was killed (expires after `ttl`). `count_multi` is deleted when it reaches 0.
            if (rest.startsWith('u:') || ['events', 'gen', 'count_rooms', 'whlock'].includes(rest)) return true;
            return rest.startsWith('e:') && Number(await rawCommand(redis.port, ['PTTL', k])) > 0;
        };
        const unexpected = [];
        for (const k of left) if (!(await allowed(k))) unexpected.push(k);
        assert.deepEqual(unexpected, [], 'keys left in Redis after everyone left');
        for (const c of ['count_multi', 'count_rooms']) {
            const v = await rawCommand(redis.port, ['GET', PREFIX + c]);
            assert.ok(v === null || v === '0', `${c} is ${v} after everyone left`);
        }
    };
    // Every step above is bounded; this is the net under them: a run that still has not finished
    // well before the test's own timeout fails with its report instead of hanging silently.
    let watchdogTimer;
    const watchdog = new Promise((_, reject) => {
        watchdogTimer = setTimeout(() => reject(new Error(`no progress: still ${phase} after ${RUN_BUDGET_S} s`)), RUN_BUDGET_S * 1000);
    });
    try {
        const running = run();
        running.catch(() => {}); // once the watchdog fired, its late failure is not news
        await Promise.race([running, watchdog]);
    } catch (err) {
        stopChurn = true;
        closeViews();
        await report(t, err, { phase, faultLog, daemons, proxies, redis }).catch((e) => t.diagnostic(`the report failed: ${e.message}`));
        throw annotate(err);
    } finally {
        clearTimeout(watchdogTimer);
        stopChurn = true;
        closeViews();
        pool.closeAll();
        for (const d of daemons) await d.kill('SIGKILL').catch(() => {});
        for (const p of proxies) await p.stop().catch(() => {});
        await redis.stop('SIGKILL').catch(() => {});
        await rx.close();
        await rm(dir, { recursive: true, force: true });
    }
});
