// tls_cert / tls_key: the main listener serves HTTPS and WSS with a self-signed P-256 certificate
// made here with openssl; HTTP/2 is never negotiated (ALPN picks http/1.1 even when h2 is
// offered) and TLS 1.1 is refused.
import { describe, test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startDaemon } from './lib/daemon.mjs';
import { ClientPool } from './lib/client.mjs';
import { PClient } from './lib/presence.mjs';

const T = { timeout: 30000 };
const pool = new ClientPool();
let d, tmp;

before(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'presenced-tls-'));
    const cert = path.join(tmp, 'cert.pem');
    const key = path.join(tmp, 'key.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1', '-subj', '/CN=localhost', '-keyout', key, '-out', cert], { stdio: 'ignore' });
    d = await startDaemon({ set: { tls_cert: cert, tls_key: key } });
});
afterEach(() => pool.closeAll());
after(async () => {
    pool.closeAll();
    await d?.stop();
    fs.rmSync(tmp, { recursive: true, force: true });
});

const httpsUrl = () => `https://${d.host}:${d.port}`;

function sClient(args) {
    return spawnSync('openssl', ['s_client', '-connect', `${d.host}:${d.port}`, ...args], { input: '', encoding: 'utf8', timeout: 10000 });
}

describe('TLS', () => {
    for (const transport of ['websocket', 'polling']) {
        test(`socket.io-client over ${transport === 'websocket' ? 'wss' : 'https polling'}`, T, () =>
            d.wrap(async () => {
                const opts = { transports: [transport], rejectUnauthorized: false };
                const watcher = new PClient(await pool.connect(httpsUrl(), '/', { ...opts, auth: { userId: `w-${transport}` } }));
                await pool.connect(httpsUrl(), '/', { ...opts, auth: { userId: `tls-${transport}` } });
                await watcher.rec.waitFor('presence:online', { userId: `tls-${transport}` });
                await watcher.ok('presence:heartbeat', {});
            })());
    }

    test('ALPN selects http/1.1 even when h2 is offered; TLS 1.1 is refused', T, () =>
        d.wrap(async () => {
            const r = sClient(['-alpn', 'h2,http/1.1']);
            assert.match(r.stdout, /ALPN protocol: http\/1\.1/, r.stdout + r.stderr);
            const old = sClient(['-tls1_1']);
            assert.match(old.stdout, /Cipher is \(NONE\)/, `no TLS 1.1 session: ${old.stdout}${old.stderr}`);
            const v12 = sClient(['-tls1_2']);
            assert.match(v12.stdout, /New, TLSv1\.2, Cipher is ECDHE-/, 'TLS 1.2 with a forward-secret suite');
        })());

    test('plain HTTP on the TLS port is not served', T, () =>
        d.wrap(async () => {
            const res = await fetch(`http://${d.host}:${d.port}/socket.io/?EIO=4&transport=polling`).then((r) => r.status).catch(() => 'failed');
            assert.notEqual(res, 200);
        })());
});
