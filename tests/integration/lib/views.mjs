// Helpers for the presence client tests: seeded churn of users joining, leaving, changing status
// and coming and going in one room; the truth to compare views with, read over HTTP; a TCP proxy
// that moves a client between daemons; and a fake clock.
import net from 'node:net';
import assert from 'node:assert/strict';
import { io } from 'socket.io-client';
import { compareSeq } from '../../../clients/js/presence.js';
import { prng, sleep } from './presence.mjs';

export const KEY = 'views-key';
const STATUSES = ['online', 'away', 'busy', 'dnd', 'invisible'];

/** GET with the API key; returns the JSON body (throws on a non-2xx other than 404 → null). */
async function getJson(base, path) {
    const r = await fetch(base + path, { headers: { Authorization: `Bearer ${KEY}` } });
    if (r.status === 404) return null;
    if (!r.ok) throw new Error(`GET ${path}: ${r.status} ${await r.text()}`);
    return r.json();
}

/**
 * What a view of `room` (or, with userIds, of those users) must show, from the HTTP API: the
 * members of GET /v1/rooms/{room} (every page), each with the status and metadata of
 * GET /v1/users/{id}, invisible ones left out; sorted by id.
 */
export async function truth(base, { room, userIds }) {
    let ids = userIds ? [...userIds] : [];
    if (room) {
        let cursor = null;
        do {
            const q = cursor ? `?cursor=${encodeURIComponent(cursor)}&limit=500` : '?limit=500';
            const page = await getJson(base, `/v1/rooms/${encodeURIComponent(room)}${q}`);
            ids.push(...page.users);
            cursor = page.nextCursor;
        } while (cursor);
    }
    const out = [];
    for (const id of ids) {
        const u = await getJson(base, `/v1/users/${encodeURIComponent(id)}`);
        if (!u || !u.online || u.status === 'invisible') continue;
        out.push({ userId: id, status: u.status, metadata: u.metadata ?? null });
    }
    return out.sort((a, b) => (a.userId < b.userId ? -1 : 1));
}

/**
 * Waits until view() (sync or async) equals the truth twice in a row, the server quiet; fails
 * with both sides after `ms`.
 */
export async function settle(view, base, target, what, ms = 15000) {
    const deadline = Date.now() + ms;
    let last;
    for (;;) {
        const want = await truth(base, target);
        const got = await view();
        if (JSON.stringify(got) === JSON.stringify(want)) {
            const again = await truth(base, target);
            if (JSON.stringify(again) === JSON.stringify(want)) return want;
        }
        last = { got, want };
        if (Date.now() > deadline) {
            assert.deepEqual(last.got, last.want, `${what}: the view differs from the server after the churn settled`);
        }
        await sleep(100);
    }
}

/**
 * Users who connect (one or two sockets each, on any of `urls`), join and leave `room`, change
 * status and metadata, and disconnect, in an order drawn from `seed`.
 */
export class Churn {
    constructor({ urls, room, seed, users = 6, prefix = 'ch' }) {
        this.urls = urls;
        this.room = room;
        this.rnd = prng(seed);
        this.userIds = Array.from({ length: users }, (_, i) => `${prefix}-${seed}-u${i}`);
        this.sockets = []; // {userId, socket}
        this.ops = 0;
    }

    pick(arr) {
        return arr[Math.floor(this.rnd() * arr.length)];
    }

    async connect(userId) {
        const metadata = this.rnd() < 0.5 ? { n: Math.floor(this.rnd() * 100) } : undefined;
        const socket = io(this.pick(this.urls), { transports: ['websocket'], forceNew: true, reconnection: false, auth: { userId, metadata } });
        const s = { userId, socket };
        this.sockets.push(s);
        await new Promise((resolve) => {
            socket.once('connect', resolve);
            socket.once('connect_error', resolve);
        });
        return s;
    }

    async call(s, event, payload) {
        if (!s.socket.connected) return null;
        try {
            return await s.socket.timeout(5000).emitWithAck(event, payload);
        } catch {
            return null;
        }
    }

    /** One random operation. */
    async step() {
        this.ops++;
        const r = this.rnd();
        const live = this.sockets.filter((s) => s.socket.connected);
        const userId = this.pick(this.userIds);
        if (live.length === 0 || (r < 0.2 && this.sockets.filter((s) => s.userId === userId).length < 2)) {
            const s = await this.connect(userId);
            if (this.rnd() < 0.7) await this.call(s, 'presence:room:join', { room: this.room });
            return;
        }
        const s = this.pick(live);
        if (r < 0.3) {
            s.socket.disconnect();
            this.sockets.splice(this.sockets.indexOf(s), 1);
        } else if (r < 0.55) {
            await this.call(s, 'presence:room:join', { room: this.room });
        } else if (r < 0.75) {
            await this.call(s, 'presence:room:leave', { room: this.room });
        } else {
            // Invisible now and then, so that views see users vanish and come back.
            const status = this.rnd() < 0.15 ? 'invisible' : this.pick(STATUSES.slice(0, 4));
            const payload = this.rnd() < 0.4 ? { status, metadata: { n: Math.floor(this.rnd() * 100) } } : { status };
            await this.call(s, 'presence:status', payload);
        }
    }

