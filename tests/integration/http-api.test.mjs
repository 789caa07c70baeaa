// The HTTP API (docs/http-api.md) against both stores: every endpoint, API key access, the admin
// listener, invisible users, and the bad-input answers (404, 405 + Allow, 413, 414, 400 for bad
// ids, limits and cursors, what libwebsockets itself does with %00, %ZZ and oversized request
// lines, a request that stops halfway), and, with Redis, `internal` for what the store cannot
// answer.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startDaemon, freePort } from './lib/daemon.mjs';
import { startRedis, presenceKey } from './lib/redis.mjs';
import { ClientPool, waitFor, sleep } from './lib/client.mjs';
import { api, rawRequest } from './lib/http.mjs';
import { checkAnswer } from './lib/openapi.mjs';

const KEY = 'test-key-0123456789';

async function until(fn, ms = 5000, what = 'condition') {
    const end = Date.now() + ms;
    for (;;) {
        const v = await fn();
        if (v) return v;
        if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
        await sleep(50);
    }
}

for (const store of ['memory', 'redis']) {
    describe(`HTTP API (store=${store})`, () => {
        let redis, d, open, adminPort, pool;
        const base = () => d.url;
        const admin = () => `http://127.0.0.1:${adminPort}`;

        before(async () => {
            const set = { max_bulk_ids: 5, max_http_body: 2048, http_timeout: 2, api_key: KEY };
            if (store === 'redis') {
                redis = await startRedis();
                Object.assign(set, { store: 'redis', redis: redis.url });
            }
            adminPort = await freePort();
            d = await startDaemon({ set: { ...set, admin_listen: `127.0.0.1:${adminPort}` } });
            const { api_key: _, ...noKey } = set;
            open = await startDaemon({ set: noKey });
            pool = new ClientPool();
        });
        after(async () => {
            pool.closeAll();
            await d?.stop();
            await open?.stop();
            await redis?.stop();
        });
        const it = (name, fn) => test(name, { timeout: 20000 }, (t) => d.wrap(fn)(t));

        it('health, readiness and metrics move to the admin listener', async () => {
            assert.deepEqual((await api(admin(), '/healthz')).json, { status: 'ok' });
            assert.deepEqual((await api(admin(), '/readyz')).json, { status: 'ready' });
            const m = await api(admin(), '/metrics');
            assert.equal(m.status, 200);
            assert.match(m.headers.get('content-type'), /^text\/plain; version=0\.0\.4/);
            assert.equal((await api(base(), '/healthz')).status, 404, 'not on the main listener');
            assert.equal((await api(admin(), '/v1/stats', { key: KEY })).status, 404, '/v1 not on admin');
            // Without admin_listen everything is on the main listener, and open.
            assert.equal((await api(open.url, '/healthz')).status, 200);
            assert.equal((await api(open.url, '/metrics')).status, 200);
        });

        it('every /v1 request needs the API key', async () => {
            for (const path of ['/v1/users/x', '/v1/users?ids=a', '/v1/stats', '/v1/rooms/r', '/v1/events']) {
                const none = await api(base(), path);
                assert.equal(none.status, 401, path);
                assert.equal(none.json.error.code, 'unauthorized');
                assert.equal(none.headers.get('www-authenticate'), 'Bearer');
                assert.equal((await api(base(), path, { key: KEY + 'x' })).status, 401, path);
                assert.equal((await api(base(), path, { headers: { authorization: KEY } })).status, 401, path);
            }
            assert.equal((await api(base(), '/v1/users/x', { key: KEY })).status, 404);
        });

        it('users: one, bulk (GET and POST), stats, rooms with paging, count', async () => {
            const a1 = await pool.connect(base(), '/', { auth: { userId: 'alice', metadata: { team: 'a' } } });
            const a2 = await pool.connect(base(), '/', { auth: { userId: 'alice' }, transports: ['websocket'] });
            const names = ['r-u1', 'r-u2', 'r-u3', 'r-u4', 'r-u5'];
            const others = [];
            for (const n of names) {
                const s = await pool.connect(base(), '/', { auth: { userId: n } });
                await s.emitWithAck('presence:room:join', { room: 'lobby' });
                others.push(s);
            }
            await a1.emitWithAck('presence:room:join', { room: 'lobby' });
            const u = await until(async () => {
                const r = await api(base(), '/v1/users/alice', { key: KEY });
                return r.json?.socketIds?.length === 2 && r;
            }, 5000, 'alice with two sockets');
            assert.equal(u.status, 200);
            assert.equal(u.json.userId, 'alice');
            assert.equal(u.json.online, true);
            assert.equal(u.json.status, 'online');
            assert.deepEqual(u.json.socketIds, [a1.id, a2.id].sort());
            assert.equal(typeof u.json.lastSeen, 'number');
            assert.deepEqual(u.json.metadata, { team: 'a' });
            assert.equal((await api(base(), '/v1/users/nobody', { key: KEY })).json.error.code, 'not_found');

            const g = await api(base(), '/v1/users?ids=alice,nobody,r-u1', { key: KEY });
            assert.deepEqual(g.json, { users: { alice: true, nobody: false, 'r-u1': true } });
            const p = await api(base(), '/v1/users/bulk', { method: 'POST', key: KEY, body: { userIds: ['alice', 'zed', 'alice'] } });
            assert.deepEqual(p.json, { users: { alice: true, zed: false } });

            // Nobody else is connected: the counts are exact (6 users, alice with 2 sockets, 1 room).
            const stats = await api(base(), '/v1/stats', { key: KEY });
            assert.equal(stats.status, 200);
            assert.deepEqual(stats.json.cluster, { usersOnline: 6, sockets: 7, rooms: 1, instances: store === 'redis' ? 2 : 1 }, JSON.stringify(stats.json));
            assert.equal(stats.json.instance.sockets, 7);
            assert.equal(stats.json.instance.users, 6);
            assert.equal(stats.json.instance.connections.polling + stats.json.instance.connections.websocket, 7);
            assert.equal(stats.json.instance.eventStreams, 0);

            const all = ['alice', ...names].sort();
            const seen = [];
            let cursor = '';
            for (let i = 0; i < 10; i++) {
                const r = await api(base(), `/v1/rooms/lobby?limit=4${cursor ? '&cursor=' + encodeURIComponent(cursor) : ''}`, { key: KEY });
                assert.equal(r.status, 200);
                assert.equal(r.json.room, 'lobby');
                assert.equal(r.json.onlineCount, 6);
                seen.push(...r.json.users);
                if (!r.json.nextCursor) break;
                cursor = r.json.nextCursor;
            }
            assert.deepEqual(seen, all, 'pages cover the room once, in order');
            const first = await api(base(), '/v1/rooms/lobby', { key: KEY });
            assert.deepEqual(first.json.users, all);
            assert.equal(first.json.nextCursor, null);
            assert.deepEqual((await api(base(), '/v1/rooms/lobby/count', { key: KEY })).json, { room: 'lobby', onlineCount: 6 });
            assert.deepEqual((await api(base(), '/v1/rooms/empty-room', { key: KEY })).json, {
                room: 'empty-room', onlineCount: 0, users: [], nextCursor: null,
            });
            for (const s of [a1, a2, ...others]) s.close();
        });

        it('disconnect closes every socket of the user', async () => {
            const s1 = await pool.connect(base(), '/', { auth: { userId: 'kick-me' } });
            const s2 = await pool.connect(base(), '/', { auth: { userId: 'kick-me' }, transports: ['websocket'] });
            const bystander = await pool.connect(base(), '/', { auth: { userId: 'stay' } });
            await until(async () => (await api(base(), '/v1/users/kick-me', { key: KEY })).json?.socketIds?.length === 2);
            const gone = Promise.all([waitFor(s1, 'disconnect'), waitFor(s2, 'disconnect')]);
            const r = await api(base(), '/v1/users/kick-me/disconnect', { method: 'POST', key: KEY });
            assert.equal(r.status, 202);
            assert.deepEqual(r.json, { userId: 'kick-me', disconnecting: true });
            await gone;
            await until(async () => (await api(base(), '/v1/users/kick-me', { key: KEY })).json?.online === false, 5000, 'offline');
            assert.equal(bystander.connected, true);
            bystander.close();
        });

        it('invisible users read as offline without the API key', async () => {
            const s = await pool.connect(open.url, '/', { auth: { userId: 'ghost' } });
            const ack = await s.emitWithAck('presence:status', { status: 'invisible' });
            assert.equal(ack.ok, true);
            const r = await api(open.url, '/v1/users/ghost');
            assert.equal(r.status, 200);
            assert.equal(r.json.online, false);
            assert.equal(r.json.status, 'offline');
            assert.deepEqual(r.json.socketIds, []);
            assert.deepEqual((await api(open.url, '/v1/users?ids=ghost')).json, { users: { ghost: false } });
            if (store === 'redis') {
                // Same Redis: the daemon with the API key shows the truth to its key holders.
                const k = await api(base(), '/v1/users/ghost', { key: KEY });
                assert.equal(k.json.online, true);
                assert.equal(k.json.status, 'invisible');
            }
            s.close();
        });

        it('bad input: 404, 405 with Allow, 413, 400', async () => {
            const k = { key: KEY };
            const nf = await api(base(), '/v1/nothing', k);
            assert.equal(nf.status, 404);
            assert.equal(nf.json.error.code, 'not_found');
            assert.match(nf.json.error.message, /^Not found: Socket\.IO is served at \/socket\.io\//);
            assert.equal((await api(base(), '/v1/users/a/b/c', k)).status, 404);
            const m = await api(base(), '/v1/stats', { ...k, method: 'DELETE' });
            assert.equal(m.status, 405);
            assert.equal(m.headers.get('allow'), 'GET, HEAD');
            assert.equal(m.json.error.code, 'method_not_allowed');
            const m2 = await api(base(), '/v1/users/bulk', k);
            assert.equal(m2.status, 405);
            assert.equal(m2.headers.get('allow'), 'POST');
            const m3 = await api(base(), '/v1/users/x/disconnect', k);
            assert.equal(m3.headers.get('allow'), 'POST');

            const big = await api(base(), '/v1/users/bulk', { ...k, method: 'POST', body: { userIds: ['x'.repeat(3000)] } });
            assert.equal(big.status, 413);
            assert.equal(big.json.error.code, 'too_large');
            // An id with an escaped NUL would read as cut short there ("alice"): not JSON we take.
            for (const body of ['{', '[1]', '"x"', '{"userIds":["a"]} trailing', '', '{"userIds":["alice\\u0000x"]}']) {
                const r = await api(base(), '/v1/users/bulk', { ...k, method: 'POST', body, headers: { 'content-type': 'application/json' } });
                assert.equal(r.status, 400, body);
                assert.equal(r.json.error.code, 'invalid_json', body);
            }
            for (const ids of [[], ['a', 'b', 'c', 'd', 'e', 'f'], [''], ['a\u0001'], [1], ['x'.repeat(129)]]) {
                const r = await api(base(), '/v1/users/bulk', { ...k, method: 'POST', body: { userIds: ids } });
                assert.equal(r.status, 400, JSON.stringify(ids));
                assert.equal(r.json.error.code, 'invalid_argument');
            }
            assert.equal((await api(base(), '/v1/users/bulk', { ...k, method: 'POST', body: {} })).status, 400);
            for (const q of ['', '?ids=', '?ids=a,,b', '?ids=a,b,c,d,e,f', '?ids=a&ids=b', `?ids=${'y'.repeat(129)}`, '?ids=%01']) {
                const r = await api(base(), '/v1/users' + q, k);
                assert.equal(r.status, 400, q);
                assert.equal(r.json.error.code, 'invalid_argument', q);
            }
            assert.equal((await api(base(), `/v1/users/${'z'.repeat(129)}`, k)).status, 400, 'overlong id');
            assert.equal((await api(base(), '/v1/users/%C3%28', k)).status, 400, 'invalid UTF-8');
            assert.equal((await api(base(), '/v1/users/a%09b', k)).status, 400, 'control character');
            assert.equal((await api(base(), '/v1/rooms/r?limit=0', k)).status, 400);
            assert.equal((await api(base(), '/v1/rooms/r?limit=1001', k)).status, 400);
            assert.equal((await api(base(), '/v1/rooms/r?limit=x', k)).status, 400);
            // A bad cursor (not a user id, or given twice) is refused; an empty one is the start.
            for (const q of [`?cursor=${'c'.repeat(129)}`, '?cursor=%01', '?cursor=a&cursor=b']) {
                const r = await api(base(), '/v1/rooms/r' + q, k);
                assert.equal(r.status, 400, q);
                assert.equal(r.json.error.code, 'invalid_argument', q);
            }
            assert.deepEqual((await api(base(), '/v1/rooms/r?cursor=', k)).json, { room: 'r', onlineCount: 0, users: [], nextCursor: null });
            // A path over 2047 bytes: 414 uri_too_long; 2047 bytes is still read (and refused as an id).
            const path = (n) => '/v1/users/' + 'p'.repeat(n - '/v1/users/'.length);
            const long = await api(base(), path(2048), k);
            assert.equal(long.status, 414);
            assert.deepEqual(long.json, { error: { code: 'uri_too_long', message: 'path too long' } });
            assert.equal((await api(base(), path(2047), k)).json.error.code, 'invalid_argument');
            assert.equal((await api(base(), '/v1/events', { ...k, headers: { 'last-event-id': 'nope' } })).status, 400);
            // A UTF-8 id that needs escaping works.
            assert.equal((await api(base(), `/v1/users/${encodeURIComponent('zoë ü:{x}')}`, k)).status, 404);
        });

        it('an answer for every request head: %00 and bad escapes 400, long request lines 414, long heads 431', async () => {
            const auth = `Authorization: Bearer ${KEY}\r\n`;
            const answer = async (what, head, status, code) => {
                const r = await rawRequest(d.host, d.port, head);
                const m = /^HTTP\/1\.1 (\d+)[^\r]*\r\n([\s\S]*?)\r\n\r\n([\s\S]*)$/.exec(r.text);
                assert.ok(m, `${what}: an HTTP answer, got ${JSON.stringify(r.text.slice(0, 200))} (closed: ${r.closed})`);
                assert.equal(Number(m[1]), status, what);
                assert.match(m[2], /content-type: application\/json/i, what);
                assert.equal(JSON.parse(m[3]).error.code, code, what);
                checkAnswer({ method: 'GET', url: '/v1/users/x', status, contentType: 'application/json', text: m[3] });
                assert.equal(r.closed, true, `${what}: the connection is closed after the answer`);
            };
            // %00 would cut the decoded path short; libwebsockets used to drop the connection.
            await answer('%00 in the path', `GET /v1/users/a%00b HTTP/1.1\r\nHost: x\r\n${auth}\r\n`, 400, 'bad_request');
            await answer('%00 in the query', `GET /v1/users?ids=a%00b HTTP/1.1\r\nHost: x\r\n${auth}\r\n`, 400, 'bad_request');
            await answer('a malformed escape', `GET /v1/users/%ZZ HTTP/1.1\r\nHost: x\r\n${auth}\r\n`, 400, 'bad_request');
            await answer('a 16 KB request line', `GET /v1/users?ids=${'a'.repeat(16384)} HTTP/1.1\r\nHost: x\r\n${auth}\r\n`, 414, 'uri_too_long');
            await answer('16 KB of headers', `GET /v1/users/x HTTP/1.1\r\nHost: x\r\n${auth}X-Big: ${'a'.repeat(16384)}\r\n\r\n`, 431, 'headers_too_large');
            await answer('many small headers', `GET /v1/users/x HTTP/1.1\r\nHost: x\r\n${auth}${'X-H: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n'.repeat(300)}\r\n`, 431, 'headers_too_large');
            // 6 KB of headers fit the buffer now (it was 4 KB).
            const big = await api(base(), '/v1/users/x', { key: KEY, headers: { 'x-big': 'a'.repeat(6000) } });
            assert.equal(big.status, 404);
            // An id list that fits lws's buffer but holds an overlong id: 400.
            const arg = await api(base(), `/v1/users?ids=a,${'b'.repeat(3000)}`, { key: KEY });
            assert.equal(arg.status, 400);
            // The daemon is fine afterwards.
            assert.equal((await api(admin(), '/healthz')).status, 200);
        });

        it('a request that stops halfway is timed out', async (t) => {
            const t0 = Date.now();
            const half = await rawRequest(d.host, d.port, 'GET /v1/stats HTTP/1.1\r\nHost: x\r\n', { ms: 15000 });
            assert.equal(half.closed, true, 'closed by the server');
            assert.equal(half.text, '', 'without an answer');
            t.diagnostic(`closed after ${Date.now() - t0} ms (http_timeout 2 s)`);
            const body = await rawRequest(d.host, d.port,
                `POST /v1/users/bulk HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEY}\r\nContent-Length: 100\r\n\r\n{"userIds":`, { ms: 15000 });
            assert.equal(body.closed, true);
            assert.equal((await api(admin(), '/healthz')).status, 200);
        });

        it('metrics: the families, and no user ids or rooms as labels', async () => {
            const s = await pool.connect(base(), '/', { auth: { userId: 'metric-user' } });
            await s.emitWithAck('presence:room:join', { room: 'metric-room' });
            const text = (await api(admin(), '/metrics')).text;
            for (const name of [
                'presenced_connections{transport="polling"}',
                'presenced_connections{transport="websocket"}',
                'presenced_sockets_local ',
                'presenced_users_local ',
                'presenced_users_online ',
                'presenced_sockets_cluster ',
                'presenced_rooms ',
                'presenced_instances ',
                'presenced_events_in_total{type="online"}',
                'presenced_events_out_total{event="presence:online"}',
                'presenced_store_command_seconds_bucket',
                'presenced_store_errors_total',
                'presenced_reaped_sockets_total',
                'presenced_http_requests_total{code="2xx"}',
                'presenced_event_streams ',
            ]) assert.ok(text.includes(name), `missing ${name}\n${text}`);
            assert.doesNotMatch(text, /metric-user|metric-room/);
            for (const line of text.split('\n')) {
                if (!line || line.startsWith('#')) continue;
                assert.match(line, /^[a-z_]+(\{[a-z]+="[^"]*"(,[a-z]+="[^"]*")*\})? [-+0-9.eInf]+$/, line);
            }
            s.close();
        });

        if (store === 'redis') {
            it('internal: what the store cannot answer is a 500 internal (and an ack error), logged; others carry on', async () => {
                // A user record that is not what the scripts expect (a string, not a hash).
                const key = presenceKey('presenced:', 'u', 'corrupt');
                assert.equal(await redis.command('SET', key, 'not a hash'), '+OK');
                const logged = d.stderrText.length;
                const r = await api(base(), '/v1/users/corrupt', { key: KEY });
                assert.equal(r.status, 500);
                assert.equal(r.json.error.code, 'internal');
                assert.equal(typeof r.json.error.message, 'string');
                const s = await pool.connect(base(), '/', { auth: { userId: 'asker' } });
                const ack = await s.emitWithAck('presence:query', { userIds: ['corrupt'] });
                assert.equal(ack.ok, false);
                assert.equal(ack.error.code, 'internal');
                assert.match(d.stderrText.slice(logged), /level=error msg="redis script failed"/);
                // The daemon, the socket and the other users are fine.
                assert.equal((await api(base(), '/v1/users/asker', { key: KEY })).json.online, true);
                assert.deepEqual((await s.emitWithAck('presence:query', { userIds: ['asker'] })).users.asker.online, true);
                assert.equal((await api(admin(), '/healthz')).status, 200);
                await redis.command('DEL', key);
                s.close();
            });
        }

        if (store === 'redis') test('readyz says 503 with a reason when the store is unreachable', { timeout: 30000 }, async () => {
            await redis.stop();
            try {
                const r = await until(async () => {
                    const x = await api(admin(), '/readyz');
                    return x.status === 503 && x;
                }, 10000, 'readyz 503');
                assert.equal(r.json.status, 'unavailable');
                assert.equal(typeof r.json.reason, 'string');
                assert.equal((await api(admin(), '/healthz')).status, 200, 'alive all the same');
                const q = await api(base(), '/v1/users/x', { key: KEY });
                assert.equal(q.status, 503);
                assert.equal(q.json.error.code, 'store_unavailable');
            } finally {
                redis = await startRedis({ port: redis.port });
            }
            await until(async () => (await api(admin(), '/readyz')).status === 200, 10000, 'readyz 200 again');
        });
    });
}
