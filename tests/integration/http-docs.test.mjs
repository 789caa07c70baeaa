// docs/http-api.md cannot drift: every request/response example pair in it (two ```http blocks
// in a row) is replayed, in order, against a daemon set up as the page says, and the answer must
// have the documented status and content type, and JSON of the same shape (the same keys, values
// of the same types; ids, times and counts may differ). For text answers (metrics, the event
// stream), every documented line's metric name or field name must appear.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startDaemon } from './lib/daemon.mjs';
import { ClientPool } from './lib/client.mjs';
import { waitSockets } from './lib/fence.mjs';
import { checkAnswer } from './lib/openapi.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const doc = fs.readFileSync(path.join(here, '../../docs/http-api.md'), 'utf8');

/** The ```http blocks of the page, paired as [request, response]. */
function examples() {
    const blocks = [...doc.matchAll(/```http\n([\s\S]*?)```/g)].map((m) => m[1]);
    const pairs = [];
    for (let i = 0; i + 1 < blocks.length; i += 2) pairs.push([blocks[i], blocks[i + 1]]);
    assert.equal(blocks.length % 2, 0, 'every request example has a response example');
    return pairs;
}

function parse(block) {
    const [head, ...rest] = block.split('\n\n');
    const lines = head.split('\n').filter(Boolean);
    const headers = {};
    for (const l of lines.slice(1)) {
        const c = l.indexOf(':');
        headers[l.slice(0, c).toLowerCase()] = l.slice(c + 1).trim();
    }
    return { start: lines[0], headers, body: rest.join('\n\n').replace(/\n$/, '') };
}

function shape(v) {
    if (v === null) return 'null';
    if (Array.isArray(v)) return v.length ? [shape(v[0])] : [];
    if (typeof v === 'object') return Object.fromEntries(Object.keys(v).sort().map((k) => [k, shape(v[k])]));
    return typeof v;
}

/** Same keys and types; an empty array matches any array. */
function sameShape(got, want, where) {
    if (Array.isArray(want) && Array.isArray(got)) {
        if (want.length && got.length) sameShape(got[0], want[0], where + '[0]');
        return;
    }
    if (want && typeof want === 'object' && got && typeof got === 'object') {
        assert.deepEqual(Object.keys(got), Object.keys(want), `keys at ${where}`);
        for (const k of Object.keys(want)) sameShape(got[k], want[k], `${where}.${k}`);
        return;
    }
    assert.equal(got, want, `type at ${where}`);
}

/** The messages (blank-line separated blocks) of an event stream, as an async iterator. */
async function* sseBlocks(reader) {
    const dec = new TextDecoder();
    let buf = '';
    for (;;) {
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
            yield buf.slice(0, i);
            buf = buf.slice(i + 2);
        }
        const { value, done } = await reader.read();
        if (done) return;
        buf += dec.decode(value, { stream: true });
    }
}

/** The `field: value` lines of one event-stream message, as an object (comments left out). */
function sseFields(block) {
    const o = {};
    for (const line of block.split('\n')) {
        const c = line.indexOf(': ');
        if (c > 0 && !line.startsWith(':')) o[line.slice(0, c)] = line.slice(c + 2);
    }
    return o;
}

let d;
const pool = new ClientPool();
before(async () => {
    d = await startDaemon({ set: { api_key: 'secret' } });
    const a = await pool.connect(d.url, '/', { auth: { userId: 'alice', metadata: { name: 'Alice' } }, transports: ['websocket'] });
    const b = await pool.connect(d.url, '/', { auth: { userId: 'bob' }, transports: ['websocket'] });
    await pool.connect(d.url, '/', { auth: { userId: 'dave' }, transports: ['websocket'] });
    await a.emitWithAck('presence:room:join', { room: 'support' });
    await b.emitWithAck('presence:room:join', { room: 'support' });
    await waitSockets(d.url, 'dave', 1, { key: 'secret' });
});
after(async () => {
    pool.closeAll();
    await d?.stop();
});

test('the page has an example for every endpoint', () => {
    const starts = examples().map(([req]) => parse(req).start.split('?')[0]);
    for (const ep of ['GET /', 'GET /healthz', 'GET /readyz', 'GET /metrics', 'GET /v1/users/alice', 'GET /v1/users',
        'POST /v1/users/bulk', 'POST /v1/users/dave/disconnect', 'GET /v1/rooms/support',
        'GET /v1/rooms/support/count', 'GET /v1/stats', 'GET /v1/events']) {
        assert.ok(starts.includes(ep), `no example for ${ep}`);
    }
});

test('every example replays as documented', { timeout: 30000 }, async () => {
    for (const [reqText, resText] of examples()) {
        const req = parse(reqText);
        const res = parse(resText);
        const [method, target] = req.start.split(' ');
        const what = req.start;
        const wantStatus = Number(res.start.split(' ')[1]);
        const ctrl = new AbortController();
        const r = await fetch(d.url + target, { method, headers: req.headers, body: req.body || undefined, signal: ctrl.signal });
        assert.equal(r.status, wantStatus, what);
        for (const [k, v] of Object.entries(res.headers)) assert.equal(r.headers.get(k), v, `${what}: header ${k}`);
        const contentType = r.headers.get('content-type');
        if (res.headers['content-type'] === 'text/event-stream') {
            checkAnswer({ method, url: d.url + target, status: r.status, contentType, text: null });
            // The documented message must look like one the daemon sends: a user comes online
            // while the stream is open, and its message is compared with the example's.
            const blocks = sseBlocks(r.body.getReader());
            const hello = await blocks.next();
            assert.match(hello.value, /^: presenced event stream/, what);
            const erin = await pool.connect(d.url, '/', { auth: { userId: 'erin', metadata: { name: 'Erin' } }, transports: ['websocket'] });
            let real;
            for (;;) {
                const { value, done } = await blocks.next();
                assert.ok(!done, `${what}: the stream ended before erin's online`);
                const msg = sseFields(value);
                if (msg.event === 'user.online' && JSON.parse(msg.data).userId === 'erin') {
                    real = msg;
                    break;
                }
            }
            ctrl.abort();
            erin.close();
            const doc = sseFields(res.body.split('\n\n').find((b) => b.includes('data: ')));
            assert.deepEqual(Object.keys(real), Object.keys(doc), `${what}: the message's fields`);
            assert.equal(real.event, doc.event, what);
            sameShape(shape(JSON.parse(real.data)), shape(JSON.parse(doc.data)), what);
            assert.equal(JSON.parse(real.data).id, real.id, `${what}: data.id is the message id`);
            continue;
        }
        const text = await r.text();
        checkAnswer({ method, url: d.url + target, status: r.status, contentType, text });
        if (res.headers['content-type'].startsWith('application/json')) {
            sameShape(shape(JSON.parse(text)), shape(JSON.parse(res.body)), what);
            if (wantStatus >= 400) assert.deepEqual(JSON.parse(text).error.code, JSON.parse(res.body).error.code, what);
        } else {
            for (const line of res.body.split('\n').filter((l) => l && !l.startsWith('#'))) {
                const name = line.split(/[{ ]/)[0];
                assert.ok(text.includes('\n' + name), `${what}: ${name} is not in the answer`);
            }
        }
    }
});
