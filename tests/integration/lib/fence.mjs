// Counting "exactly once" without sleeping: a fence.
//
// An event that must arrive once can be checked for "at least once" by waiting for it, but a
// duplicate can only be ruled out by knowing that the stream has moved past the point where the
// duplicate would be. Sleeping "long enough" proves nothing (a loaded machine delays the
// duplicate past any sleep, and an idle one wastes the time). A fence is a later event that every
// observer must receive, and that the store decided after whatever could have been duplicated:
//
//   1. a fence user (id FENCE_PREFIX + a counter) comes online on one daemon: the store decides
//      its `online` after everything it decided before, and every instance delivers events in
//      the store's order (docs/presence-model.md, "Events"), so an observer that has the fence's
//      online has everything the store decided before it;
//   2. the fence changes its status: its `update` follows its `online`, so an observer that has
//      the update has had the time to receive a duplicated fence online: the fence checks that
//      each observer got its own online exactly once (each socket once, each stream entry once).
//
// The fence proves order only for what the store decided before the fence's own socket_open.
// Use it once the effects you count are settled:
//   - an action on the same daemon (commands, connects) is in the store first: a daemon sends
//     its store commands in order, so a fence on that daemon after the action's ack comes after;
//   - a disconnect reaches the daemon on its own connection, in no order with the fence's
//     connect: first wait for its effect (waitSockets() below, the event itself, a query);
//   - a duplicate that a later timer could emit (a grace deadline firing twice, a second reap
//     slice) needs a fence decided after that timer: `graceful: true` closes the fence socket
//     after its update and waits for its own offline, which the store emits on a tick after the
//     fence's grace deadline, itself after every deadline set before; for reaps, wait for the
//     reap to finish (the dead instance gone from Redis, the reaped-sockets counter) first.
//
// Observers ("sinks"): a PClient or Recorder (lib/presence.mjs; the fence subscribes a PClient
// to the fence user first, so that broadcast = scoped delivers it), an SseStream or a webhook
// receiver (lib/http.mjs). They keep fence events apart (Recorder.fenceEvents, SseStream.fences,
// receiver.fenceEvents()), so counts and "nothing since" checks in tests never see them.
import assert from 'node:assert/strict';
import { io } from 'socket.io-client';
import { waitFor, sleep, DEFAULT_WAIT_MS } from './client.mjs';
import { partitionCount, partitionOf } from './topology.mjs';

/** User ids of fences start with this; never use it for a user of a test. */
export const FENCE_PREFIX = '~fence-';

export function isFence(userId) {
    return typeof userId === 'string' && userId.startsWith(FENCE_PREFIX);
}

let seq = 0;

/** The fence events a sink received: [{type: 'online'|'offline'|'update', userId}]. */
function fenceEventsOf(sink) {
    const rec = sink.rec ?? sink;
    if (Array.isArray(rec.fenceEvents)) {
        return rec.fenceEvents.map((e) => ({ type: e.event.replace(/^presence:/, ''), userId: e.data.userId }));
    }
    if (Array.isArray(sink.fences)) {
        return sink.fences.map((e) => ({ type: e.event.replace(/^user\./, ''), userId: e.data.userId }));
    }
    if (typeof sink.fenceEvents === 'function') {
        return sink.fenceEvents().map((e) => ({ type: e.type.replace(/^user\./, ''), userId: e.userId }));
    }
    throw new Error('fence: unknown sink (a PClient, Recorder, SseStream or webhook receiver)');
}

function describeSink(sink) {
    return sink.label ?? sink.rec?.label ?? sink.constructor?.name ?? 'sink';
}

/** Polls until every sink has `type` of fence `id`; fails naming the sinks that do not. */
async function allSeen(sinks, id, type, ms) {
    const deadline = Date.now() + ms;
    for (;;) {
        const missing = sinks.filter((s) => !fenceEventsOf(s).some((e) => e.userId === id && e.type === type));
        if (!missing.length) return;
        if (Date.now() > deadline) {
            assert.fail(`fence ${id}: no ${type} within ${ms} ms at ${missing.map(describeSink).join(', ')}`);
        }
        await sleep(10);
    }
}

