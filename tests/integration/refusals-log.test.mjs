// What an operator sees of refused clients: each refused handshake, request or connection (a
// foreign Origin, a bad request, a limit) is logged with the client's address, at warn (origins
// and limits) or info (bad requests), once per cause and address however often it repeats, and
// counted in presenced_refused_total{cause}. Debug lines about sessions name the address too.
import { describe, test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { startDaemon } from './lib/daemon.mjs';
import { ClientPool, http, pollingHandshake, withTimeout } from './lib/client.mjs';
import { waitUntil } from './lib/presence.mjs';

const T = { timeout: 20000 };
const P = '/socket.io/';
const pool = new ClientPool();
afterEach(() => pool.closeAll());

/** The daemon's log lines that contain every one of `parts`. */
function lines(d, ...parts) {
    return d.stderrText.split('\n').filter((l) => parts.every((p) => l.includes(p)));
}

/** Waits until the daemon's log has caught up with what it did so far: its stderr and its
 * answers travel separately, so an answer can arrive before the line logged ahead of it. A
 * SIGHUP is handled after the requests already answered; its reload line comes after theirs. */
async function logCaughtUp(d) {
    const before = lines(d, 'msg="configuration reloaded"').length;
    d.signal('SIGHUP');
    await waitUntil(() => lines(d, 'msg="configuration reloaded"').length > before, {
        what: 'the reload line that follows the refusals',
    });
}

/** Exactly one log line holds all `parts`, however often that refusal happened. */
async function assertLoggedOnce(d, level, parts, what) {
    await logCaughtUp(d);
    const found = lines(d, 'msg="refused"', ...parts);
    assert.equal(found.length, 1, `${what}: one line with ${parts.join(' ')}, got:\n${found.join('\n')}`);
    assert.match(found[0], new RegExp(`level=${level} `), `${what}: level`);
    assert.match(found[0], / addr=127\.0\.0\.1( |$)/, `${what}: the client's address`);
}

/** A WebSocket upgrade; resolves with the refusal's HTTP status (or 101). */
async function wsStatus(d, query, origin) {
    const raw = pool.raw(`${d.wsUrl}${P}?${query}`, origin ? { origin } : {});
    const status = await withTimeout(raw.opened.then(() => 101, (e) => e.statusCode ?? e.message), 5000, 'upgrade');
    raw.terminate();
    return status;
}

/** Runs fn(d) on a daemon started with `set`, which is stopped whatever happens (so a failure
 * does not leave it running). */
async function withDaemon(set, fn) {
    const d = await startDaemon({ set });
    try {
        await d.wrap(fn)(d);
    } finally {
        await d.stop();
    }
}

async function metric(d, name) {
    const text = (await http(`${d.url}/metrics`)).text;
    const line = text.split('\n').find((l) => l.startsWith(`${name} `));
    return line ? Number(line.split(' ')[1]) : 0;
}

describe('refusals in the log', () => {
    test('a foreign origin, bad requests and a payload too large: once per cause and address', T, async () => {
        await withDaemon({ log_level: 'debug', max_payload: 1000 }, async (d) => {
            const evil = { Origin: 'https://evil.example' };
            for (let i = 0; i < 2; i++)
                assert.equal((await http(`${d.url}${P}?EIO=4&transport=polling`, { headers: evil })).status, 403);
            assert.equal(await wsStatus(d, 'EIO=4&transport=websocket', 'https://evil.example'), 403);
            await assertLoggedOnce(d, 'warn', ['cause=origin', 'status=403', 'origin="https://evil.example"'], 'foreign origin');
            assert.equal(await metric(d, 'presenced_refused_total{cause="origin"}'), 3);

            for (let i = 0; i < 2; i++)
                assert.equal((await http(`${d.url}${P}?EIO=4&transport=polling&sid=nosuchsession`)).status, 400);
            await assertLoggedOnce(d, 'info', ['cause=session_unknown', 'status=400'], 'unknown session');
            assert.equal(await wsStatus(d, 'EIO=3&transport=websocket'), 400);
            await assertLoggedOnce(d, 'info', ['cause=protocol_version', 'status=400'], 'old protocol version');

            const { sid } = await pollingHandshake(d.url);
            const post = (body) => http(`${d.url}${P}?EIO=4&transport=polling&sid=${sid}`, { method: 'POST', body });
            assert.equal((await post('4' + 'x'.repeat(2000))).status, 413);
            await assertLoggedOnce(d, 'warn', ['cause=max_payload', 'status=413'], 'payload too large');

            // Debug lines of the session carry the address.
            await logCaughtUp(d);
            assert.equal(lines(d, 'msg="session opened"', `sid=${sid}`, 'addr=127.0.0.1').length, 1, 'session opened line');
            assert.equal((await post('1')).status, 200);
            await waitUntil(() => lines(d, 'msg="session closed"', `sid=${sid}`, 'addr=127.0.0.1').length === 1, {
                what: 'a "session closed" debug line with the address',
            });
        });
    });

    test('max_connections_per_ip: the connections closed at accept are logged once', T, async () => {
        const socks = [];
        await withDaemon({ max_connections_per_ip: 2 }, async (d) => {
            // Four connections from one address: the server closes the two beyond the limit as it
            // accepts them (which two depends on the order the kernel completes them).
            let closed = 0;
            for (let i = 0; i < 4; i++) {
                const s = net.connect({ host: '127.0.0.1', port: d.port });
                s.on('error', () => {});
                s.once('close', () => closed++);
                socks.push(s);
            }
            await waitUntil(() => closed === 2, { what: 'two connections over the limit closed' });
            await logCaughtUp(d);
            assert.equal(closed, 2, 'only the connections over the limit are closed');
            const found = lines(d, 'msg="refused"', 'cause=max_connections_per_ip');
            assert.equal(found.length, 1, `logged once:\n${found.join('\n')}`);
            assert.match(found[0], /level=warn .*addr=127\.0\.0\.1$/);
        }).finally(() => socks.forEach((s) => s.destroy()));
    });

    test('max_connections: a handshake refused as "Server full" is logged at warn', T, async () => {
        await withDaemon({ max_connections: 1 }, async (d) => {
            await pollingHandshake(d.url);
            const res = await http(`${d.url}${P}?EIO=4&transport=polling`);
            assert.equal(res.status, 503);
            assert.equal(await wsStatus(d, 'EIO=4&transport=websocket'), 503);
            await assertLoggedOnce(d, 'warn', ['cause=max_connections', 'status=503'], 'server full');
        });
    });
});
