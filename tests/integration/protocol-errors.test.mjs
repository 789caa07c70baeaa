// Hostile and malformed input at the Engine.IO (HTTP and WebSocket) and Socket.IO levels, sent by
// hand with fetch() and a raw `ws` WebSocket. Each bad input gets its exact error answer or closes
// only the offending connection; afterwards the daemon still serves a fresh client.
import { describe, test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { startDaemon } from './lib/daemon.mjs';
import { rawRequest } from './lib/http.mjs';
import { ClientPool, http, pollingHandshake, openEngineWs, openSocketIoWs, roundTrip, withTimeout } from './lib/client.mjs';

const T = { timeout: 20000 };
const ERR = {
    transportUnknown: { code: 0, message: 'Transport unknown' },
    sidUnknown: { code: 1, message: 'Session ID unknown' },
    badMethod: { code: 2, message: 'Bad handshake method' },
    badRequest: { code: 3, message: 'Bad request' },
    badVersion: { code: 5, message: 'Unsupported protocol version' },
};

const pool = new ClientPool();
let conf; // --conformance
let small; // default mode, --set max_payload=1000

before(async () => {
    conf = await startDaemon({ mode: 'socketio' });
    small = await startDaemon({ mode: 'default', set: { max_payload: 1000 } });
});
afterEach(() => pool.closeAll());
after(async () => {
    pool.closeAll();
    const errors = [];
    for (const d of [conf, small]) await d?.stop().catch((e) => errors.push(e));
    if (errors.length) throw errors[0];
});

/** Runs fn with both daemons' stderr attached to any failure. */
const wrap = (fn) => conf.wrap(small.wrap(fn));

/** A fresh socket.io-client connects to the conformance daemon and round-trips: the daemon is alive. */
async function assertAlive() {
    const s = await pool.connect(conf.url, '/', { transports: ['websocket'] });
    assert.deepEqual(await roundTrip(s, 'alive?', Buffer.from([1])).then((a) => [a[0], Buffer.from(a[1])]), ['alive?', Buffer.from([1])]);
    s.disconnect();
}

/** Splits an Engine.IO message packet "4<socket.io packet>" into [header, parsed JSON data]. */
function sioPacket(msg) {
    assert.equal(typeof msg, 'string', 'a text packet');
    const m = /^(4[0-6](?:\d+-)?(?:\/[^,]*,)?\d*)([[{].*)$/s.exec(msg);
    assert.ok(m, `not a Socket.IO packet with data: ${JSON.stringify(msg.slice(0, 200))}`);
    return [m[1], JSON.parse(m[2])];
}

/** Asserts a 4xx answer with exactly the given JSON error body. */
async function expectError(res, status, body, what) {
    assert.equal(res.status, status, `${what}: status (body ${JSON.stringify(res.text.slice(0, 200))})`);
    assert.deepEqual(res.json(), body, `${what}: body`);
}

describe('Engine.IO handshake and session errors (HTTP)', () => {
    const P = '/socket.io/';
    const cases = [
        ['missing EIO', 'GET', '?transport=polling', ERR.badVersion],
        ['EIO=3', 'GET', '?EIO=3&transport=polling', ERR.badVersion],
        ['EIO=abc', 'GET', '?EIO=abc&transport=polling', ERR.badVersion],
        ['EIO=5', 'GET', '?EIO=5&transport=polling', ERR.badVersion],
        ['unknown transport', 'GET', '?EIO=4&transport=carrier-pigeon', ERR.transportUnknown],
        ['missing transport', 'GET', '?EIO=4', ERR.transportUnknown],
        ['POST handshake', 'POST', '?EIO=4&transport=polling', ERR.badMethod],
        ['PUT handshake', 'PUT', '?EIO=4&transport=polling', ERR.badMethod],
        ['unknown sid', 'GET', '?EIO=4&transport=polling&sid=AAAAAAAAAAAAAAAAAAAA', ERR.sidUnknown],
        ['unknown sid (POST)', 'POST', '?EIO=4&transport=polling&sid=AAAAAAAAAAAAAAAAAAAA', ERR.sidUnknown],
        ['sid __proto__', 'GET', '?EIO=4&transport=polling&sid=__proto__', ERR.sidUnknown],
        ['sid constructor', 'GET', '?EIO=4&transport=polling&sid=constructor', ERR.sidUnknown],
        ['sid of 2 KB', 'GET', `?EIO=4&transport=polling&sid=${'A'.repeat(2048)}`, ERR.sidUnknown],
        ['websocket handshake without Upgrade', 'GET', '?EIO=4&transport=websocket', ERR.badRequest],
    ];
    for (const [name, method, query, body] of cases) {
        test(`${name} → 400 ${JSON.stringify(body)}`, T, async () => {
            await wrap(async () => {
                const res = await http(`${conf.url}${P}${query}`, { method, body: method === 'GET' ? undefined : '4x' });
                await expectError(res, 400, body, name);
                await assertAlive();
            })();
        });
    }

    // Request heads (the URL included) are capped at 8 KB; a longer request line gets 414 with a
    // JSON body when it is the first request of its connection (later requests of a keep-alive
    // connection are read by libwebsockets, which drops them), and the daemon carries on.
    test('request line over the head limit (sid of 10 KB) → 414', T, async () => {
        await wrap(async () => {
            const r = await rawRequest(conf.host, conf.port, `GET ${P}?EIO=4&transport=polling&sid=${'A'.repeat(10240)} HTTP/1.1\r\nHost: x\r\n\r\n`);
            assert.match(r.text, /^HTTP\/1\.1 414 /);
            assert.match(r.text, /"code":"uri_too_long"/);
            await assertAlive();
        })();
    });

    test('websocket transport on a polling sid without Upgrade → 400 Bad request', T, async () => {
        await wrap(async () => {
            const { sid } = await pollingHandshake(conf.url);
            const res = await http(`${conf.url}${P}?EIO=4&transport=websocket&sid=${sid}`);
            await expectError(res, 400, ERR.badRequest, 'transport mismatch');
            await assertAlive();
        })();
    });

    const badPayloads = [
        ['empty body', ''],
        ['"abc"', 'abc'],
        ['"9"', '9'],
        ['empty segment in the middle', '4a\x1e\x1e4b'],
        ['empty first segment', '\x1e4a'],
        ['bad base64 "b!!!"', 'b!!!'],
        ['100k tiny packets ("4a\\x1e" repeated)', '4a\x1e'.repeat(100000)],
    ];
    for (const [name, payload] of badPayloads) {
        test(`POST ${name} → 400 and the session is closed`, T, async () => {
            await wrap(async () => {
                const { sid } = await pollingHandshake(conf.url);
                const url = `${conf.url}${P}?EIO=4&transport=polling&sid=${sid}`;
                const res = await http(url, { method: 'POST', body: payload, headers: { 'Content-Type': 'text/plain;charset=UTF-8' } });
                assert.equal(res.status, 400, `status for ${name} (body ${JSON.stringify(res.text.slice(0, 200))})`);
                const next = await http(url);
                await expectError(next, 400, ERR.sidUnknown, 'GET after the bad POST');
                await assertAlive();
            })();
        });
    }

    test('a valid POST is accepted (control for the cases above)', T, async () => {
        await wrap(async () => {
            const { sid } = await pollingHandshake(conf.url);
            const url = `${conf.url}${P}?EIO=4&transport=polling&sid=${sid}`;
            const res = await http(url, { method: 'POST', body: '40', headers: { 'Content-Type': 'text/plain;charset=UTF-8' } });
            assert.equal(res.status, 200);
            assert.equal(res.text, 'ok');
            // The CONNECT reply and the "auth" event, in one or more polls (pings skipped).
            const packets = [];
            while (packets.length < 2) {
                const poll = await http(url);
                assert.equal(poll.status, 200);
                packets.push(...poll.text.split('\x1e').filter((p) => p !== '2'));
            }
            assert.equal(packets.length, 2, JSON.stringify(packets));
            assert.ok(packets[0].startsWith('40{'), packets[0]);
            assert.equal(typeof JSON.parse(packets[0].slice(2)).sid, 'string');
            assert.deepEqual(sioPacket(packets[1]), ['42', ['auth', {}]]);
        })();
    });

    test('POST over maxPayload → 413 (max_payload=1000)', T, async () => {
        await wrap(async () => {
            const { sid, handshake } = await pollingHandshake(small.url);
            assert.equal(handshake.maxPayload, 1000);
            const res = await http(`${small.url}${P}?EIO=4&transport=polling&sid=${sid}`, {
                method: 'POST',
                body: '4' + 'x'.repeat(1999),
                headers: { 'Content-Type': 'text/plain;charset=UTF-8' },
            });
            assert.equal(res.status, 413);
            await assertAlive();
        })();
    });

    test('Origin not allowed → 403 JSON for polling, 403 for the WebSocket upgrade', T, async () => {
        await wrap(async () => {
            const res = await http(`${small.url}${P}?EIO=4&transport=polling`, { headers: { Origin: 'http://evil.example' } });
            assert.equal(res.status, 403);
            const body = res.json();
            assert.equal(typeof body.code, 'number');
            assert.equal(typeof body.message, 'string');

            const raw = pool.raw(`${small.wsUrl}${P}?EIO=4&transport=websocket`, { origin: 'http://evil.example' });
            const err = await withTimeout(raw.opened.then(() => null, (e) => e), 5000, 'refused upgrade');
            assert.ok(err, 'the upgrade must be refused');
            assert.equal(err.statusCode, 403, `upgrade answered ${err.message}`);

            // Without an Origin header the same daemon accepts both.
            const { sid } = await pollingHandshake(small.url);
            assert.ok(sid);
            const { raw: ok } = await openEngineWs(pool, small.wsUrl);
            ok.terminate();
        })();
    });
});

describe('WebSocket-level limits', () => {
    test('a message over maxPayload closes the WebSocket with 1009 (max_payload=1000)', T, async () => {
        await wrap(async () => {
            const { raw, handshake } = await openEngineWs(pool, small.wsUrl);
            assert.equal(handshake.maxPayload, 1000);
            raw.send('40');
            assert.match(String(await raw.next()), /^40\{/);
            raw.send('42["x","' + 'y'.repeat(2000) + '"]');
            const { code } = await raw.waitClose(3000);
            assert.equal(code, 1009);
            await assertAlive();
        })();
    });

    test('no Socket.IO CONNECT within connectTimeout (1000 ms) → connection closed', T, async (t) => {
        await wrap(async () => {
            const t0 = Date.now();
            const { raw } = await openEngineWs(pool, conf.wsUrl);
            await raw.waitClose(5000);
            const elapsed = Date.now() - t0;
            // Not before the timeout; how much after is a figure, not a verdict.
            assert.ok(elapsed >= 700, `closed after ${elapsed} ms, before connectTimeout`);
            t.diagnostic(`closed after ${elapsed} ms (connectTimeout 1000 ms)`);
            await assertAlive();
        })();
    });
});

describe('Socket.IO packet errors over a raw WebSocket (a healthy client keeps working)', () => {
    let healthy;
    const healthyPool = new ClientPool();
    before(async () => {
        healthy = await healthyPool.connect(conf.url, '/', { transports: ['websocket'] });
    });
    after(() => healthyPool.closeAll());

    const ph = (num) => JSON.stringify({ _placeholder: true, num });
    const bin = (n) => Array.from({ length: n }, (_, i) => Buffer.from([i, 0xaa]));
    const cases = [
        ['"4abc" (unknown packet type)', ['4abc']],
        ['"4{" (unknown packet type)', ['4{']],
        ['EVENT before CONNECT', ['42["message","x"]'], { connect: false }],
        ['EVENT with an object payload', ['42{"a":1}']],
        ['EVENT with an empty array', ['42[]']],
        ['EVENT with a non-string name', ['42[{}]']],
        ['reserved event "connect"', ['42["connect"]']],
        ['reserved event "disconnect"', ['42["disconnect"]']],
        ['reserved event "disconnecting"', ['42["disconnecting"]']],
        ['reserved event "newListener"', ['42["newListener"]']],
        ['ack id overflow', ['4299999999999999999999["message"]']],
        ['placeholder num -1', [`452-["message",${ph(-1)},${ph(1)}]`, ...bin(2)]],
        ['placeholder num 0.5', [`452-["message",${ph(0.5)},${ph(1)}]`, ...bin(2)]],
        ['placeholder num "splice"', [`452-["message",${ph('splice')},${ph(1)}]`, ...bin(2)]],
        ['placeholder num 5 of 2 attachments', [`452-["message",${ph(0)},${ph(5)}]`, ...bin(2)]],
        ['11 attachments', [`4511-["message",${Array.from({ length: 11 }, (_, i) => ph(i)).join(',')}]`, ...bin(11)]],
        ['JSON nested 1001 deep', ['42["message",' + '['.repeat(1001) + ']'.repeat(1001) + ']']],
        ['invalid UTF-8 in a text frame', [{ data: Buffer.from([0x34, 0x32, 0xff]), binary: false }]],
    ];

    test('control: valid packets on a raw WebSocket do not close it', T, async () => {
        await wrap(async () => {
            const raw = await openSocketIoWs(pool, conf.wsUrl);
            raw.send('42["message","ok",{"n":1}]');
            assert.deepEqual(sioPacket(await raw.next()), ['42', ['message-back', 'ok', { n: 1 }]]);
            raw.send('421["message-with-ack",2]');
            assert.deepEqual(sioPacket(await raw.next()), ['431', [2]]);
            raw.send(`451-["message",${ph(0)}]`);
            raw.send(Buffer.from([9, 8, 7]));
            assert.deepEqual(sioPacket(await raw.next()), ['451-', ['message-back', { _placeholder: true, num: 0 }]]);
            assert.deepEqual(await raw.next(), Buffer.from([9, 8, 7]));
            assert.equal(raw.closeInfo, null);
            raw.terminate();
        })();
    });

    for (const [name, frames, { connect = true } = {}] of cases) {
        test(`${name} closes that connection only`, T, async () => {
            await wrap(async () => {
                const raw = connect ? await openSocketIoWs(pool, conf.wsUrl) : (await openEngineWs(pool, conf.wsUrl)).raw;
                for (const f of frames) {
                    if (Buffer.isBuffer(f)) raw.send(f, { binary: true });
                    else if (typeof f === 'string') raw.send(f);
                    else raw.send(f.data, { binary: f.binary });
                }
                // Well before connectTimeout (1000 ms) would close an unconnected socket anyway.
                await raw.waitClose(connect ? 3000 : 900);
                assert.ok(healthy.connected, 'the healthy client is still connected');
                assert.deepEqual(await roundTrip(healthy, 'still here', name), ['still here', name]);
            })();
        });
    }
});
