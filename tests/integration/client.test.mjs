// The stock socket.io-client against presenced --conformance, over each transport set-up:
// connection/upgrade, event round trips (JSON and binary), acks in both directions, auth,
// namespaces.
import { describe, test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { startDaemon } from './lib/daemon.mjs';
import { ClientPool, waitFor, normalizeBinary, roundTrip, withTimeout, morePings, DEFAULT_WAIT_MS } from './lib/client.mjs';

const T = { timeout: 15000 };

const SETUPS = [
    { name: 'default transports (polling, then upgrade)', opts: {}, final: 'websocket' },
    { name: "transports ['websocket']", opts: { transports: ['websocket'] }, final: 'websocket' },
    { name: "transports ['polling'], upgrade:false", opts: { transports: ['polling'], upgrade: false }, final: 'polling' },
];

let daemon;
const pool = new ClientPool();

before(async () => {
    daemon = await startDaemon({ mode: 'socketio' });
});
afterEach(() => pool.closeAll());
after(async () => {
    pool.closeAll();
    await daemon?.stop();
});

/** Connects and, for the default set-up, waits for the upgrade to WebSocket. */
async function connected(setup, nsp = '/', extra = {}) {
    const s = pool.socket(daemon.url, nsp, { ...setup.opts, ...extra });
    const upgraded = setup.final === 'websocket' && !setup.opts.transports ? waitFor(s.io.engine, 'upgrade') : null;
    if (!s.connected) await waitFor(s, 'connect', { failOn: 'connect_error' });
    if (upgraded) await upgraded;
    return s;
}

for (const setup of SETUPS) {
    describe(setup.name, () => {
        test('connects and ends on the expected transport', T, async () => {
            await daemon.wrap(async () => {
                const s = pool.socket(daemon.url, '/', setup.opts);
                const first = s.io.engine.transport.name;
                let upgrades = 0;
                const upgraded = waitFor(s.io.engine, 'upgrade');
                upgraded.catch(() => {});
                s.io.engine.on('upgrade', () => upgrades++);
                const handshake = waitFor(s.io.engine, 'handshake');
                await waitFor(s, 'connect', { failOn: 'connect_error' });
                assert.ok(s.connected);
                assert.equal(typeof s.id, 'string');
                // The Engine.IO handshake values of conformance mode.
                const [hs] = await handshake;
                assert.equal(typeof hs.sid, 'string');
                assert.equal(hs.pingInterval, 300);
                assert.equal(hs.pingTimeout, 200);
                assert.equal(hs.maxPayload, 1000000);
                if (setup.opts.transports === undefined) {
                    assert.equal(first, 'polling', 'default set-up starts with polling');
                    assert.deepEqual(hs.upgrades, ['websocket']);
                    const [transport] = await upgraded;
                    assert.equal(transport.name, 'websocket');
                    assert.equal(s.io.engine.transport.name, 'websocket');
                } else {
                    // Give an (unexpected) upgrade a chance to happen before checking.
                    await roundTrip(s, 'probe');
                    await roundTrip(s, 'probe');
                    assert.equal(s.io.engine.transport.name, setup.final);
                    assert.equal(upgrades, 0);
                }
                // Still alive across several heartbeats (ping interval 300 ms) on this transport.
                await morePings(s, 3);
                assert.ok(s.connected);
                assert.deepEqual(await roundTrip(s, 'later'), ['later']);
            })();
        });

        test('message → message-back round trips JSON values', T, async () => {
            await daemon.wrap(async () => {
                const s = await connected(setup);
                const cases = [
                    ['hello'],
                    [''],
                    // (No "\u0000": presenced refuses NUL inside strings; not a conformance case.)
                    ['héllo wörld ✓ 😀 \u0001\u001f "quoted" \\ \n </script>'],
                    [0, 1, -1, 3.25, 1e21, Number.MAX_SAFE_INTEGER],
                    [true, false, null],
                    [{ a: 1, b: [1, 'two', { c: null }], d: { e: { f: 'deep' } } }],
                    [[], {}, [[[]]]],
                    ['x'.repeat(100000)],
                    [],
                ];
                for (const [i, args] of cases.entries()) {
                    const what = `case ${i}: ${JSON.stringify(args).slice(0, 80)}`;
                    const back = await roundTrip(s, ...args).catch((e) => {
                        throw new Error(`${what}: ${e.message}`);
                    });
                    assert.deepEqual(back, args, what);
                }
                assert.equal(s.io.engine.transport.name, setup.final);
            })();
        });

        test('binary payloads round trip byte-exact', T, async () => {
            await daemon.wrap(async () => {
                const s = await connected(setup);
                const all = Buffer.alloc(256);
                for (let i = 0; i < 256; i++) all[i] = i;
                const cases = [
                    [Buffer.from([1, 2, 3])],
                    [new Uint8Array([0, 255, 0, 128])],
                    [all],
                    [Buffer.alloc(0)],
                    [randomBytes(200000)],
                    ['text', Buffer.from('first'), 7, Buffer.from([0xff, 0xfe]), new Uint8Array([9])],
                    [{ nested: { buf: Buffer.from('inner'), list: [Buffer.from([1]), 'x', Buffer.from([2, 2])] }, n: 1 }],
                    [[Buffer.from('a'), [Buffer.from('b'), [Buffer.from('c')]]]],
                    // Something that looks like a placeholder but is plain JSON must stay as it is
                    // when there are no attachments.
                    [{ _placeholder: false, num: 0 }],
                ];
                for (const [i, args] of cases.entries()) {
                    const what = `case ${i}`;
                    const back = await roundTrip(s, ...args).catch((e) => {
                        throw new Error(`${what}: ${e.message}`);
                    });
                    assert.deepEqual(normalizeBinary(back), normalizeBinary(args), what);
                    for (const [i, a] of args.entries()) {
                        if (ArrayBuffer.isView(a)) assert.ok(ArrayBuffer.isView(back[i]) || back[i] instanceof ArrayBuffer, `arg ${i} came back as binary`);
                    }
                }
            })();
        });

        test("emitWithAck('message-with-ack') returns the same arguments", T, async () => {
            await daemon.wrap(async () => {
                const s = await connected(setup);
                assert.equal(await s.timeout(DEFAULT_WAIT_MS).emitWithAck('message-with-ack', 'one'), 'one');
                assert.deepEqual(await s.timeout(DEFAULT_WAIT_MS).emitWithAck('message-with-ack', { a: [1, 2] }), { a: [1, 2] });
                const bin = await s.timeout(DEFAULT_WAIT_MS).emitWithAck('message-with-ack', Buffer.from([7, 8, 9]));
                assert.deepEqual(normalizeBinary(bin), Buffer.from([7, 8, 9]));

                // Several arguments (emitWithAck only resolves with the first one).
                const args = ['a', 2, { three: Buffer.from('3') }, null];
                const got = await withTimeout(
                    new Promise((resolve, reject) => {
                        s.timeout(DEFAULT_WAIT_MS).emit('message-with-ack', ...args, (err, ...res) => (err ? reject(err) : resolve(res)));
                    }),
                    DEFAULT_WAIT_MS + 1000,
                    'ack with several arguments',
                );
                assert.deepEqual(normalizeBinary(got), normalizeBinary(args));

                // Many acks in flight at once, answered to the right callbacks.
                const many = await Promise.all(
                    Array.from({ length: 50 }, (_, i) => s.timeout(DEFAULT_WAIT_MS).emitWithAck('message-with-ack', i)),
                );
                assert.deepEqual(many, Array.from({ length: 50 }, (_, i) => i));
            })();
        });

        test('server → client ack (server-ack extension)', T, async () => {
            await daemon.wrap(async () => {
                const s = await connected(setup);
                const request = waitFor(s, 'server-ack-request');
                const result = waitFor(s, 'server-ack-result');
                s.emit('server-ack', 'q', 1, { k: 'v' });
                const reqArgs = await request;
                const ack = reqArgs.pop();
                assert.equal(typeof ack, 'function', 'server-ack-request carries an ack callback');
                assert.deepEqual(reqArgs, ['q', 1, { k: 'v' }]);
                ack('r1', { r: [2] }, null);
                assert.deepEqual(await result, ['r1', { r: [2] }, null]);

                // Binary in both the request and the ack (BINARY_EVENT down, BINARY_ACK up).
                const request2 = waitFor(s, 'server-ack-request');
                const result2 = waitFor(s, 'server-ack-result');
                s.emit('server-ack', Buffer.from([1, 2]));
                const req2 = await request2;
                const ack2 = req2.pop();
                assert.deepEqual(normalizeBinary(req2), [Buffer.from([1, 2])]);
                ack2({ data: Buffer.from([3, 4, 5]) }, Buffer.from('z'));
                assert.deepEqual(normalizeBinary(await result2), [{ data: Buffer.from([3, 4, 5]) }, Buffer.from('z')]);

                // An ack with no values.
                const request3 = waitFor(s, 'server-ack-request');
                const result3 = waitFor(s, 'server-ack-result');
                s.emit('server-ack');
                const req3 = await request3;
                assert.equal(req3.length, 1);
                req3[0]();
                assert.deepEqual(await result3, []);
            })();
        });

        test('auth object is echoed in the auth event', T, async () => {
            await daemon.wrap(async () => {
                const auth = { token: 'abc.def', user: { id: 42, tags: ['x', 'y'] } };
                const s = pool.socket(daemon.url, '/', { ...setup.opts, auth });
                const [got] = await waitFor(s, 'auth', { failOn: 'connect_error' });
                assert.deepEqual(got, auth);

                const s2 = pool.socket(daemon.url, '/', setup.opts);
                const [got2] = await waitFor(s2, 'auth', { failOn: 'connect_error' });
                assert.deepEqual(got2, {});
            })();
        });

        test('custom namespace /custom, alone and multiplexed with /', T, async () => {
            await daemon.wrap(async () => {
                const c = pool.socket(daemon.url, '/custom', { ...setup.opts, auth: { ns: 'custom' } });
                const [got] = await waitFor(c, 'auth', { failOn: 'connect_error' });
                assert.deepEqual(got, { ns: 'custom' });
                assert.ok(c.connected);

                // Two namespaces over one Engine.IO connection.
                const m = pool.manager(daemon.url, setup.opts);
                const main = m.socket('/', { auth: { ns: 'main' } });
                const custom = m.socket('/custom', { auth: { ns: 'custom2' } });
                const [[a1], [a2]] = await Promise.all([
                    waitFor(main, 'auth', { failOn: 'connect_error' }),
                    waitFor(custom, 'auth', { failOn: 'connect_error' }),
                ]);
                assert.deepEqual(a1, { ns: 'main' });
                assert.deepEqual(a2, { ns: 'custom2' });
                assert.deepEqual(await roundTrip(main, 'still', Buffer.from([1])).then(normalizeBinary), ['still', Buffer.from([1])]);
                // Leaving /custom keeps / working on the same connection.
                custom.disconnect();
                assert.deepEqual(await roundTrip(main, 'after'), ['after']);
                main.disconnect();
            })();
        });

        test('unknown namespace /nope → connect_error "Invalid namespace"', T, async () => {
            await daemon.wrap(async () => {
                const s = pool.socket(daemon.url, '/nope', setup.opts);
                const [err] = await waitFor(s, 'connect_error', { failOn: 'connect' });
                assert.equal(err.message, 'Invalid namespace');
                assert.equal(s.connected, false);

                // The main namespace on the same connection is unaffected.
                const m = pool.manager(daemon.url, setup.opts);
                const main = m.socket('/');
                const bad = m.socket('/nope');
                const [[e2]] = await Promise.all([waitFor(bad, 'connect_error', { failOn: 'connect' }), waitFor(main, 'connect', { failOn: 'connect_error' })]);
                assert.equal(e2.message, 'Invalid namespace');
                assert.deepEqual(await roundTrip(main, 'ok'), ['ok']);
                main.disconnect();
                bad.disconnect();
            })();
        });
    });
}
