// Helpers for the presence tests: a per-file environment that starts daemons (memory or Redis
// store, one key prefix per test so tests sharing a redis-server never see each other's state),
// clients that record every presence:* event they receive, commands with bounded acks, and
// socket.io-clients living in child Node.js processes (to freeze or kill them). To check that
// something happened exactly once (or not at all), put up a fence (lib/fence.mjs,
// PresenceEnv.fence) and count after it; never sleep and count.
import { spawn } from 'node:child_process';
import assert from 'node:assert/strict';
import { isDeepStrictEqual } from 'node:util';
import { startDaemon, waitReady } from './daemon.mjs';
import { Topology } from './topology.mjs';
import { ClientPool, waitFor, withTimeout, sleep, DEFAULT_WAIT_MS } from './client.mjs';
import { fence, waitSockets, isFence } from './fence.mjs';

export { sleep, waitFor, withTimeout, DEFAULT_WAIT_MS, fence, waitSockets, waitReady };

export const STORES = ['memory', 'redis'];

/** Error codes of the presence commands. */
export const E = {
    INVALID: 'invalid_argument',
    NOT_IDENTIFIED: 'not_identified',
    FORBIDDEN: 'forbidden',
    UNAVAILABLE: 'store_unavailable',
    ALREADY: 'already_identified',
};

/** True when every key of `where` equals (deeply) the same key of `data`. */
function fieldsMatch(data, where) {
    if (!where) return true;
    if (typeof where === 'function') return where(data);
    if (!data || typeof data !== 'object') return false;
    return Object.entries(where).every(([k, v]) => isDeepStrictEqual(data[k], v));
}

/**
 * Records every presence:* event a socket receives, in arrival order, as {event, data, seq, at}.
 * The store's sequence (`seq`, on every presence event) is taken out of data into its own field,
 * so that payload comparisons stay about the payload; its presence and order are checked by the
 * presence client tests. Attach before the socket connects so that nothing is missed. Events
 * about fence users (lib/fence.mjs) go to `fenceEvents` instead of `events`.
 */
export class Recorder {
    constructor(socket, label = '') {
        this.label = label;
        this.events = [];
        this.fenceEvents = [];
        this.waiters = new Set();
        socket.onAny((event, ...args) => {
            if (!String(event).startsWith('presence:')) return;
            let data = args[0];
            let seq;
            if (data && typeof data === 'object' && 'seq' in data) ({ seq, ...data } = data);
            const e = { event, data, seq, at: Date.now() };
            if (isFence(e.data?.userId)) this.fenceEvents.push(e);
            else this.events.push(e);
            for (const w of this.waiters) w();
        });
    }

    /** Recorded events of that name whose payload matches `where` (object of fields, or function). */
    list(event, where) {
        return this.events.filter((e) => (event == null || e.event === event) && fieldsMatch(e.data, where));
    }

    count(event, where) {
        return this.list(event, where).length;
    }

    /** Events mentioning the user (payload userId), any name. */
    about(userId) {
        return this.events.filter((e) => e.data && e.data.userId === userId);
    }

    describe(max = 30) {
        const tail = this.events.slice(-max).map((e) => `${e.event} ${JSON.stringify(e.data)}`);
        return `${this.label || 'client'} received ${this.events.length} presence events${tail.length ? ':\n  ' + tail.join('\n  ') : ''}`;
    }

    /**
     * Resolves with the n-th (1-based) recorded event matching, already received or still to come;
     * rejects after ms.
     */
    waitCount(event, where, n = 1, ms = DEFAULT_WAIT_MS) {
        return new Promise((resolve, reject) => {
            let timer;
            const check = () => {
                const l = this.list(event, where);
                if (l.length >= n) {
                    clearTimeout(timer);
                    this.waiters.delete(check);
                    resolve(l[n - 1]);
                    return true;
                }
                return false;
            };
            if (check()) return;
            this.waiters.add(check);
            timer = setTimeout(() => {
                this.waiters.delete(check);
                reject(
                    new Error(
                        `timed out after ${ms} ms waiting for ${event} #${n} matching ${typeof where === 'function' ? 'a predicate' : JSON.stringify(where)}; ${this.describe()}`,
                    ),
                );
            }, ms);
        });
    }

