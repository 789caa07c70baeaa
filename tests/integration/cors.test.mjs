// Origin policy and CORS headers in default mode: requests without Origin are allowed, requests with
// an Origin when it is the request's own origin (same scheme, host and port as the Host header) or
// listed in allowed_origins; listed origins get credentialed CORS headers. One rule for polling and
// WebSocket; a refusal is the reference server's 403 {"code":4,"message":"Forbidden"}, and each
// refused origin is logged once with the setting to change.
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
            // The reference server's answer, and what to change.
            assert.deepEqual(res.json(), { code: 4, message: 'Forbidden', hint: "the request's Origin is not allowed: add it to allowed_origins" });
            assert.equal(await wsStatus(daemon, 'http://evil.example'), 403);
        })();
    });

    test('the same origin as the request is allowed on polling and WebSocket', T, async () => {
        await daemon.wrap(async () => {
            for (const origin of [daemon.url, daemon.url.replace('http://', 'HTTP://')]) {
                const res = await http(`${daemon.url}${P}?EIO=4&transport=polling`, { headers: { Origin: origin } });
                assert.equal(res.status, 200, `polling with Origin ${origin}`);
                assert.equal(res.headers.get('access-control-allow-origin'), origin);
                assert.equal(await wsStatus(daemon, origin), 101, `WebSocket with Origin ${origin}`);
            }
            // Another port or scheme of the same host is another origin.
            const port = Number(new URL(daemon.url).port);
            for (const origin of [`http://127.0.0.1:${port + 1}`, `https://127.0.0.1:${port}`, 'http://127.0.0.1']) {
                const res = await http(`${daemon.url}${P}?EIO=4&transport=polling`, { headers: { Origin: origin } });
                await assertForbidden(res, `polling with Origin ${origin}`);
                assert.equal(await wsStatus(daemon, origin), 403, `WebSocket with Origin ${origin}`);
            }
            // A browser page served from the daemon's own address connects with its Origin.
            for (const transports of [['polling'], ['websocket']]) {
                const s = await pool.connect(daemon.url, '/', { transports, upgrade: false, extraHeaders: { Origin: daemon.url } });
                assert.ok(s.connected);
                s.disconnect();
            }
        })();
    });

    test('a refused origin is logged once, with the setting to change', T, async () => {
        await daemon.wrap(async () => {
            const origin = 'http://once.example:8080';
            for (let i = 0; i < 3; i++) {
                const res = await http(`${daemon.url}${P}?EIO=4&transport=polling`, { headers: { Origin: origin } });
                await assertForbidden(res, 'polling');
                assert.equal(await wsStatus(daemon, origin), 403);
            }
            const lines = daemon.stderrText.split('\n').filter((l) => l.includes('msg="refused" cause=origin') && l.includes(`origin="${origin}"`));
            assert.equal(lines.length, 1, `one log line for ${origin}:\n${daemon.stderrTail()}`);
            assert.match(lines[0], /level=warn/);
            assert.match(lines[0], /setting=allowed_origins/);
            // Client input is quoted safely.
            const res = await http(`${daemon.url}${P}?EIO=4&transport=polling`, { headers: { Origin: 'http://a"b\\c.example' } });
            await assertForbidden(res, 'odd origin');
            assert.ok(daemon.stderrText.includes('origin="http://a?b?c.example"'), daemon.stderrTail());
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
