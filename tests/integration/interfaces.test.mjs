// Machine-checked interfaces: the OpenAPI 3.1 document of the HTTP API (docs/openapi.json) is
// valid by the OpenAPI 3.1 schema (@seriousme/openapi-schema-validator) and is what the daemon
// serves at /v1/openapi.json; the HTTP tests check every answer against it (lib/openapi.mjs);
// /metrics, after traffic of every kind, passes Prometheus's own `promtool check metrics`.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { Validator } from '@seriousme/openapi-schema-validator';
import { startDaemon } from './lib/daemon.mjs';
import { startRedis } from './lib/redis.mjs';
import { ClientPool, waitFor } from './lib/client.mjs';
import { api, SseStream } from './lib/http.mjs';
import { OPENAPI_PATH, checkAnswer } from './lib/openapi.mjs';

let redis, d;
const pool = new ClientPool();

before(async () => {
    redis = await startRedis();
    d = await startDaemon({ set: { store: 'redis', redis: `redis://127.0.0.1:${redis.port}/0` } });
});
after(async () => {
    pool.closeAll();
    await d?.stop();
    await redis?.stop();
});

test('docs/openapi.json is a valid OpenAPI 3.1 document', async () => {
    const doc = JSON.parse(readFileSync(OPENAPI_PATH, 'utf8'));
    assert.equal(doc.openapi, '3.1.0');
    const v = new Validator();
    const res = await v.validate(doc);
    assert.deepEqual(res, { valid: true }, JSON.stringify(res.errors, null, 1));
    assert.equal(v.version, '3.1');
    // The validator is not a rubber stamp: a parameter in no valid place is refused.
    const broken = structuredClone(doc);
    broken.paths['/v1/users'].get.parameters[0].in = 'body';
    assert.equal((await new Validator().validate(broken)).valid, false);
});

test('GET /v1/openapi.json serves the document', async () => {
    const r = await api(d.url, '/v1/openapi.json');
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('content-type'), 'application/json');
    assert.equal(r.text, readFileSync(OPENAPI_PATH, 'utf8'));
});

test('answers that do not match the document are caught', () => {
    const check = (status, body, path = '/v1/users/alice', type = 'application/json') =>
        checkAnswer({ method: 'GET', url: `http://h${path}`, status, contentType: type, text: JSON.stringify(body) });
    const user = { userId: 'alice', online: true, status: 'online', socketIds: [], lastSeen: null, metadata: null };
    assert.equal(check(200, user), true);
    assert.throws(() => check(200, { ...user, online: 'yes' }), /does not match/);
    assert.throws(() => check(200, user, '/v1/users/alice', 'text/plain'), /Content-Type/);
    assert.throws(() => check(500, { oops: true }), /does not match/);
    assert.throws(() => check(404, { error: { code: 'no_such_code', message: 'x' } }), /does not match/);
    assert.throws(() => check(200, {}, '/v1/nothing'), /does not have/);
    assert.equal(check(404, { error: { code: 'not_found', message: 'Not found' } }, '/v1/nothing'), true);
});

test('/metrics passes promtool check metrics after traffic of every kind', async () => {
    // Sockets on both transports, presence changes, HTTP answers of several classes, an event stream.
    const a = await pool.connect(d.url, '/', { auth: { userId: 'alice' }, transports: ['websocket'] });
    const b = await pool.connect(d.url, '/', { auth: { userId: 'bob' }, transports: ['polling'] });
    assert.equal((await a.emitWithAck('presence:room:join', { room: 'r' })).ok, true);
    assert.equal((await b.emitWithAck('presence:status', { status: 'away' })).ok, true);
    const sse = new SseStream(d.url, { lastEventId: '0' });
    await sse.ready;
    await sse.until((evs) => evs.some((e) => e.data.type === 'user.update'));
    assert.equal((await api(d.url, '/v1/users?ids=alice,bob')).status, 200);
    assert.equal((await api(d.url, '/v1/users/nobody')).status, 404);
    const off = waitFor(a, 'disconnect');
    a.disconnect();
    await off;
    const r = await api(d.url, '/metrics');
    assert.equal(r.status, 200);
    assert.match(r.text, /presenced_store_command_seconds_bucket/);
    assert.match(r.text, /presenced_event_streams 1/);
    sse.close();

    const ok = spawnSync('promtool', ['check', 'metrics'], { input: r.text, encoding: 'utf8' });
    assert.equal(ok.error, undefined, `promtool: ${ok.error?.message} (Debian's prometheus package)`);
    assert.equal(ok.status, 0, `promtool check metrics:\n${ok.stdout}${ok.stderr}`);
    assert.equal(ok.stdout + ok.stderr, '', 'no lint findings');
    // promtool does find problems: a counter without _total and a sample of an undeclared type.
    const bad = spawnSync('promtool', ['check', 'metrics'], {
        input: '# HELP x_requests Requests.\n# TYPE x_requests counter\nx_requests 1\nx_requests 2\n',
        encoding: 'utf8',
    });
    assert.notEqual(bad.status, 0, 'promtool refuses a bad exposition');
});
