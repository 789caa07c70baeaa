// presenced presence client: a live view of who is in a room (or which of a list of users are
// online) on top of a socket.io-client socket connected to presenced.
//
//   import { presence } from "presenced-client";
//   const p = presence(socket, { room: "doc-42" });
//   p.on("sync", (users) => render(users));
//
// How it stays right (docs/protocol.md, "Views"): presence:sync answers a snapshot stamped with the
// sequence of the last event it reflects, and the server sends presence:diff batches stamped the
// same way. Batches that arrive while a snapshot is on its way are held, those the snapshot covers
// are dropped and the rest applied in order, so the view only ever takes states the server had.
// After every (re)connection, to the same instance or another one, the view syncs again.
//
// One plain ES module without imports: it only calls the socket it is given, so browsers can load
// it as is (presenced serves it at GET /presence-client.js) and bundlers need nothing special.

const STATUSES = ['online', 'away', 'busy', 'dnd', 'invisible'];
const EVENTS = ['join', 'leave', 'update', 'sync', 'error'];
const ACTIVITY = ['mousemove', 'mousedown', 'keydown', 'touchstart', 'wheel', 'scroll', 'focus'];
const DEFAULT_IDLE_MS = 5 * 60 * 1000;
const RETRY_MS = [250, 1000, 5000];

// The views each socket holds. The server keeps one watch per room per socket (and one contact
// list), and diffs name only the room: a second view of the same room on one socket would take
// over the first one's watch, and both would then read a stream meant for one.
const held = new WeakMap(); // socket -> Set of "r:<room>" / "u"

/** Order of two sequences: "ms-n" (Redis stream ids, the memory store's "generation-n"), or a plain "n". */
export function compareSeq(a, b) {
    const [am, as = 0] = String(a).split('-').map(Number);
    const [bm, bs = 0] = String(b).split('-').map(Number);
    return am !== bm ? (am < bm ? -1 : 1) : as === bs ? 0 : as < bs ? -1 : 1;
}

function entry(u) {
    return { userId: u.userId, status: u.status, metadata: u.metadata ?? null };
}

function sameState(a, b) {
    return a.status === b.status && JSON.stringify(a.metadata) === JSON.stringify(b.metadata);
}

function copy(u) {
    return { userId: u.userId, status: u.status, metadata: u.metadata == null ? null : structuredClone(u.metadata) };
}

/**
 * A live view. options: {room} or {userIds}; batchMs (server batches, default the server's);
 * idle (browser idle detection, off unless given: true or {after, whenHidden, status});
 * ackTimeoutMs; clock ({now, setTimeout, clearTimeout}), window, document (for tests).
 */
