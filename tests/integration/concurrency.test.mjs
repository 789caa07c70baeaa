// Many clients at once: 200 socket.io-clients (WebSocket, long-polling and upgrading ones) connect
// concurrently and each does 5 message/message-back round trips that must come back to it alone.
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { startDaemon } from './lib/daemon.mjs';
import { ClientPool, waitFor, roundTrip } from './lib/client.mjs';

const CLIENTS = 200;
const ROUNDS = 5;

let daemon;
const pool = new ClientPool();

before(async () => {
    // Conformance mode for the echo handlers, with relaxed timers: 200 clients in this one Node.js
    // process (on a loaded machine) can lag past the 300 + 200 ms ping deadline or the 1000 ms
    // connectTimeout, which are not what this test checks.
    daemon = await startDaemon({
        mode: 'socketio',
        // All 200 clients come from 127.0.0.1: lift the per-address limit (default 100).
        set: { ping_interval: 5000, ping_timeout: 5000, connect_timeout: 15000, max_connections_per_ip: 1000 },
    });
});
afterEach(() => pool.closeAll());
after(async () => {
    pool.closeAll();
    await daemon?.stop();
});

const TRANSPORTS = [{ transports: ['websocket'] }, { transports: ['polling'], upgrade: false }, {}];

test(`${CLIENTS} concurrent clients × ${ROUNDS} round trips`, { timeout: 60000 }, async () => {
    await daemon.wrap(async () => {
        const sockets = Array.from({ length: CLIENTS }, (_, i) =>
            pool.socket(daemon.url, '/', { ...TRANSPORTS[i % TRANSPORTS.length], timeout: 20000 }),
        );
        const describeClient = (s, i) =>
            `client ${i} (${JSON.stringify(TRANSPORTS[i % TRANSPORTS.length])}, engine ${s.io.engine?.readyState}/${s.io.engine?.transport?.name})`;
        await Promise.all(
            sockets.map((s, i) =>
                s.connected
                    ? null
                    : waitFor(s, 'connect', { ms: 20000, failOn: ['connect_error', 'disconnect'] }).catch((e) => {
                          throw new Error(`${describeClient(s, i)}: ${e.message}`);
                      }),
            ),
        );
        const ids = new Set(sockets.map((s) => s.id));
        assert.equal(ids.size, CLIENTS, 'every client got its own Socket.IO id');

        const results = await Promise.all(
            sockets.map(async (s, i) => {
                const got = [];
                for (let r = 0; r < ROUNDS; r++) {
                    const payload = { client: i, round: r, pad: 'p'.repeat((i * 37 + r) % 500) };
                    const back = await roundTrip(s, payload, `c${i}r${r}`);
                    assert.deepEqual(back, [payload, `c${i}r${r}`], `client ${i} round ${r}`);
                    got.push(r);
                }
                return got.length;
            }),
        );
        assert.equal(results.reduce((a, b) => a + b, 0), CLIENTS * ROUNDS);
        assert.ok(sockets.every((s) => s.connected), 'all clients still connected');

        const byTransport = {};
        for (const s of sockets) byTransport[s.io.engine.transport.name] = (byTransport[s.io.engine.transport.name] ?? 0) + 1;
        assert.ok(byTransport.polling > 0 && byTransport.websocket > 0, `mix of transports: ${JSON.stringify(byTransport)}`);
    })();
});
