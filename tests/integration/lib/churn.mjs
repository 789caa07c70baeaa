// Users churning across instances, and the oracle that judges them (docs/presence-model.md,
// "Invariants"): real socket.io-clients connect, join and leave rooms, change status and close on
// several instances; observers in every room record the events they receive. Afterwards the
// truth (the live sockets and the rooms their join acks put them in) must equal the store's
// answers (presence:query, HTTP /v1) and every observer's view built from its events, and every
// transition must have been announced once (per user, online and offline alternate; per user and
// room, join and leave).
import { api } from './http.mjs';
import { sleep } from './client.mjs';
import { isFence } from './fence.mjs';
import { compareSeq } from '../../../clients/js/presence.js';

const STATUSES = ['online', 'away', 'busy', 'dnd'];

/**
 * What one observer was told, built only from the events it received, as docs/protocol.md tells
 * a client to: a reset (presence:resync {reset: true}, Redis lost its data) voids it, and the
 * events after it rebuild it from nothing. While it is built it checks that every transition is
 * announced once per generation (per user, online and offline alternate starting with online;
 * per user and room, join and leave alternate starting with join), that an update, a room join
 * or an offline only comes for a user it has online (an offline only once the user's rooms were
 * left), and that sequences only go up; `violations` lists what broke that. Also a fence sink
 * (lib/fence.mjs): fence events are kept apart in `fenceEvents`.
 */
export class View {
    constructor(label) {
        this.label = label;
        this.fenceEvents = [];
        this.violations = [];
        this.log = [];
        this.resets = 0;
        this.lastSeq = null;
        this.clear();
    }

    /** A reset: what the observer held is void. */
    clear() {
        this.online = new Map(); // user -> status
        this.rooms = new Map(); // room -> Set(user)
        this.seq = new Map(); // user -> '+-+-'; user@room -> 'jljl'
    }

    /** Takes the known state of the start (`users` online and in every room of `rooms`), as if
     * announced, and forgets the violations so far. */
    start(users, rooms) {
        for (const u of users) {
            this.online.set(u, 'online');
            this.seq.set(u, '+');
        }
        for (const r of rooms) {
            this.rooms.set(r, new Set(users));
            for (const u of users) this.seq.set(`${u}@${r}`, 'j');
        }
        this.violations = [];
    }

    problem(text) {
        this.violations.push(`${this.label}: ${text}`);
    }

    note(key, c, first) {
        const s = (this.seq.get(key) ?? '') + c;
        this.seq.set(key, s);
        const prev = s.length > 1 ? s[s.length - 2] : null;
        if ((prev === null && c !== first) || (prev !== null && prev === c)) {
            this.problem(`${key}: ${s} (a transition announced twice or missed)`);
        }
    }

    /** Sequences go up, a reset's too. */
    order(seq, what) {
        if (typeof seq !== 'string') {
            this.problem(`${what} without a seq`);
            return;
        }
        if (this.lastSeq !== null && compareSeq(seq, this.lastSeq) <= 0) this.problem(`${what} at seq ${seq}, after ${this.lastSeq}`);
        this.lastSeq = seq;
    }

    userRooms(u) {
        return [...this.rooms].filter(([, m]) => m.has(u)).map(([r]) => r);
    }

    apply(event, d) {
        if (event === 'presence:resync' && d?.reset === true) {
            this.log.push(`${Date.now() % 100000} reset ${d.seq}`);
            this.resets++;
            this.order(d.seq, 'the reset');
            this.clear();
            return;
        }
        if (!d || typeof d.userId !== 'string') return;
        const u = d.userId;
        this.order(d.seq, `${event} ${u}`);
        if (isFence(u)) {
            this.fenceEvents.push({ event, data: d });
            return;
        }
        this.log.push(`${Date.now() % 100000} ${event} ${u} ${d.room ?? d.status ?? ''} ${d.seq}`);
        if (event === 'presence:online') {
            this.note(u, '+', '+');
            this.online.set(u, d.status);
        } else if (event === 'presence:offline') {
            this.note(u, '-', '+');
            const left = this.userRooms(u);
            if (left.length) this.problem(`${u} offline while still in ${left}`);
            this.online.delete(u);
        } else if (event === 'presence:update') {
            if (!this.online.has(u)) this.problem(`an update for ${u}, who is not online`);
            else this.online.set(u, d.status);
        } else if (event === 'presence:room:join') {
            this.note(`${u}@${d.room}`, 'j', 'j');
            if (!this.online.has(u)) this.problem(`${u} joins ${d.room} while not online`);
            if (!this.rooms.has(d.room)) this.rooms.set(d.room, new Set());
            this.rooms.get(d.room).add(u);
        } else if (event === 'presence:room:leave') {
            this.note(`${u}@${d.room}`, 'l', 'j');
            this.rooms.get(d.room)?.delete(u);
        }
    }
}