    /** `n` operations, a few of them at once, with short random pauses. */
    async run(n, { during } = {}) {
        for (let i = 0; i < n; ) {
            const burst = 1 + Math.floor(this.rnd() * 3);
            const batch = [];
            for (let k = 0; k < burst && i < n; k++, i++) batch.push(this.step());
            await Promise.all(batch);
            if (during) await during(i);
            const pause = Math.floor(this.rnd() * 15);
            if (pause > 3) await sleep(pause);
        }
    }

    close() {
        for (const s of this.sockets) s.socket.disconnect();
        this.sockets = [];
    }
}

/**
 * A TCP proxy on a free port that forwards to one of several daemons; switchTo(i) sends new
 * connections to daemon i and cuts the open ones, so that clients reconnect there.
 */
export async function startProxy(ports) {
    const conns = new Set();
    let current = 0;
    const srv = net.createServer((c) => {
        const up = net.connect(ports[current], '127.0.0.1');
        const pair = { c, up };
        conns.add(pair);
        const drop = () => {
            c.destroy();
            up.destroy();
            conns.delete(pair);
        };
        c.on('error', drop).on('close', drop);
        up.on('error', drop).on('close', drop);
        c.pipe(up);
        up.pipe(c);
    });
    await new Promise((r) => srv.listen(0, '127.0.0.1', r));
    return {
        url: `http://127.0.0.1:${srv.address().port}`,
        switchTo(i) {
            current = i;
            for (const { c, up } of [...conns]) {
                c.destroy();
                up.destroy();
            }
        },
        close() {
            for (const { c, up } of conns) {
                c.destroy();
                up.destroy();
            }
            return new Promise((r) => srv.close(r));
        },
    };
}

/** A clock whose time only moves when told: {now, setTimeout, clearTimeout, advance(ms)}. */
export function fakeClock(start = 1_000_000) {
    let t = start;
    let nextId = 1;
    const timers = new Map(); // id -> {at, fn}
    return {
        now: () => t,
        setTimeout(fn, ms) {
            const id = nextId++;
            timers.set(id, { at: t + Math.max(0, ms), fn });
            return id;
        },
        clearTimeout(id) {
            timers.delete(id);
        },
        /** Move time forward, running each timer due on the way, in order. */
        advance(ms) {
            const end = t + ms;
            for (;;) {
                let due = null;
                for (const [id, x] of timers) if (x.at <= end && (!due || x.at < due[1].at)) due = [id, x];
                if (!due) break;
                timers.delete(due[0]);
                t = due[1].at;
                due[1].fn();
            }
            t = end;
        },
    };
}

/**
 * The server's view of `room` at every sequence, rebuilt from the single events that a member of
 * the room receives with broadcast = all: room joins and leaves give the members, online and
 * update events the status and metadata. Others get no online or update event of an invisible
 * user, and an offline when a user turns invisible, so a user whose state it does not know is an
 * invisible one. Attach before the socket connects, and before anyone joins the room.
 */
export class Oracle {
    constructor(socket, room) {
        this.room = room;
        this.members = new Set();
        this.state = new Map(); // userId -> {status, metadata}
        this.history = []; // [{seq, list}], in seq order
        socket.onAny((event, p) => this.on(event, p));
    }

    on(event, p) {
        if (!p || typeof p.seq !== 'string') return;
        if (event === 'presence:online' || event === 'presence:update') this.state.set(p.userId, { status: p.status, metadata: p.metadata ?? null });
        else if (event === 'presence:offline') this.state.delete(p.userId);
        else if (event === 'presence:room:join' && p.room === this.room) this.members.add(p.userId);
        else if (event === 'presence:room:leave' && p.room === this.room) this.members.delete(p.userId);
        else return;
        this.history.push({ seq: p.seq, event: `${event} ${p.userId}`, list: this.list() });
    }

    list() {
        return [...this.members]
            .filter((id) => this.state.has(id))
            .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
            .map((id) => ({ userId: id, ...this.state.get(id) }));
    }

    /** The view after the last event at or before `seq` ([] before any). */
    at(seq) {
        let found = [];
        for (const h of this.history) {
            if (compareSeq(h.seq, seq) > 0) break;
            found = h.list;
        }
        return found;
    }
}

/**
 * Records every state view `p` shows to its listeners, with the sequence it claims to be at,
 * for Oracle.at() to check afterwards: a view may only show states the server had.
 */
export function recordStates(p) {
    const states = [];
    const take = () => states.push({ seq: p.seq, list: p.list() });
    for (const e of ['join', 'leave', 'update', 'sync']) p.on(e, take);
    return states;
}
