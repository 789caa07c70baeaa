// auth = jwt: identity comes only from tokens signed by the backend. Tokens are made here with
// node:crypto (HS256 with createHmac, RS256 with a generated key pair whose public half is written
// to a temp file for jwt_public_key_file). Checks what other clients see (sub and the presence
// claim), every way a token can be bad, identify, spoofed userIds, the rooms claim, expiry and
// refresh.
import { describe, test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startDaemon } from './lib/daemon.mjs';
import { ClientPool, waitFor } from './lib/client.mjs';
import { PClient } from './lib/presence.mjs';
import { metric } from './lib/http.mjs';

const T = { timeout: 30000 };
const SECRET = 'a-test-secret-that-is-long-enough-0123456789';
const AUD = 'presenced-test';

const b64u = (v) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');
const nowS = () => Math.floor(Date.now() / 1000);

/** An HS256 token over `claims` (exp defaults to an hour ahead, aud to AUD). */
function hs256(claims, { secret = SECRET, header = { alg: 'HS256', typ: 'JWT' } } = {}) {
    const body = `${b64u(header)}.${b64u({ exp: nowS() + 3600, aud: AUD, ...claims })}`;
    const sig = crypto.createHmac('sha256', secret).update(body).digest('base64url');
    return `${body}.${sig}`;
}

function rs256(claims, privateKey) {
    const body = `${b64u({ alg: 'RS256', typ: 'JWT' })}.${b64u({ exp: nowS() + 3600, ...claims })}`;
    const sig = crypto.sign('sha256', Buffer.from(body), privateKey).toString('base64url');
    return `${body}.${sig}`;
}

const pool = new ClientPool();
let hs; // auth=jwt, HS256, jwt_audience set, jwt_leeway=0
let rs; // auth=jwt, RS256 public key file
let tmp;
let rsKeys;

before(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'presenced-jwt-'));
    rsKeys = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
    const pem = path.join(tmp, 'public.pem');
    fs.writeFileSync(pem, rsKeys.publicKey.export({ type: 'spki', format: 'pem' }));
    hs = await startDaemon({ set: { auth: 'jwt', jwt_secret: SECRET, jwt_audience: AUD, jwt_leeway: 0, log_level: 'debug' } });
    rs = await startDaemon({ set: { auth: 'jwt', jwt_public_key_file: pem } });
});
afterEach(() => pool.closeAll());
after(async () => {
    pool.closeAll();
    await hs?.stop();
    await rs?.stop();
    fs.rmSync(tmp, { recursive: true, force: true });
});

async function connect(d, auth, label) {
    const s = await pool.connect(d.url, '/', { transports: ['websocket'], auth });
    return new PClient(s, { label });
}

/** Connecting with `auth` fails with CONNECT_ERROR "unauthorized" (or `message`). */
async function refused(d, auth, what, message = 'unauthorized') {
    const s = pool.socket(d.url, '/', { transports: ['websocket'], auth });
    const [err] = await waitFor(s, 'connect_error', { failOn: 'connect' }).catch((e) => {
        throw new Error(`${what}: expected connect_error: ${e.message}`);
    });
    assert.equal(err.message, message, `${what}: connect_error message`);
    s.disconnect();
}

/** A fresh valid client still connects and is seen online by `watcher`: the daemon serves others. */
async function stillServes(d, watcher, userId) {
    const c = await connect(d, { token: hs256({ sub: userId }) }, userId);
    await watcher.rec.waitFor('presence:online', { userId });
    return c;
}