    /** The first matching event (already received or coming within ms). */
    waitFor(event, where, ms = DEFAULT_WAIT_MS) {
        return this.waitCount(event, where, 1, ms);
    }

    /** Asserts that no matching event was received (so far). */
    assertNone(event, where, what = '') {
        const l = this.list(event, where);
        assert.equal(
            l.length,
            0,
            `${this.label}: expected no ${event ?? 'event'} ${JSON.stringify(where ?? {})}${what ? ' (' + what + ')' : ''}, got ${l
                .map((e) => `${e.event} ${JSON.stringify(e.data)}`)
                .join('; ')}`,
        );
    }

    assertCount(event, where, n, what = '') {
        const l = this.list(event, where);
        assert.equal(
            l.length,
            n,
            `${this.label}: expected ${n} × ${event} ${JSON.stringify(where ?? {})}${what ? ' (' + what + ')' : ''}; ${this.describe()}`,
        );
    }
}

/** A socket.io-client socket, its recorder and command helpers. */
export class PClient {
    constructor(socket, { userId = null, label } = {}) {
        this.socket = socket;
        this.userId = userId;
        this.label = label ?? (userId ? `client(${userId})` : 'anonymous client');
        this.rec = new Recorder(socket, this.label);
        this.disconnects = []; // reasons, in order
        this.pings = 0; // Engine.IO pings received
        socket.on('disconnect', (reason) => this.disconnects.push(reason));
        socket.io.on('ping', () => this.pings++);
    }

    get id() {
        return this.socket.id;
    }

    get connected() {
        return this.socket.connected;
    }

    /** Emits event with payload and resolves with the ack's first argument; rejects without ack in ms. */
    async call(event, payload, ms = DEFAULT_WAIT_MS) {
        if (!this.socket.connected) throw new Error(`${this.label}: not connected, cannot send ${event}`);
        try {
            return await this.socket.timeout(ms).emitWithAck(event, payload);
        } catch (err) {
            throw new Error(`${this.label}: ${event} ${JSON.stringify(payload)?.slice(0, 200)}: no ack within ${ms} ms (${err.message})`);
        }
    }

    /** call() and assert {ok: true}; returns the ack. */
    async ok(event, payload, ms) {
        const r = await this.call(event, payload, ms);
        assert.ok(r && typeof r === 'object', `${this.label}: ${event} ack is not an object: ${JSON.stringify(r)}`);
        assert.equal(r.ok, true, `${this.label}: ${event} ${JSON.stringify(payload)?.slice(0, 200)} answered ${JSON.stringify(r)}`);
        return r;
    }

    /** call() and assert {ok: false, error: {code, message}}; returns the ack. */
    async fails(event, payload, code, ms) {
        const r = await this.call(event, payload, ms);
        assert.ok(r && typeof r === 'object', `${this.label}: ${event} ack is not an object: ${JSON.stringify(r)}`);
        assert.equal(r.ok, false, `${this.label}: ${event} ${JSON.stringify(payload)?.slice(0, 200)} should fail with ${code}, answered ${JSON.stringify(r)}`);
        assert.ok(r.error && typeof r.error === 'object', `${this.label}: ${event}: no error object in ${JSON.stringify(r)}`);
        assert.equal(r.error.code, code, `${this.label}: ${event} ${JSON.stringify(payload)?.slice(0, 200)}: ${JSON.stringify(r)}`);
        assert.equal(typeof r.error.message, 'string', `${this.label}: ${event}: error.message is not a string: ${JSON.stringify(r)}`);
        return r;
    }