export function presence(socket, options = {}) {
    const { room, userIds } = options;
    if ((room == null) === (userIds == null)) throw new TypeError('presence: give exactly one of room or userIds');
    if (room != null && typeof room !== 'string') throw new TypeError('presence: room must be a string');
    if (userIds != null && (!Array.isArray(userIds) || userIds.some((id) => typeof id !== 'string'))) {
        throw new TypeError('presence: userIds must be an array of strings');
    }
    const key = room != null ? `r:${room}` : 'u';
    if (!held.has(socket)) held.set(socket, new Set());
    if (held.get(socket).has(key)) {
        throw new Error(room != null ? `presence: this socket already has a view of room ${room}` : 'presence: this socket already has a contact-list view');
    }
    held.get(socket).add(key);
    const clock = options.clock ?? globalThis;
    const ackTimeoutMs = options.ackTimeoutMs ?? 10000;
    const target = room != null ? { room } : { userIds: [...userIds] };
    if (options.batchMs != null) target.batch_ms = options.batchMs;

    const members = new Map(); // userId -> {userId, status, metadata}
    const listeners = new Map(EVENTS.map((e) => [e, new Set()]));
    let seq = null; // the sequence the view reflects, null before the first snapshot
    let pending = null; // diffs held while a snapshot is on its way
    let generation = 0; // bumps at every sync, so that a stale answer is ignored
    let synced = false;
    let closed = false;
    let retries = 0;
    let retryTimer = null;
    let resolveReady;
    const ready = new Promise((r) => (resolveReady = r));

    function fire(event, ...args) {
        for (const fn of [...listeners.get(event)]) {
            try {
                fn(...args);
            } catch (err) {
                // A listener's bug must not stop the view; report it where it can be seen.
                clock.setTimeout(() => {
                    throw err;
                }, 0);
            }
        }
    }

    /**
     * Take the server's state at `nextSeq`: set each user's state (null: absent), then announce
     * what changed. The whole state changes before any listener runs, so a listener that reads
     * list() sees the state of one sequence, never half of a batch.
     */
    function apply(changes, nextSeq) {
        const told = [];
        for (const [userId, next] of changes) {
            const prev = members.get(userId);
            if (!next) {
                if (!prev) continue;
                members.delete(userId);
                told.push(['leave', prev]);
            } else if (!prev) {
                members.set(userId, next);
                told.push(['join', next]);
            } else if (!sameState(prev, next)) {
                members.set(userId, next);
                told.push(['update', next, prev]);
            }
        }
        seq = nextSeq;
        for (const [event, ...users] of told) fire(event, ...users.map(copy));
    }

    function applyDiff(d) {
        const changes = (d.leaves ?? []).map((id) => [id, null]);
        for (const u of [...(d.joins ?? []), ...(d.updates ?? [])]) changes.push([u.userId, entry(u)]);
        apply(changes, d.seq);
    }

    function applySnapshot(users, snapSeq) {
        const next = new Map(users.map((u) => [u.userId, entry(u)]));
        const changes = [...members.keys()].filter((id) => !next.has(id)).map((id) => [id, null]);
        apply([...changes, ...next], snapSeq);
    }

    function ours(d) {
        return d && typeof d === 'object' && (room != null ? d.room === room : d.room === undefined);
    }

    function onDiff(d) {
        if (closed || !ours(d) || typeof d.seq !== 'string') return;
        if (pending) pending.push(d);
        else if (seq !== null && compareSeq(d.seq, seq) > 0) applyDiff(d);
    }

    // A resync names its view, or says that the store lost its data ({reset: true}): then what
    // every view holds is void, and each takes a new snapshot. Until that answer comes the view
    // keeps what it had, a state the server did have.
    function onResync(d) {
        if (!closed && (ours(d) || (d && d.reset === true))) sync();
    }

    async function sync() {
        if (closed || !socket.connected) return;
        const gen = ++generation;
        clock.clearTimeout(retryTimer);
        pending = [];
        synced = false;
        let ack;
        try {
            ack = await socket.timeout(ackTimeoutMs).emitWithAck('presence:sync', target);
        } catch (err) {
            ack = { ok: false, error: { code: 'timeout', message: err.message } };
        }
        if (gen !== generation || closed) return;
        if (!ack || ack.ok !== true) {
            pending = null;
            const error = ack?.error ?? { code: 'internal', message: 'bad answer' };
            fire('error', error);
            // Refusals are final; anything else (store down, timeout) is tried again.
            if (!['forbidden', 'invalid_argument', 'limit_exceeded'].includes(error.code)) {
                retryTimer = clock.setTimeout(sync, RETRY_MS[Math.min(retries++, RETRY_MS.length - 1)]);
            }
            return;
        }
        retries = 0;
        const held = pending;
        pending = null;
        applySnapshot(ack.users, ack.seq);
        for (const d of held) if (compareSeq(d.seq, seq) > 0) applyDiff(d);
        synced = true;
        fire('sync', list());
        resolveReady();
    }

    function list() {
        return [...members.values()].sort((a, b) => (a.userId < b.userId ? -1 : a.userId > b.userId ? 1 : 0)).map(copy);
    }

    /** The status the user chose (setStatus); idle detection may show "away" instead. */
    let chosen = { status: 'online', metadata: undefined, set: false };
    const idle = options.idle ? startIdle(options.idle) : null;

    function onConnect() {
        sync();
        idle?.reassert();
    }
    function onDisconnect() {
        synced = false;
        generation++;
        pending = null;
    }

    socket.on('presence:diff', onDiff);
    socket.on('presence:resync', onResync);
    socket.on('connect', onConnect);
    socket.on('disconnect', onDisconnect);
    if (socket.connected) sync();

    function sendStatus(status, metadata) {
        const payload = metadata === undefined ? { status } : { status, metadata };
        return socket
            .timeout(ackTimeoutMs)
            .emitWithAck('presence:status', payload)
            .then((ack) => {
                if (!ack || ack.ok !== true) {
                    const e = new Error(ack?.error?.message ?? 'presence:status failed');
                    e.code = ack?.error?.code ?? 'internal';
                    throw e;
                }
            });
    }

    function startIdle(opts) {
        const o = opts === true ? {} : opts;
        const after = o.after ?? DEFAULT_IDLE_MS;
        const whenHidden = o.whenHidden ?? true;
        const idleStatus = o.status ?? 'away';
        const win = o.window ?? options.window ?? globalThis.window;
        const doc = o.document ?? options.document ?? globalThis.document;
        if (!win || typeof win.addEventListener !== 'function') {
            throw new TypeError('presence: idle detection needs a browser window (or options.window)');
        }
        const now = () => (clock.now ? clock.now() : Date.now());
        let last = now();
        let away = false;
        let timer = null;
        const hidden = () => whenHidden && doc?.visibilityState === 'hidden';

        function goAway() {
            // Only an active user goes away: a chosen busy, dnd or invisible stays.
            if (away || chosen.status !== 'online' || !socket.connected) return;
            away = true;
            sendStatus(idleStatus).catch((err) => fire('error', { code: err.code, message: err.message }));
        }
        function comeBack() {
            if (!away) return;
            away = false;
            if (socket.connected) sendStatus(chosen.status).catch((err) => fire('error', { code: err.code, message: err.message }));
        }
        function arm() {
            clock.clearTimeout(timer);
            timer = clock.setTimeout(check, Math.max(0, last + after - now()));
        }
        function check() {
            if (hidden() || now() - last >= after) goAway();
            else arm();
        }
        function onActivity() {
            last = now();
            if (!hidden()) comeBack();
            arm();
        }
        function onVisibility() {
            if (hidden()) goAway();
            else onActivity();
        }
        for (const e of ACTIVITY) win.addEventListener(e, onActivity, { passive: true });
        doc?.addEventListener?.('visibilitychange', onVisibility);
        arm();
        if (hidden()) goAway();
        return {
            get away() {
                return away;
            },
            /** After a reconnection the server may have forgotten an "away": tell it again. */
            reassert() {
                if (away) sendStatus(idleStatus).catch(() => {});
                else if (chosen.set) sendStatus(chosen.status, chosen.metadata).catch(() => {});
            },
            stop() {
                clock.clearTimeout(timer);
                for (const e of ACTIVITY) win.removeEventListener(e, onActivity);
                doc?.removeEventListener?.('visibilitychange', onVisibility);
            },
        };
    }

    return {
        /** The users in the view, sorted by id: [{userId, status, metadata}] (copies). */
        list,
        /** One user of the view, or undefined. */
        get(userId) {
            const u = members.get(userId);
            return u ? copy(u) : undefined;
        },
        /** Listen: 'join' (user), 'leave' (user), 'update' (user, previous), 'sync' (list), 'error' ({code, message}). Returns a function that stops listening. */
        on(event, fn) {
            if (!listeners.has(event)) throw new TypeError(`presence: unknown event ${event}`);
            listeners.get(event).add(fn);
            return () => listeners.get(event).delete(fn);
        },
        off(event, fn) {
            listeners.get(event)?.delete(fn);
        },
        /** Set this socket's user's status (and metadata); resolves once the server accepted it. */
        setStatus(status, metadata) {
            if (!STATUSES.includes(status)) return Promise.reject(new TypeError(`presence: unknown status ${status}`));
            chosen = { status, metadata, set: true };
            if (idle?.away && status === 'online') return Promise.resolve();
            return sendStatus(status, metadata);
        },
        /** Resolves after the first snapshot was applied. */
        ready,
        /** Whether the view is in step with the server (false while connecting or resyncing). */
        get synced() {
            return synced;
        },
        /** The sequence of the last event the view reflects (null before the first snapshot). */
        get seq() {
            return seq;
        },
        /** Whether idle detection currently shows the user as away. */
        get idle() {
            return idle ? idle.away : false;
        },
        /** Stop: no more events, the server stops sending this view. */
        close() {
            if (closed) return;
            closed = true;
            held.get(socket)?.delete(key);
            generation++;
            clock.clearTimeout(retryTimer);
            idle?.stop();
            socket.off('presence:diff', onDiff);
            socket.off('presence:resync', onResync);
            socket.off('connect', onConnect);
            socket.off('disconnect', onDisconnect);
            if (socket.connected) socket.emit('presence:unsync', room != null ? { room } : { userIds: target.userIds });
        },
    };
}
