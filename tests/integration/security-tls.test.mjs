// tls_cert / tls_key: the main listener serves HTTPS and WSS with a self-signed P-256 certificate
// made here with openssl; HTTP/2 is never negotiated (ALPN picks http/1.1 even when h2 is
// offered) and TLS 1.1 is refused. A daemon that cannot listen (its port or admin port taken),
// with TLS or without, exits 1 saying why, and tears down what it had started cleanly: no
// sanitizer finding (the libwebsockets context is destroyed on the loop before the server's
// memory goes, as after a shutdown).
import { describe, test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { binaryPath, startDaemon } from './lib/daemon.mjs';
import net from 'node:net';
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

describe('a start that fails', () => {
    // A port held by this test for as long as it runs.
    async function holdPort() {
        const srv = net.createServer();
        await new Promise((resolve, reject) => srv.once('error', reject).listen(0, '127.0.0.1', resolve));
        return srv;
    }
    for (const tls of [false, true]) {
        for (const taken of ['listen', 'admin_listen']) {
            test(`${taken} taken${tls ? ', with TLS' : ''}: exit 1, "cannot listen", no sanitizer finding`, T, async () => {
                const held = await holdPort();
                const other = await holdPort();
                const free = other.address().port;
                await new Promise((r) => other.close(r));
                try {
                    const ports = { listen: free, admin_listen: free };
                    ports[taken] = held.address().port;
                    const args = ['--listen', `127.0.0.1:${ports.listen}`, '--set', `admin_listen=127.0.0.1:${ports.admin_listen}`];
                    if (tls)
                        args.push('--set', `tls_cert=${path.join(tmp, 'cert.pem')}`, '--set', `tls_key=${path.join(tmp, 'key.pem')}`);
                    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('PRESENCED_')));
                    const r = spawnSync(binaryPath(), args, { env, encoding: 'utf8', timeout: 20000 });
                    assert.equal(r.status, 1, r.stderr);
                    assert.match(r.stderr, new RegExp(`msg="cannot listen" host=127\\.0\\.0\\.1 port=${ports[taken]}`), r.stderr);
                    assert.match(r.stderr, /msg="cannot start"/);
                    assert.doesNotMatch(r.stderr, /Sanitizer|runtime error/, r.stderr);
                } finally {
                    await new Promise((r) => held.close(r));
                }
            });
        }
    }
});