/**
 * An observer: a socket identified as `userId` on the instance at `url`, whose events build
 * `view` (a View labelled `label`). Resolves once connected. Losing its connection before
 * `view.closing` is set is a violation: it misses events, and its view means nothing after.
 */
export async function observe(pool, url, userId, label) {
    const view = new View(label);
    const socket = pool.socket(url, '/', { transports: ['websocket'], auth: { userId } });
    socket.onAny((event, d) => view.apply(event, d));
    socket.on('disconnect', (why) => {
        if (!view.closing) view.problem(`disconnected (${why})`);
    });
    await new Promise((r, j) => {
        socket.once('connect', r);
        socket.once('connect_error', j);
    });
    return { socket, view };
}

/**
 * Random actions by `users` on the instances at `urls` (pick with `rnd`, a prng), a few in flight
 * at a time, one command at a time per socket so that its acks say which rooms it is in.
 */
export class Churner {
    constructor({ pool, urls, users, rooms, rnd, maxSockets = 40 }) {
        Object.assign(this, { pool, urls, users, rooms, rnd, maxSockets });
        this.live = new Map(); // socket -> {user, rooms: Set, di, busy}
        this.log = [];
        this.stats = { actions: 0, connects: 0, closes: 0, joins: 0, leaves: 0, statuses: 0, failed: 0 };
        this.running = null;
        this.stopping = false;
        this.paused = false; // while set, no action starts (those in flight go on)
    }

    pick(a) {
        return a[Math.floor(this.rnd() * a.length)];
    }

    async connect() {
        const di = Math.floor(this.rnd() * this.urls.length);
        const user = this.pick(this.users);
        const s = this.pool.socket(this.urls[di], '/', { transports: ['websocket'], auth: { userId: user } });
        const ok = await new Promise((res) => {
            s.once('connect', () => res(true));
            s.once('connect_error', () => res(false));
            setTimeout(() => res(false), 5000);
        });
        if (!ok || !s.connected) {
            this.stats.failed++;
            s.disconnect();
            return;
        }
        this.stats.connects++;
        this.live.set(s, { user, rooms: new Set(), di });
        this.log.push(`${Date.now() % 100000} connect ${user} ${di} ${s.id}`);
        s.on('disconnect', (why) => {
            this.log.push(`${Date.now() % 100000} disconnected ${user} ${di} ${why}`);
            this.live.delete(s);
        });
    }

    async command(s, k, r) {
        if (r < 0.45) {
            this.log.push(`${Date.now() % 100000} close ${k.user} ${k.di} ${s.id}`);
            this.stats.closes++;
            this.live.delete(s);
            s.disconnect();
        } else if (r < 0.75) {
            const room = this.pick(this.rooms);
            const join = this.rnd() < 0.6;
            if (!join) k.rooms.delete(room); // the gateway leaves locally whatever the store says
            const a = await s
                .timeout(10000)
                .emitWithAck(join ? 'presence:room:join' : 'presence:room:leave', { room })
                .catch(() => null);
            if (join) this.stats.joins++;
            else this.stats.leaves++;
            if (!a?.ok) this.stats.failed++;
            if (join && a?.ok && this.live.has(s)) k.rooms.add(room);
            this.log.push(`${Date.now() % 100000} ${join ? 'join' : 'leave'} ${k.user} ${k.di} ${s.id} ${room} ${JSON.stringify(a)}`);
        } else {
            this.stats.statuses++;
            const a = await s.timeout(10000).emitWithAck('presence:status', { status: this.pick(STATUSES) }).catch(() => null);
            if (!a?.ok) this.stats.failed++;
        }
    }