    /** presence:query; asserts ok and a users object with exactly the ids asked; returns users. */
    async query(userIds, ms) {
        const r = await this.ok('presence:query', { userIds }, ms);
        assert.ok(r.users && typeof r.users === 'object' && !Array.isArray(r.users), `presence:query: users is not an object: ${JSON.stringify(r).slice(0, 300)}`);
        const want = [...new Set(userIds)].sort();
        const got = Object.keys(r.users).sort();
        assert.deepEqual(got.length, want.length, `presence:query answered ${got.length} users for ${want.length} ids`);
        assert.deepEqual(got, want, 'presence:query answers exactly the ids asked');
        return r.users;
    }

    /** presence:query for one user; returns {online, status, lastSeen}. */
    async queryOne(userId, ms) {
        return (await this.query([userId], ms))[userId];
    }

    /** presence:room:query; asserts the answer's shape; returns {onlineCount, ids (sorted user ids)}. */
    async roomQuery(room, ms) {
        const r = await this.ok('presence:room:query', { room }, ms);
        assert.equal(r.room, room, `presence:room:query answer names the room: ${JSON.stringify(r)}`);
        assert.ok(Number.isInteger(r.onlineCount), `onlineCount is an integer: ${JSON.stringify(r)}`);
        assert.ok(Array.isArray(r.users), `users is an array: ${JSON.stringify(r)}`);
        return { onlineCount: r.onlineCount, ids: roomUserIds(r.users) };
    }

    disconnect() {
        this.socket.disconnect();
    }
}

/** A room:query `users` entry is a user id, or an object with a userId: returns the sorted ids. */
export function roomUserIds(users) {
    return users
        .map((u) => {
            if (typeof u === 'string') return u;
            if (u && typeof u === 'object' && typeof u.userId === 'string') return u.userId;
            throw new Error(`presence:room:query: unexpected users entry ${JSON.stringify(u)}`);
        })
        .sort();
}

/** Asserts the shape of a presence:query entry of an online user. */
export function assertOnline(entry, status = 'online', what = '') {
    assert.ok(entry, `no query entry ${what}`);
    assert.equal(entry.online, true, `online ${what}: ${JSON.stringify(entry)}`);
    assert.equal(entry.status, status, `status ${what}: ${JSON.stringify(entry)}`);
    assertTime(entry.lastSeen, `lastSeen ${what}`);
}

/** Asserts the shape of a presence:query entry of an offline user (seen before unless neverSeen). */
export function assertOffline(entry, { neverSeen = false } = {}, what = '') {
    assert.ok(entry, `no query entry ${what}`);
    assert.equal(entry.online, false, `online ${what}: ${JSON.stringify(entry)}`);
    assert.equal(entry.status, 'offline', `status ${what}: ${JSON.stringify(entry)}`);
    if (neverSeen) assert.equal(entry.lastSeen, null, `lastSeen of a never seen user ${what}: ${JSON.stringify(entry)}`);
    else assertTime(entry.lastSeen, `lastSeen ${what}`);
}

/** A plausible ms-since-epoch timestamp of this test run (same machine clock, 5 s tolerance). */
export function assertTime(v, what = 'timestamp') {
    assert.ok(Number.isInteger(v), `${what} is an integer ms timestamp: ${JSON.stringify(v)}`);
    assert.ok(v > Date.now() - 10 * 60 * 1000 && v < Date.now() + 5000, `${what} ${v} is close to now (${Date.now()})`);
}

/** Polls fn() (async, returns truthy when done) every `every` ms until it holds; throws after ms. */
export async function waitUntil(fn, { ms = DEFAULT_WAIT_MS, every = 50, what = 'condition' } = {}) {
    const deadline = Date.now() + ms;
    let last;
    for (;;) {
        try {
            last = await fn();
            if (last) return last;
        } catch (err) {
            last = err;
        }
        if (Date.now() >= deadline) {
            throw new Error(`timed out after ${ms} ms waiting for ${what}${last instanceof Error ? ` (last error: ${last.message})` : ''}`);
        }
        await sleep(every);
    }
}

