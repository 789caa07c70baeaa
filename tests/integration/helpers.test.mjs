// Checks the test helpers themselves: the throwaway redis-server, and the daemon lifecycle
// (start on a free port, default-mode handshake values, clean SIGTERM exit).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { startRedis } from './lib/redis.mjs';
import { startDaemon } from './lib/daemon.mjs';
import { pollingHandshake } from './lib/client.mjs';

function connectable(port) {
    return new Promise((resolve) => {
        const s = net.connect({ host: '127.0.0.1', port });
        s.once('connect', () => {
            s.destroy();
            resolve(true);
        });
        s.once('error', () => resolve(false));
    });
}

test('redis helper starts a private redis-server, answers commands, stops it', { timeout: 20000 }, async () => {
    const redis = await startRedis();
    try {
        assert.equal(await redis.command('PING'), '+PONG');
        assert.equal(await redis.command('SET', 'presenced:test', 'x'), '+OK');
        assert.equal(await redis.command('GET', 'presenced:test'), 'x');
    } finally {
        await redis.stop();
    }
    assert.equal(await connectable(redis.port), false, 'redis-server still listening after stop()');
});

test('daemon helper: default mode handshake and clean SIGTERM exit', { timeout: 20000 }, async () => {
    const daemon = await startDaemon();
    await daemon.wrap(async () => {
        const { sid, handshake } = await pollingHandshake(daemon.url);
        assert.equal(typeof sid, 'string');
        assert.ok(sid.length > 0);
        assert.deepEqual(handshake.upgrades, ['websocket']);
        assert.equal(handshake.pingInterval, 25000);
        assert.equal(handshake.pingTimeout, 20000);
        assert.equal(handshake.maxPayload, 1000000);
    })();
    const info = await daemon.stop();
    assert.deepEqual(info, { code: 0, signal: null });
    assert.equal(await connectable(daemon.port), false, 'daemon still listening after stop()');
});
