// A Node.js backend that follows presence: it reads presenced's event stream (GET /v1/events,
// Server-Sent Events, resumed with Last-Event-ID after a disconnect) and, for each user who comes
// online, asks GET /v1/users/{id} for their details. Node.js >= 18 built-ins only.
//
//   PRESENCED_URL=http://127.0.0.1:3000 PRESENCED_API_KEY=... node backend.mjs
//
// It prints one line per event, e.g. "online alice (Alice) on 1 socket(s)". Replace the
// console.log calls with what your application does (route tickets, send a digest, ...).
const base = process.env.PRESENCED_URL ?? 'http://127.0.0.1:3000';
const headers = process.env.PRESENCED_API_KEY ? { authorization: `Bearer ${process.env.PRESENCED_API_KEY}` } : {};

/** GET /v1/users/{id}: {userId, online, status, socketIds, lastSeen, metadata}. */
async function getUser(userId) {
    const res = await fetch(`${base}/v1/users/${encodeURIComponent(userId)}`, { headers });
    if (!res.ok) throw new Error(`GET /v1/users/${userId}: ${res.status} ${await res.text()}`);
    return res.json();
}

async function onEvent(type, e) {
    switch (type) {
        case 'user.online': {
            const u = await getUser(e.userId);
            console.log(`online ${e.userId} (${u.metadata?.name ?? 'no name'}) on ${u.socketIds.length} socket(s)`);
            break;
        }
        case 'user.offline':
            console.log(`offline ${e.userId}, last seen ${new Date(e.lastSeen).toISOString()}`);
            break;
        case 'user.update':
            console.log(`update ${e.userId}: ${e.prevStatus} -> ${e.status}`);
            break;
        case 'room.join':
        case 'room.leave':
            console.log(`${type} ${e.userId} ${e.room}`);
            break;
        case 'reset':
            // What was built from earlier events is void (see docs/http-api.md): start afresh.
            console.log(`reset ${e.reason}`);
            break;
    }
}

/** Reads the stream until it ends; returns the last event id seen (to resume from). */
async function follow(lastEventId) {
    const res = await fetch(`${base}/v1/events`, {
        headers: { ...headers, accept: 'text/event-stream', ...(lastEventId ? { 'last-event-id': lastEventId } : {}) },
    });
    if (!res.ok) throw new Error(`GET /v1/events: ${res.status} ${await res.text()}`);
    console.log('following presence events');
    const decoder = new TextDecoder();
    let buf = '';
    for await (const chunk of res.body) {
        buf += decoder.decode(chunk, { stream: true });
        let end;
        while ((end = buf.indexOf('\n\n')) >= 0) {
            const fields = {};
            for (const line of buf.slice(0, end).split('\n')) {
                const c = line.indexOf(': ');
                if (c > 0 && !line.startsWith(':')) fields[line.slice(0, c)] = line.slice(c + 2);
            }
            buf = buf.slice(end + 2);
            if (fields.id) lastEventId = fields.id;
            if (fields.data) await onEvent(fields.event, JSON.parse(fields.data));
        }
    }
    return lastEventId;
}

let last = null;
for (;;) {
    try {
        last = await follow(last);
    } catch (err) {
        console.error(`stream error: ${err.message}`);
    }
    await new Promise((r) => setTimeout(r, 1000)); // then resume where it stopped
}
