// Origin policy and CORS headers in default mode: requests without Origin are allowed, requests with
// an Origin only when it is listed in allowed_origins; listed origins get credentialed CORS headers.
import { describe, test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { startDaemon } from './lib/daemon.mjs';
import { ClientPool, http, pollingHandshake, openEngineWs, waitFor, withTimeout } from './lib/client.mjs';

const T = { timeout: 15000 };
const P = '/socket.io/';
const pool = new ClientPool();
afterEach(() => pool.closeAll());

/** Opens a raw WebSocket handshake with the given Origin; resolves with 101 or the refusal status. */
async function wsStatus(daemon, origin) {
    const raw = pool.raw(`${daemon.wsUrl}${P}?EIO=4&transport=websocket`, origin ? { origin } : {});
    const result = await withTimeout(
        raw.opened.then(
            () => 101,
            (e) => e.statusCode ?? e.message,
        ),
        5000,
        'WebSocket handshake',
    );
    if (result === 101) {
        const open = await raw.next();
        assert.match(String(open), /^0\{/, 'Engine.IO open packet after 101');
    }
    raw.terminate();
    return result;
}

async function assertForbidden(res, what) {
    assert.equal(res.status, 403, `${what}: status`);
    const body = res.json();
    // docs/protocol.md: 403 with code 4 for an Origin not in allowed_origins.
    assert.equal(body.code, 4, `${what}: the documented code: ${JSON.stringify(body)}`);
    assert.equal(typeof body.message, 'string', `${what}: JSON error body`);
    assert.equal(res.headers.get('access-control-allow-origin'), null, `${what}: no ACAO on a refusal`);
}

describe('default allowed_origins (empty)', () => {
    let daemon;
    before(async () => {
        daemon = await startDaemon();
    });
    after(async () => {
        pool.closeAll();
        await daemon?.stop();
    });

    test('no Origin header → polling and WebSocket allowed, socket.io-client connects', T, async () => {
        await daemon.wrap(async () => {
            const { sid } = await pollingHandshake(daemon.url);
            assert.ok(sid);
            assert.equal(await wsStatus(daemon, undefined), 101);
            // socket.io-client in Node sends no Origin header; default mode serves namespace "/".
            for (const transports of [['polling'], ['websocket']]) {
                const s = await pool.connect(daemon.url, '/', { transports, upgrade: false });
                assert.ok(s.connected);
                s.disconnect();
            }
        })();
    });

    test('Origin http://evil.example → 403 polling, 403 WebSocket', T, async () => {
        await daemon.wrap(async () => {
            const res = await http(`${daemon.url}${P}?EIO=4&transport=polling`, { headers: { Origin: 'http://evil.example' } });
            await assertForbidden(res, 'polling handshake');
            assert.equal(await wsStatus(daemon, 'http://evil.example'), 403);
        })();
    });

    test('socket.io-client with an Origin header gets connect_error', T, async () => {
        await daemon.wrap(async () => {
            const s = pool.socket(daemon.url, '/', { transports: ['polling'], extraHeaders: { Origin: 'http://evil.example' } });
            await waitFor(s, 'connect_error', { failOn: 'connect' });
            assert.equal(s.connected, false);
        })();
    });

    test('default mode has only namespace "/"', T, async () => {
        await daemon.wrap(async () => {
            const s = pool.socket(daemon.url, '/custom', { transports: ['websocket'] });
            const [err] = await waitFor(s, 'connect_error', { failOn: 'connect' });
            assert.equal(err.message, 'Invalid namespace');
        })();
    });
});

describe('allowed_origins=http://good.example', () => {
    let daemon;
    before(async () => {
        daemon = await startDaemon({ set: { allowed_origins: 'http://good.example' } });
    });
    after(async () => {
        pool.closeAll();
        await daemon?.stop();
    });

    test('listed origin: handshake carries ACAO and ACAC; WebSocket upgrade allowed', T, async () => {
        await daemon.wrap(async () => {
            const res = await http(`${daemon.url}${P}?EIO=4&transport=polling`, { headers: { Origin: 'http://good.example' } });
            assert.equal(res.status, 200);
            assert.match(res.text, /^0\{/);
            assert.equal(res.headers.get('access-control-allow-origin'), 'http://good.example');
            assert.equal(res.headers.get('access-control-allow-credentials'), 'true');

            // Later requests of the session carry the headers too.
            const sid = JSON.parse(res.text.slice(1)).sid;
            const url = `${daemon.url}${P}?EIO=4&transport=polling&sid=${sid}`;
            const post = await http(url, { method: 'POST', body: '40', headers: { Origin: 'http://good.example', 'Content-Type': 'text/plain;charset=UTF-8' } });
            assert.equal(post.status, 200);
            assert.equal(post.headers.get('access-control-allow-origin'), 'http://good.example');
            assert.equal(post.headers.get('access-control-allow-credentials'), 'true');
            const get = await http(url, { headers: { Origin: 'http://good.example' } });
            assert.equal(get.status, 200);
            assert.ok(get.text.startsWith('40{'), `CONNECT reply expected, got ${get.text.slice(0, 100)}`);
            assert.equal(get.headers.get('access-control-allow-origin'), 'http://good.example');
            assert.equal(get.headers.get('access-control-allow-credentials'), 'true');

            assert.equal(await wsStatus(daemon, 'http://good.example'), 101);
        })();
    });

    test('listed origin: OPTIONS preflight → 204 with methods and echoed headers', T, async () => {
        await daemon.wrap(async () => {
            const res = await http(`${daemon.url}${P}?EIO=4&transport=polling`, {
                method: 'OPTIONS',
                headers: {
                    Origin: 'http://good.example',
                    'Access-Control-Request-Method': 'POST',
                    'Access-Control-Request-Headers': 'content-type,x-custom',
                },
            });
            assert.equal(res.status, 204);
            assert.equal(res.headers.get('access-control-allow-origin'), 'http://good.example');
            assert.equal(res.headers.get('access-control-allow-credentials'), 'true');
            const methods = (res.headers.get('access-control-allow-methods') ?? '').split(',').map((m) => m.trim().toUpperCase());
            assert.ok(methods.includes('GET') && methods.includes('POST'), `Allow-Methods: ${methods}`);
            const allowHeaders = (res.headers.get('access-control-allow-headers') ?? '').toLowerCase().split(',').map((h) => h.trim());
            assert.ok(allowHeaders.includes('content-type') && allowHeaders.includes('x-custom'), `Allow-Headers: ${allowHeaders}`);
        })();
    });

    test('other origins → 403 polling and WebSocket; no Origin still allowed', T, async () => {
        await daemon.wrap(async () => {
            for (const origin of ['http://evil.example', 'http://good.example.evil', 'https://good.example', 'null']) {
                const res = await http(`${daemon.url}${P}?EIO=4&transport=polling`, { headers: { Origin: origin } });
                await assertForbidden(res, `polling, Origin ${origin}`);
                assert.equal(await wsStatus(daemon, origin), 403, `WebSocket, Origin ${origin}`);
            }
            const { sid } = await pollingHandshake(daemon.url);
            assert.ok(sid);
            assert.equal(await wsStatus(daemon, undefined), 101);
        })();
    });
});

describe('allowed_origins with several entries and *', () => {
    test('comma-separated list allows each listed origin', T, async () => {
        const daemon = await startDaemon({ set: { allowed_origins: 'http://a.example,http://b.example' } });
        try {
            await daemon.wrap(async () => {
                for (const origin of ['http://a.example', 'http://b.example']) {
                    const res = await http(`${daemon.url}${P}?EIO=4&transport=polling`, { headers: { Origin: origin } });
                    assert.equal(res.status, 200, origin);
                    assert.equal(res.headers.get('access-control-allow-origin'), origin);
                    assert.equal(await wsStatus(daemon, origin), 101, origin);
                }
                const res = await http(`${daemon.url}${P}?EIO=4&transport=polling`, { headers: { Origin: 'http://c.example' } });
                await assertForbidden(res, 'unlisted origin');
            })();
        } finally {
            pool.closeAll();
            await daemon.stop();
        }
    });

    test('* allows any origin', T, async () => {
        const daemon = await startDaemon({ set: { allowed_origins: '*' } });
        try {
            await daemon.wrap(async () => {
                const res = await http(`${daemon.url}${P}?EIO=4&transport=polling`, { headers: { Origin: 'http://anything.example' } });
                assert.equal(res.status, 200);
                assert.equal(res.headers.get('access-control-allow-origin'), 'http://anything.example');
                assert.equal(await wsStatus(daemon, 'http://anything.example'), 101);
            })();
        } finally {
            pool.closeAll();
            await daemon.stop();
        }
    });
});