/**
 * Puts a fence through the daemon at `url` and waits until every sink has it (see above).
 * Returns the fence's user id. Options:
 *   auth(id)   the auth object of the fence socket (default {userId: id}; auth = jwt needs a token)
 *   graceful   also close the fence socket and wait for its own offline (after offline_grace)
 *   ms         how long each step may take before the fence fails the test
 *   partitions the daemons' partitions on a Redis Cluster (default: lib/topology.mjs's)
 */
export async function fence(url, sinks, opts = {}) {
    // On a Redis Cluster each partition of users has its own stream, with no order between
    // them: one fence per partition, each with a user of that partition (opts.partitions, by
    // default those of PRESENCED_REDIS_TOPOLOGY's daemons).
    const n = opts.partitions ?? partitionCount();
    if (n <= 1) return fenceOne(url, sinks, `${FENCE_PREFIX}${process.pid}-${++seq}`, opts);
    const base = `${FENCE_PREFIX}${process.pid}-${++seq}`;
    const ids = new Map();
    for (let j = 0; ids.size < n; j++) {
        const id = `${base}-${j}`;
        const p = partitionOf(id, n);
        if (!ids.has(p)) ids.set(p, id);
    }
    await Promise.all([...ids.values()].map((id) => fenceOne(url, sinks, id, opts)));
    return base;
}

async function fenceOne(url, sinks, id, { auth = (i) => ({ userId: i }), graceful = false, ms = 3 * DEFAULT_WAIT_MS } = {}) {
    const clients = sinks.filter((s) => s.rec && typeof s.ok === 'function');
    for (const c of clients) await c.ok('presence:subscribe', { userIds: [id] });
    const s = io(url, { transports: ['websocket'], forceNew: true, reconnection: false, auth: auth(id) });
    try {
        await waitFor(s, 'connect', { failOn: 'connect_error', ms });
        await allSeen(sinks, id, 'online', ms);
        const ack = await s.timeout(ms).emitWithAck('presence:status', { status: 'busy' });
        assert.equal(ack?.ok, true, `fence ${id}: presence:status answered ${JSON.stringify(ack)}`);
        await allSeen(sinks, id, 'update', ms);
        for (const sink of sinks) {
            const n = fenceEventsOf(sink).filter((e) => e.userId === id && e.type === 'online').length;
            assert.equal(n, 1, `fence ${id}: ${describeSink(sink)} received its online ${n} times`);
        }
        if (graceful) {
            s.disconnect();
            await allSeen(sinks, id, 'offline', ms);
        }
    } finally {
        s.disconnect();
    }
    for (const c of clients) if (c.connected) await c.ok('presence:unsubscribe', { userIds: [id] });
    return id;
}

/**
 * Waits until GET /v1/users/{userId} on `url` lists exactly n live sockets (0: unknown user or
 * none): how a test knows that a disconnect reached the store before it puts up a fence.
 */
export async function waitSockets(url, userId, n, { key, ms = 3 * DEFAULT_WAIT_MS } = {}) {
    const headers = key ? { authorization: `Bearer ${key}` } : {};
    const deadline = Date.now() + ms;
    let last;
    for (;;) {
        const res = await fetch(`${url}/v1/users/${encodeURIComponent(userId)}`, { headers, signal: AbortSignal.timeout(ms) });
        const body = await res.text();
        last = `${res.status} ${body}`;
        const count = res.status === 404 ? 0 : res.status === 200 ? JSON.parse(body).socketIds.length : -1;
        if (count === n) return;
        if (Date.now() > deadline) assert.fail(`${userId} never had ${n} live sockets within ${ms} ms; last answer: ${last}`);
        await sleep(20);
    }
}
