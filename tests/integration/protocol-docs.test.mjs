// docs/protocol.md cannot drift: every ```socketio block of its Examples is replayed against a
// fresh daemon, line by line (the format is described on the page), and every error a client can
// get, as the page's tables list them, must be answered in some example. Values that differ from
// run to run (seq, socketId, lastSeen) are compared by type; everything else must be equal.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { io } from 'socket.io-client';
import { startDaemon } from './lib/daemon.mjs';
import { waitUntil } from './lib/presence.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const doc = fs.readFileSync(path.join(here, '../../docs/protocol.md'), 'utf8');
const blocks = [...doc.matchAll(/```socketio\n([\s\S]*?)```/g)].map((m) => m[1].trim().split('\n'));
const VARYING = new Set(['seq', 'socketId', 'lastSeen']);

/** Same keys in the same order, same values; VARYING keys by type only. */
function same(got, want, where, key = '') {
    if (VARYING.has(key) && want !== null && typeof want !== 'object') {
        assert.equal(typeof got, typeof want, `type at ${where}`);
        return;
    }
    if (Array.isArray(want)) {
        assert.ok(Array.isArray(got), `array at ${where}: ${JSON.stringify(got)}`);
        assert.equal(got.length, want.length, `length at ${where}: ${JSON.stringify(got)}`);
        want.forEach((w, i) => same(got[i], w, `${where}[${i}]`));
        return;
    }
    if (want && typeof want === 'object') {
        assert.ok(got && typeof got === 'object', `object at ${where}: ${JSON.stringify(got)}`);
        assert.deepEqual(Object.keys(got), Object.keys(want), `keys at ${where}: ${JSON.stringify(got)}`);
        for (const k of Object.keys(want)) same(got[k], want[k], `${where}.${k}`, k);
        return;
    }
    assert.equal(got, want, `value at ${where}`);
}

/** One block: its daemon settings and its steps. */
function parse(lines) {
    const set = {};
    const steps = [];
    for (const line of lines) {
        let m;
        if ((m = /^set (\w+)=(.*)$/.exec(line))) set[m[1]] = m[2];
        else if ((m = /^connect (\S+) (\{.*?\})(?: → connect_error (\{.*\}))?$/.exec(line)))
            steps.push({ op: 'connect', name: m[1], auth: JSON.parse(m[2]), error: m[3] && JSON.parse(m[3]) });
        else if ((m = /^(\S+) → (\S+) (\{.*\})$/.exec(line))) steps.push({ op: 'emit', name: m[1], event: m[2], arg: JSON.parse(m[3]) });
        else if ((m = /^(\S+) ← (\{.*\})$/.exec(line))) steps.push({ op: 'ack', name: m[1], want: JSON.parse(m[2]) });
        else if ((m = /^(\S+) ← (\S+) (\{.*\})$/.exec(line))) steps.push({ op: 'event', name: m[1], event: m[2], want: JSON.parse(m[3]) });
        else if ((m = /^disconnect (\S+)$/.exec(line))) steps.push({ op: 'disconnect', name: m[1] });
        else throw new Error(`docs/protocol.md: an example line this test cannot read: ${line}`);
    }
    return { set, steps, text: lines.join('\n') };
}

const examples = blocks.map(parse);

/** What the examples answer: ack error codes and connect_error messages. */
const answered = {
    codes: new Set(examples.flatMap((e) => e.steps.filter((s) => s.op === 'ack' && s.want.error).map((s) => s.want.error.code))),
    messages: new Set(examples.flatMap((e) => e.steps.filter((s) => s.op === 'connect' && s.error).map((s) => s.error.message))),
};

/** The rows of the page's table under `heading` (first column, without backticks). */
function tableColumn(heading) {
    const at = doc.indexOf(heading);
    assert.ok(at >= 0, `docs/protocol.md has "${heading}"`);
    const rows = doc.slice(at).split('\n').slice(1);
    const out = [];
    let inTable = false;
    for (const r of rows) {
        if (r.startsWith('|')) {
            inTable = true;
            const cell = r.split('|')[1].trim();
            if (!/^-+$/.test(cell) && cell !== 'code' && cell !== 'message') out.push(cell.replace(/^`|`$/g, '').replace(/\\"/g, '"'));
        } else if (inTable) break;
    }
    return out;
}

// Errors that no example can bring about on purpose: out of memory, and a connection the rate
// limit is closing (it gets no answer at all).
const NOT_REPLAYED = new Set(['internal', 'out of memory', 'the connection is closing']);

test('every error a client can get is listed and answered in an example', () => {
    assert.ok(examples.length >= 5, 'the page has its examples');
    for (const code of tableColumn('Error codes:')) if (!NOT_REPLAYED.has(code)) assert.ok(answered.codes.has(code), `no example answers ${code}`);
    for (const msg of tableColumn('CONNECT_ERROR messages:')) {
        if (NOT_REPLAYED.has(msg) || msg === 'Invalid namespace') continue;
        const re = new RegExp(`^${msg.replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace(/…/g, '.*')}$`);
        assert.ok([...answered.messages].some((m) => re.test(m)), `no example is refused with "${msg}"`);
    }
});

for (const [i, ex] of examples.entries()) {
    test(`example ${i + 1} replays as documented`, { timeout: 30000 }, async () => {
        const redis = ex.set.store === 'redis';
        const d = await startDaemon({ set: { offline_grace: 0, ...ex.set }, ready: !redis });
        const socks = new Map();
        try {
            await d.wrap(async () => {
                let pending = null; // the ack the next "←" line checks
                for (const [n, s] of ex.steps.entries()) {
                    const where = `example ${i + 1}, step ${n + 1}`;
                    if (s.op === 'connect') {
                        const sock = io(d.url, { transports: ['websocket'], reconnection: false, forceNew: true, auth: s.auth });
                        sock.events = [];
                        sock.onAny((event, payload) => sock.events.push({ event, payload }));
                        const outcome = await new Promise((resolve) => {
                            sock.on('connect', () => resolve({ ok: true }));
                            sock.on('connect_error', (err) => resolve({ error: { message: err.message } }));
                        });
                        if (s.error) {
                            assert.deepEqual(outcome, { error: s.error }, `${where}: connect_error`);
                            sock.close();
                        } else {
                            assert.deepEqual(outcome, { ok: true }, `${where}: connected`);
                            socks.set(s.name, sock);
                        }
                    } else if (s.op === 'emit') {
                        pending = socks.get(s.name).timeout(5000).emitWithAck(s.event, s.arg);
                    } else if (s.op === 'ack') {
                        assert.ok(pending, `${where}: an ack line without a command`);
                        same(await pending, s.want, `${where} (ack)`);
                        pending = null;
                    } else if (s.op === 'event') {
                        const sock = socks.get(s.name);
                        const found = await waitUntil(() => {
                            const k = sock.events.findIndex((e) => e.event === s.event);
                            return k >= 0 ? sock.events.splice(k, 1)[0] : null;
                        }, { ms: 5000, what: `${where}: ${s.name} to receive ${s.event}` });
                        same(found.payload, s.want, `${where} (${s.event})`);
                    } else if (s.op === 'disconnect') {
                        socks.get(s.name).close();
                        socks.delete(s.name);
                    }
                }
            })();
        } finally {
            for (const sock of socks.values()) sock.close();
            await d.stop();
        }
    });
}
