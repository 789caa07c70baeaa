// Daemon restarts and deaths as a client sees them: a client with the default reconnection policy
// comes back by itself after a restart on the same port; with pingInterval 300 / pingTimeout 200 a
// client notices a killed or frozen daemon.
import { test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { startDaemon } from './lib/daemon.mjs';
import { ClientPool, waitFor, roundTrip, morePings } from './lib/client.mjs';

const pool = new ClientPool();
const daemons = [];

async function daemonForTest() {
    const d = await startDaemon({ mode: 'socketio' });
    daemons.push(d);
    return d;
}

afterEach(async () => {
    pool.closeAll();
    for (const d of daemons.splice(0)) await d.kill('SIGKILL');
});

for (const [name, opts] of [
    ['default transports', {}],
    ['polling only', { transports: ['polling'], upgrade: false }],
]) {
    test(`client reconnects by itself after SIGTERM + restart on the same port (${name})`, { timeout: 30000 }, async () => {
        const daemon = await daemonForTest();
        await daemon.wrap(async () => {
            // Default reconnection policy (reconnection: true, delay 1 s, max 5 s).
            const s = pool.socket(daemon.url, '/', { ...opts, reconnection: true });
            const upgraded = opts.transports ? null : waitFor(s.io.engine, 'upgrade');
            await waitFor(s, 'connect', { failOn: 'connect_error' });
            if (upgraded) await upgraded;
            assert.deepEqual(await roundTrip(s, 'before'), ['before']);
            const firstId = s.id;

            const disconnected = waitFor(s, 'disconnect', { ms: 8000 });
            const info = await daemon.stop();
            assert.deepEqual(info, { code: 0, signal: null });
            const [reason] = await disconnected;
            assert.ok(['transport close', 'transport error', 'ping timeout'].includes(reason), `disconnect reason ${reason}`);
            assert.equal(s.connected, false);

            const reconnected = waitFor(s, 'connect', { ms: 20000 });
            await daemon.start(); // same port, same arguments
            await reconnected;
            assert.ok(s.connected);
            assert.notEqual(s.id, firstId, 'a new session after the restart');
            assert.deepEqual(await roundTrip(s, 'after', { n: 1 }), ['after', { n: 1 }]);
        })();
        assert.deepEqual(await daemon.stop(), { code: 0, signal: null });
    });
}

for (const transports of [['websocket'], ['polling']]) {
    test(`a client notices a SIGKILLed daemon (${transports[0]})`, { timeout: 15000 }, async () => {
        const daemon = await daemonForTest();
        await daemon.wrap(async () => {
            const s = await pool.connect(daemon.url, '/', { transports, upgrade: false });
            assert.deepEqual(await roundTrip(s, 'x'), ['x']);
            const disconnected = waitFor(s, 'disconnect', { ms: 3000 });
            const info = await daemon.kill('SIGKILL');
            assert.equal(info.signal, 'SIGKILL');
            const [reason] = await disconnected;
            assert.ok(['transport close', 'transport error', 'ping timeout'].includes(reason), `disconnect reason ${reason}`);
        })();
    });

    test(`a client notices a frozen daemon by ping timeout (SIGSTOP, ${transports[0]})`, { timeout: 30000 }, async (t) => {
        const daemon = await daemonForTest();
        await daemon.wrap(async () => {
            const s = await pool.connect(daemon.url, '/', { transports, upgrade: false });
            assert.deepEqual(await roundTrip(s, 'x'), ['x']);
            // Stay connected across a few heartbeats first: pings are answered.
            await morePings(s, 3);
            assert.ok(s.connected, 'still connected after three pings');
            const t0 = Date.now();
            const disconnected = waitFor(s, 'disconnect', { ms: 15000 });
            daemon.signal('SIGSTOP');
            const [reason] = await disconnected;
            // No ping for pingInterval + pingTimeout (500 ms): the client gives up.
            assert.equal(reason, 'ping timeout');
            t.diagnostic(`noticed after ${Date.now() - t0} ms (ping interval + timeout: 500 ms)`);
        })();
        daemon.signal('SIGCONT');
        assert.deepEqual(await daemon.stop(), { code: 0, signal: null });
    });
}