/** A seeded PRNG (mulberry32) so that a failing random schedule can be replayed. */
export function prng(seed) {
    let a = seed >>> 0;
    return () => {
        a = (a + 0x6d2b79f5) >>> 0;
        let t = a;
        t = Math.imul(t ^ (t >>> 15), t | 1);
        t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
        return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
}

// The socket.io-client a child process loads (the same pinned package as ours).
const CLIENT_MODULE_URL = import.meta.resolve('socket.io-client');

const CHILD_SRC = `
const [clientUrl, url, userId, transport] = process.argv.slice(1);
const { io } = await import(clientUrl);
const out = (o) => process.stdout.write(JSON.stringify(o) + '\\n');
const s = io(url, { transports: [transport], upgrade: false, reconnection: false, forceNew: true, auth: { userId } });
s.on('connect', () => out({ connected: s.id }));
s.on('connect_error', (e) => { out({ error: e.message }); process.exit(1); });
s.on('disconnect', (r) => out({ disconnect: r }));
s.io.on('ping', () => out({ ping: true }));
`;

/**
 * A socket.io-client in a child Node.js process, identified as userId. Resolves once connected,
 * with {proc, socketId, lines, pings}: `pings` counts the Engine.IO pings it received (the daemon
 * sends the next one only after the previous pong, so two pings mean a pong was accepted). The
 * caller (PresenceEnv) kills it at cleanup.
 */
export async function spawnChildClient(url, userId, { transport = 'websocket', ms = 10000 } = {}) {
    const proc = spawn(process.execPath, ['--input-type=module', '-e', CHILD_SRC, CLIENT_MODULE_URL, url, userId, transport], {
        stdio: ['ignore', 'pipe', 'pipe'],
    });
    const child = { proc, socketId: null, lines: [], stderr: '', pings: 0 };
    proc.stderr.setEncoding('utf8');
    proc.stderr.on('data', (d) => (child.stderr = (child.stderr + d).slice(-4000)));
    proc.stdout.setEncoding('utf8');
    let buf = '';
    const connected = new Promise((resolve, reject) => {
        proc.stdout.on('data', (d) => {
            buf += d;
            let nl;
            while ((nl = buf.indexOf('\n')) >= 0) {
                let line;
                try {
                    line = JSON.parse(buf.slice(0, nl));
                } catch {
                    line = { text: buf.slice(0, nl) }; // not ours (e.g. DEBUG output)
                }
                buf = buf.slice(nl + 1);
                if (line.ping) child.pings++;
                else child.lines.push(line);
                if (line.connected) resolve(line.connected);
                if (line.error) reject(new Error(`child client ${userId}: connect_error ${line.error}`));
            }
        });
        proc.once('exit', (code, sig) => reject(new Error(`child client ${userId} exited (code ${code}, signal ${sig}): ${child.stderr}`)));
    });
    connected.catch(() => {});
    child.socketId = await withTimeout(connected, ms, `child client ${userId} connecting`);
    return child;
}

let prefixSeq = 0;

/**
 * Everything one test file needs for one store: an optional shared redis-server, and per test the
 * daemons, clients and child processes it started (cleanup() after each test, teardown() at the end).
 * Each test gets a fresh Redis key prefix, so state left by one test never reaches the next.
 */
export class PresenceEnv {
    constructor(store) {
        if (!STORES.includes(store)) throw new Error(`unknown store ${store}`);
        this.store = store;
        this.redis = null;
        this.pool = new ClientPool();
        this.daemons = [];
        this.children = [];
        this.prefix = null;
        this.newPrefix();
    }

    newPrefix() {
        this.prefix = `pt${process.pid}-${++prefixSeq}:`;
    }

    async setup() {
        if (this.store === 'redis' && !this.redis) this.redis = await Topology.start();
    }

    /** Starts a daemon with this env's store (Redis: the shared server and the test's prefix). */
    async daemon(set = {}, { waitReady: wait = true } = {}) {
        const extraArgs = [];
        const all = { ...set };
        if (this.store === 'redis') {
            if (!this.redis) throw new Error('PresenceEnv.setup() was not called');
            extraArgs.push('--store', 'redis', '--redis', this.redis.url);
            all.redis_prefix ??= this.prefix;
        } else {
            extraArgs.push('--store', 'memory');
        }
        const d = await startDaemon({ set: all, extraArgs, ready: false });
        this.daemons.push(d);
        if (wait) await d.wrap(() => waitReady(all.admin_listen ? `http://${all.admin_listen}` : d.url))();
        return d;
    }

    /**
     * A fence (lib/fence.mjs) through daemon d, seen by every sink (PClients, SSE streams, webhook
     * receivers): counts taken after it are final. Returns the fence's user id.
     */
    fence(d, sinks, opts) {
        return fence(d.url, sinks, opts);
    }

    /** SIGKILLs a daemon of this test (cleanup then does not expect a clean exit from it). */
    async killDaemon(d, sig = 'SIGKILL') {
        d.killedOnPurpose = true;
        return d.kill(sig);
    }

    /**
     * A client of daemon d; identified when userId is given (auth {userId, metadata}). Records
     * presence events from before its connection. Resolves once connected unless connect: false.
     * Options: transports (default WebSocket only), auth (replaces the auth object), label,
     * any socket.io-client option.
     */
    async client(d, { userId, metadata, auth, label, connect = true, ...opts } = {}) {
        let a = auth;
        if (a === undefined && userId !== undefined) a = metadata === undefined ? { userId } : { userId, metadata };
        const s = this.pool.socket(d.url, '/', {
            transports: ['websocket'],
            upgrade: false,
            ...(a === undefined ? {} : { auth: a }),
            ...opts,
        });
        const c = new PClient(s, { userId: typeof userId === 'string' ? userId : null, label });
        if (connect && !s.connected) await waitFor(s, 'connect', { failOn: 'connect_error' });
        return c;
    }

    /** Connects `n` clients concurrently (each spec as for client()). */
    async clients(d, specs) {
        return Promise.all(specs.map((spec) => this.client(d, spec)));
    }

    /** Stops tracking a client that was disconnected for good (long loops open many). */
    forget(c) {
        this.pool.sockets.delete(c.socket);
    }

    async child(d, userId, opts) {
        const c = await spawnChildClient(d.url, userId, opts);
        this.children.push(c);
        return c;
    }

    /** Wraps a test body so that its failure carries the stderr of every daemon of the test. */
    wrap(fn) {
        return async (...args) => {
            try {
                return await fn(...args);
            } catch (err) {
                let e = err;
                for (const d of this.daemons) e = d.annotate(e);
                throw e;
            }
        };
    }

    /** After each test: close clients, kill children, stop daemons (clean exit expected). */
    async cleanup() {
        this.pool.closeAll();
        for (const c of this.children.splice(0)) {
            if (c.proc.exitCode === null && c.proc.signalCode === null) {
                c.proc.kill('SIGKILL');
                await new Promise((r) => c.proc.once('exit', r));
            }
        }
        const errors = [];
        if (this.redis?.isDown) {
            // A test stopped Redis and failed before starting it again: bring it back where the
            // daemons expect it, so that they can shut down cleanly and the next test has one.
            try {
                await this.redis.up();
            } catch (err) {
                errors.push(err);
            }
        }
        for (const d of this.daemons.splice(0)) {
            try {
                if (d.killedOnPurpose) await d.kill('SIGKILL');
                else await d.stop();
            } catch (err) {
                errors.push(err);
            }
        }
        this.newPrefix();
        if (errors.length) throw errors[0];
    }

    async teardown() {
        await this.cleanup().catch(() => {});
        if (this.redis) await this.redis.stop();
        this.redis = null;
    }
}
