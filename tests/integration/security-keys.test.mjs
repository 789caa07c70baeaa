// Rotating JWT keys without a restart: replace the key file, send SIGHUP. Tokens signed by the new
// key are accepted, tokens signed by the old one refused, connected sockets keep their identity;
// a key file that cannot be used keeps the previous key. HS256 with jwt_secret_file and RS256 with
// jwt_public_key_file.
import { describe, test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startDaemon } from './lib/daemon.mjs';
import { ClientPool, waitFor } from './lib/client.mjs';
import { PClient } from './lib/presence.mjs';

const T = { timeout: 30000 };
const OLD = 'the-first-secret-of-this-test-0123456789';
const NEW = 'the-rotated-secret-of-this-test-98765432';

const b64u = (v) => Buffer.from(JSON.stringify(v)).toString('base64url');
const claims = (sub) => ({ sub, exp: Math.floor(Date.now() / 1000) + 3600 });

function hs256(sub, secret) {
    const body = `${b64u({ alg: 'HS256', typ: 'JWT' })}.${b64u(claims(sub))}`;
    return `${body}.${crypto.createHmac('sha256', secret).update(body).digest('base64url')}`;
}

function rs256(sub, privateKey) {
    const body = `${b64u({ alg: 'RS256', typ: 'JWT' })}.${b64u(claims(sub))}`;
    return `${body}.${crypto.sign('sha256', Buffer.from(body), privateKey).toString('base64url')}`;
}

const pool = new ClientPool();
let tmp;
afterEach(() => pool.closeAll());
before(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'presenced-keys-'));
});
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

async function connect(d, token, label) {
    const s = await pool.connect(d.url, '/', { transports: ['websocket'], auth: { token } });
    return new PClient(s, { label });
}

async function refused(d, token, what) {
    const s = pool.socket(d.url, '/', { transports: ['websocket'], auth: { token } });
    const [err] = await waitFor(s, 'connect_error', { failOn: 'connect' }).catch((e) => {
        throw new Error(`${what}: expected connect_error: ${e.message}`);
    });
    assert.equal(err.message, 'unauthorized', `${what}: connect_error message`);
    s.disconnect();
}

/** SIGHUP, then wait for the n-th log line containing `text` (n counts from the daemon's start). */
async function reload(d, text) {
    const before = d.stderrText.split(text).length - 1;
    d.signal('SIGHUP');
    const deadline = Date.now() + 5000;
    while (d.stderrText.split(text).length - 1 <= before) {
        if (Date.now() > deadline) throw new Error(`no "${text}" in the log after SIGHUP:\n${d.stderrTail(2000)}`);
        await new Promise((r) => setTimeout(r, 20));
    }
}

/** The log lines from the last one containing `since` (the newest reload's) on. */
function linesAfterLast(d, since) {
    const lines = d.stderrText.split('\n');
    let at = -1;
    lines.forEach((l, i) => { if (l.includes(since)) at = i; });
    return lines.slice(at);
}

/** A reload that could not read the key ends with one error line naming it, and with no claim
 * that the configuration was reloaded. */
async function failedReload(d, cause) {
    await reload(d, cause);
    const deadline = Date.now() + 5000;
    let after;
    while (!(after = linesAfterLast(d, cause)).some((l) => l.includes('msg="reload failed"'))) {
        if (Date.now() > deadline) throw new Error(`no "reload failed" after "${cause}":\n${d.stderrTail(2000)}`);
        await new Promise((r) => setTimeout(r, 20));
    }
    const summary = after.find((l) => l.includes('msg="reload failed"'));
    assert.match(summary, /level=error /, 'a failed reload is logged at error level');
    assert.match(summary, /failed="jwt keys"/, 'the failed reload names what failed');
    assert.ok(!after.some((l) => l.includes('configuration reloaded')), `a failed reload claims success:\n${after.join('\n')}`);
}

/** The socket still works as `userId`: its own query sees it online. */
async function stillIdentified(c, userId) {
    const r = await c.query([userId]);
    assert.equal(r[userId].online, true, `${userId} is still online after the reload`);
}

describe('JWT key rotation on SIGHUP', () => {
    test('HS256: the new secret file is used, the old secret refused, connected sockets stay', T, async () => {
        const file = path.join(tmp, 'jwt.key');
        fs.writeFileSync(file, `${OLD}\n`);
        const d = await startDaemon({ set: { auth: 'jwt', jwt_secret_file: file } });
        await d.wrap(async () => {
            const alice = await connect(d, hs256('alice', OLD), 'alice');
            fs.writeFileSync(file, `${NEW}\n`);
            await reload(d, 'applied="jwt keys"');
            await refused(d, hs256('bob', OLD), 'token signed by the replaced secret');
            await connect(d, hs256('bob', NEW), 'bob');
            await stillIdentified(alice, 'alice');

            // An unusable key (too short for HS256) is refused and the current one kept.
            fs.writeFileSync(file, 'short\n');
            await failedReload(d, 'unusable JWT key');
            await refused(d, hs256('carol', 'short'), 'token signed by the refused short secret');
            await connect(d, hs256('carol', NEW), 'carol');

            // A missing file likewise.
            fs.rmSync(file);
            await failedReload(d, 'cannot read jwt_secret_file');
            await connect(d, hs256('dave', NEW), 'dave');
            await stillIdentified(alice, 'alice');
        })();
        await d.stop();
    });

    test('RS256: a new public key file replaces the old key pair', T, async () => {
        const first = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
        const second = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
        const pem = (k) => k.publicKey.export({ type: 'spki', format: 'pem' });
        const file = path.join(tmp, 'public.pem');
        fs.writeFileSync(file, pem(first));
        const d = await startDaemon({ set: { auth: 'jwt', jwt_public_key_file: file } });
        await d.wrap(async () => {
            const erin = await connect(d, rs256('erin', first.privateKey), 'erin');
            fs.writeFileSync(file, pem(second));
            await reload(d, 'applied="jwt keys"');
            await refused(d, rs256('frank', first.privateKey), 'token signed by the replaced key pair');
            await connect(d, rs256('frank', second.privateKey), 'frank');
            await stillIdentified(erin, 'erin');
        })();
        await d.stop();
    });
});