    async act() {
        this.stats.actions++;
        const sockets = [...this.live.keys()];
        const r = this.rnd();
        if ((r < 0.3 && this.live.size < this.maxSockets) || sockets.length === 0) return this.connect();
        const s = this.pick(sockets);
        const k = this.live.get(s);
        if (!k || k.busy) return;
        k.busy = true;
        try {
            await this.command(s, k, r);
        } finally {
            k.busy = false;
        }
    }

    /** Starts acting until stop(). */
    start() {
        this.stopping = false;
        this.running = (async () => {
            const inflight = new Set();
            while (!this.stopping) {
                if (this.paused || inflight.size >= 8) {
                    await sleep(10);
                    continue;
                }
                const p = this.act().catch(() => {});
                inflight.add(p);
                p.finally(() => inflight.delete(p));
                await sleep(5 + this.rnd() * 25);
            }
            await Promise.all(inflight);
        })();
    }

    /** Stops starting actions; resolves once those in flight have ended. */
    async stop() {
        this.stopping = true;
        await this.running;
    }

    /** Who is online and who is in which room, according to the live sockets. */
    truth(alwaysOn = []) {
        const online = new Set(alwaysOn);
        const rooms = new Map(this.rooms.map((r) => [r, new Set(alwaysOn)]));
        for (const [s, k] of this.live) {
            if (!s.connected) continue;
            online.add(k.user);
            for (const r of k.rooms) rooms.get(r).add(k.user);
        }
        return { online, rooms };
    }

    /** The test's own log lines about `user`. */
    about(user) {
        return this.log.filter((l) => l.includes(` ${user} `));
    }

    /** The live sockets of `user`: "user:sid:connected:rooms". */
    liveOf(user) {
        return [...this.live.entries()].filter(([, k]) => k.user === user).map(([s, k]) => `${user}:${s.id}:${s.connected}:${[...k.rooms]}`);
    }
}

/**
 * The differences between `want` (Churner.truth) and what the store answers (presence:query
 * through `observer`, GET /v1/users on `usersUrl`, GET /v1/rooms on `roomsUrl`) and every view
 * shows, for `users` and `rooms`; with `statuses`, the views' statuses too. Empty when all agree.
 */
export async function compareAll({ want, observer, usersUrl, roomsUrl, views, users, rooms, statuses = true }) {
    const problems = [];
    const q = await observer.timeout(10000).emitWithAck('presence:query', { userIds: users });
    const http = (await api(usersUrl, `/v1/users?ids=${users.join(',')}`)).json;
    for (const u of users) {
        const on = want.online.has(u);
        if (http?.users?.[u] !== on) problems.push(`HTTP says ${u} online=${http?.users?.[u]}, live sockets say ${on}`);
        if (q?.users?.[u]?.online !== on) problems.push(`presence:query says ${u} online=${q?.users?.[u]?.online}`);
        for (const v of views) {
            if (v.online.has(u) !== on) problems.push(`${v.label} sees ${u} online=${v.online.has(u)}, truth ${on}`);
            if (statuses && on && q?.users?.[u] && v.online.get(u) !== q.users[u].status) {
                problems.push(`${v.label} sees ${u} ${v.online.get(u)}, store ${q.users[u].status}`);
            }
        }
    }
    for (const room of rooms) {
        const page = (await api(roomsUrl, `/v1/rooms/${room}?limit=1000`)).json;
        const got = [...(page?.users ?? [])].map((x) => (typeof x === 'string' ? x : x.userId)).sort();
        const w = [...want.rooms.get(room)].sort();
        if (JSON.stringify(got) !== JSON.stringify(w)) {
            const diff = got.filter((x) => !w.includes(x)).concat(w.filter((x) => !got.includes(x)));
            problems.push(`HTTP room ${room}: ${got}, live sockets: ${w} (differ: ${diff.map((x) => ` ${x} `).join(',')})`);
        }
        for (const v of views) {
            const seen = [...(v.rooms.get(room) ?? [])].sort();
            if (JSON.stringify(seen) !== JSON.stringify(w)) problems.push(`${v.label} room ${room}: ${seen}, live: ${w}`);
        }
    }
    return problems;
}