describe('auth = jwt (HS256)', () => {
    test('valid token: others see the sub and the presence claim, not what the client sent', T, () =>
        hs.wrap(async () => {
            const watcher = await connect(hs, { token: hs256({ sub: 'watcher' }) }, 'watcher');
            const token = hs256({ sub: 'alice', presence: { name: 'Alice', role: 'admin' } });
            await connect(hs, { token, metadata: { name: 'Mallory' } }, 'alice');
            const ev = await watcher.rec.waitFor('presence:online', { userId: 'alice' });
            assert.deepEqual(ev.data.metadata, { name: 'Alice', role: 'admin' });
        })());

    test('a matching userId next to the token is accepted, a different one refused', T, () =>
        hs.wrap(async () => {
            await connect(hs, { token: hs256({ sub: 'bob' }), userId: 'bob' }, 'bob');
            await refused(hs, { token: hs256({ sub: 'bob' }), userId: 'carol' }, 'userId differs from sub');
            await refused(hs, { userId: 'carol' }, 'userId without a token');
        })());

    test('bad tokens get connect_error "unauthorized" and the daemon keeps serving', T, () =>
        hs.wrap(async () => {
            const watcher = await connect(hs, { token: hs256({ sub: 'w2' }) }, 'w2');
            const good = hs256({ sub: 'dave' });
            const [h, , sig] = good.split('.');
            const forged = `${h}.${b64u({ exp: nowS() + 3600, aud: AUD, sub: 'root' })}.${sig}`;
            const cases = {
                forged,
                expired: hs256({ sub: 'dave', exp: nowS() - 10 }),
                'wrong audience': hs256({ sub: 'dave', aud: 'someone-else' }),
                'no audience': hs256({ sub: 'dave', aud: undefined }),
                'alg none': `${b64u({ alg: 'none', typ: 'JWT' })}.${b64u({ exp: nowS() + 3600, aud: AUD, sub: 'dave' })}.`,
                'wrong secret': hs256({ sub: 'dave' }, { secret: 'another-secret-that-is-also-long-enough!!' }),
                'RS256 token for an HS256 key': rs256({ sub: 'dave', aud: AUD }, rsKeys.privateKey),
                garbage: 'not.a.token',
                'not a string': 42,
            };
            for (const [what, token] of Object.entries(cases)) await refused(hs, { token }, what);
            await stillServes(hs, watcher, 'erin');
            assert.equal(watcher.rec.count('presence:online', (d) => d.userId === 'root' || d.userId === 'dave'), 0);
        })());

    test('presence:identify with a token; bad token → unauthorized', T, () =>
        hs.wrap(async () => {
            const c = await connect(hs, undefined, 'anonymous');
            await c.fails('presence:room:join', { room: 'r' }, 'not_identified');
            await c.fails('presence:identify', { token: hs256({ sub: 'frank' }, { secret: 'x'.repeat(40) }) }, 'unauthorized');
            await c.fails('presence:identify', { userId: 'frank' }, 'unauthorized');
            await c.ok('presence:identify', { token: hs256({ sub: 'frank' }) });
            const r = await c.query(['frank']);
            assert.equal(r.frank.online, true);
        })());

    test('a userId naming another user in a command is refused', T, () =>
        hs.wrap(async () => {
            const c = await connect(hs, { token: hs256({ sub: 'gina' }) }, 'gina');
            await c.fails('presence:room:join', { room: 'x', userId: 'henry' }, 'forbidden');
            await c.fails('presence:status', { status: 'away', userId: 'henry' }, 'forbidden');
            await c.ok('presence:room:join', { room: 'x', userId: 'gina' });
        })());

    test('presence:status ignores client metadata in jwt mode', T, () =>
        hs.wrap(async () => {
            const watcher = await connect(hs, { token: hs256({ sub: 'w3' }) }, 'w3');
            const c = await connect(hs, { token: hs256({ sub: 'ivy', presence: { n: 1 } }) }, 'ivy');
            await watcher.rec.waitFor('presence:online', { userId: 'ivy' });
            await c.ok('presence:status', { status: 'away', metadata: { n: 666 } });
            const ev = await watcher.rec.waitFor('presence:update', { userId: 'ivy' });
            assert.equal(ev.data.status, 'away');
            assert.deepEqual(ev.data.metadata, { n: 1 });
        })());

    test('the rooms claim restricts presence:room:join', T, () =>
        hs.wrap(async () => {
            const c = await connect(hs, { token: hs256({ sub: 'jack', rooms: ['lobby', 'team:*'] }) }, 'jack');
            await c.ok('presence:room:join', { room: 'lobby' });
            await c.ok('presence:room:join', { room: 'team:red' });
            await c.fails('presence:room:join', { room: 'admin' }, 'forbidden');
            await c.fails('presence:room:join', { room: 'lobby2' }, 'forbidden');
            const none = await connect(hs, { token: hs256({ sub: 'kim', rooms: [] }) }, 'kim');
            await none.fails('presence:room:join', { room: 'lobby' }, 'forbidden');
        })());

    test('the token expiry disconnects; presence:refresh extends it', T, () =>
        hs.wrap(async () => {
            const exp = nowS() + 3;
            const short = await connect(hs, { token: hs256({ sub: 'leo', exp }) }, 'leo');
            const kept = await connect(hs, { token: hs256({ sub: 'mia', exp }) }, 'mia');
            await kept.fails('presence:refresh', { token: hs256({ sub: 'leo' }) }, 'forbidden');
            await kept.fails('presence:refresh', { token: hs256({ sub: 'mia', exp: nowS() - 5 }) }, 'unauthorized');
            await kept.ok('presence:refresh', { token: hs256({ sub: 'mia', exp: nowS() + 60 }) });
            await waitFor(short.socket, 'disconnect', { ms: 15000 });
            assert.ok(nowS() >= exp, 'not disconnected before exp');
            // One pass over the sockets disconnects every expired one: had the refresh not
            // replaced the expiry, the kept socket would have gone in the same pass, and this
            // command (sent after it) would get no answer.
            await kept.ok('presence:heartbeat', {});
            assert.equal(kept.connected, true, 'the refreshed socket stays');
            assert.equal(await metric(hs.url, 'presenced_auth_tokens_total{result="expired_disconnect"}'), 1, 'one socket disconnected for expiry');
        })());
});

describe('auth = jwt (RS256 public key file)', () => {
    test('RS256 tokens verify; HS256 tokens and other keys do not', T, () =>
        rs.wrap(async () => {
            const watcher = await connect(rs, { token: rs256({ sub: 'w' }, rsKeys.privateKey) }, 'w');
            await connect(rs, { token: rs256({ sub: 'nora', presence: { x: 1 } }, rsKeys.privateKey) }, 'nora');
            const ev = await watcher.rec.waitFor('presence:online', { userId: 'nora' });
            assert.deepEqual(ev.data.metadata, { x: 1 });
            const other = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
            await refused(rs, { token: rs256({ sub: 'oscar' }, other.privateKey) }, 'signed by another key');
            await refused(rs, { token: hs256({ sub: 'oscar' }) }, 'HS256 token for an RS256 key');
            const pub = rsKeys.publicKey.export({ type: 'spki', format: 'pem' });
            await refused(rs, { token: hs256({ sub: 'oscar' }, { secret: pub }) }, 'public key used as HMAC secret');
        })());
});
