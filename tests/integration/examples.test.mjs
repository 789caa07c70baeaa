// The examples of docs/examples/ run as a reader would run them, so that they cannot rot: the
// JWT-signing snippet's tokens are accepted by a daemon with auth = jwt, the Node.js backend
// (a separate process) follows the event stream and reads /v1/users, and the "who is here" page
// shows a document's users in Debian's chromium (playwright-core), loading the client the daemon
// serves and socket.io-client's browser build from the page's own site.
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { startDaemon } from './lib/daemon.mjs';
import { ClientPool, waitFor } from './lib/client.mjs';
import { waitUntil } from './lib/presence.mjs';
import { signToken } from '../../docs/examples/sign-token.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const EXAMPLES = path.join(here, '../../docs/examples');
const SECRET = 'examples-secret-0123456789abcdef0123456789';
const CHROMIUM = '/usr/bin/chromium';
const pool = new ClientPool();
const daemons = [];
after(async () => {
    pool.closeAll();
    for (const d of daemons) await d.stop();
});
const daemon = async (set) => {
    const d = await startDaemon({ set });
    daemons.push(d);
    return d;
};

describe('docs/examples', () => {
    test('sign-token.mjs: its tokens identify the socket, as a module and as a command', { timeout: 20000 }, async () => {
        const d = await daemon({ auth: 'jwt', jwt_secret: SECRET });
        const token = signToken(SECRET, { sub: 'ex-alice', presence: { name: 'Alice' } });
        const a = await pool.connect(d.url, '/', { transports: ['websocket'], auth: { token } });
        const q = await a.emitWithAck('presence:query', { userIds: ['ex-alice'] });
        assert.deepEqual(q.users['ex-alice'].metadata, { name: 'Alice' });
        const cli = execFileSync(process.execPath, [path.join(EXAMPLES, 'sign-token.mjs'), 'ex-bob', 'Bob'], {
            env: { ...process.env, PRESENCED_JWT_SECRET: SECRET },
        }).toString().trim();
        const b = await pool.connect(d.url, '/', { transports: ['websocket'], auth: { token: cli } });
        assert.equal((await b.emitWithAck('presence:query', { userIds: ['ex-bob'] })).users['ex-bob'].online, true);
        // A token signed with another secret is refused.
        const bad = pool.socket(d.url, '/', { transports: ['websocket'], auth: { token: signToken(`${SECRET}x`, { sub: 'ex-eve' }) } });
        const [err] = await waitFor(bad, 'connect_error');
        assert.equal(err.message, 'unauthorized');
    });

    test('backend.mjs: follows /v1/events and reads /v1/users', { timeout: 30000 }, async () => {
        const d = await daemon({ api_key: 'examples-key' });
        const child = spawn(process.execPath, [path.join(EXAMPLES, 'backend.mjs')], {
            env: { ...process.env, PRESENCED_URL: d.url, PRESENCED_API_KEY: 'examples-key' },
            stdio: ['ignore', 'pipe', 'pipe'],
        });
        let out = '';
        child.stdout.on('data', (b) => (out += b));
        child.stderr.on('data', (b) => (out += b));
        try {
            await waitUntil(() => out.includes('following presence events'), { ms: 10000, what: 'the backend to start' });
            const a = await pool.connect(d.url, '/', { transports: ['websocket'], auth: { userId: 'ex-carol', metadata: { name: 'Carol' } } });
            await waitUntil(() => out.includes('online ex-carol (Carol) on 1 socket(s)'), { ms: 10000, what: `the online line in ${out}` });
            await a.emitWithAck('presence:room:join', { room: 'doc:1' });
            await a.emitWithAck('presence:status', { status: 'away' });
            a.disconnect();
            await waitUntil(() => /offline ex-carol, last seen \d{4}-/.test(out), { ms: 10000, what: `the offline line in ${out}` });
            assert.ok(out.includes('room.join ex-carol doc:1'), out);
            assert.ok(out.includes('update ex-carol: online -> away'), out);
            assert.ok(!out.includes('stream error'), out);
        } finally {
            child.kill();
        }
    });

    test('who-is-here.html: the page lists who is on the document, with name and status', { timeout: 60000 }, async () => {
        const page = fs.readFileSync(path.join(EXAMPLES, 'who-is-here.html'));
        const bundle = fs.readFileSync(path.join(here, 'node_modules/socket.io-client/dist/socket.io.min.js'));
        const site = http.createServer((req, res) => {
            const file = req.url.split('?')[0];
            if (file === '/who-is-here.html') res.writeHead(200, { 'content-type': 'text/html' }).end(page);
            else if (file === '/socket.io.min.js') res.writeHead(200, { 'content-type': 'text/javascript' }).end(bundle);
            else res.writeHead(404).end();
        });
        await new Promise((r) => site.listen(0, '127.0.0.1', r));
        const origin = `http://127.0.0.1:${site.address().port}`;
        const d = await daemon({ allowed_origins: origin, offline_grace: 0 });
        if (!fs.existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} not found: install Debian's chromium (scripts/deps test)`);
        const browser = await chromium.launch({
            executablePath: CHROMIUM,
            headless: true,
            timeout: 20000,
            args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
        });
        try {
            const open = async (user, name) => {
                const p = await (await browser.newContext()).newPage();
                const errors = [];
                p.on('pageerror', (e) => errors.push(e.message));
                await p.goto(`${origin}/who-is-here.html?daemon=${encodeURIComponent(d.url)}&doc=7&user=${user}&name=${name}`);
                p.errors = errors;
                return p;
            };
            const shown = (p) => p.$$eval('#here li', (lis) => lis.map((li) => li.textContent));
            const alice = await open('ex-alice', 'Alice');
            const bob = await open('ex-bob', 'Bob');
            const dave = await pool.connect(d.url, '/', { transports: ['websocket'], auth: { userId: 'ex-dave', metadata: { name: 'Dave' } } });
            await dave.emitWithAck('presence:room:join', { room: 'doc:7' });
            const want = ['Alice (online)', 'Bob (online)', 'Dave (online)'];
            for (const p of [alice, bob]) await waitUntil(async () => JSON.stringify(await shown(p)) === JSON.stringify(want), { ms: 15000, what: 'everyone on the page' });
            await dave.emitWithAck('presence:status', { status: 'busy' });
            await waitUntil(async () => (await shown(alice)).includes('Dave (busy)'), { ms: 10000, what: 'the status on the page' });
            await bob.close();
            dave.disconnect();
            await waitUntil(async () => JSON.stringify(await shown(alice)) === JSON.stringify(['Alice (online)']), { ms: 10000, what: 'the leaves on the page' });
            assert.equal(await alice.textContent('#count'), '1');
            assert.deepEqual(alice.errors, []);
        } finally {
            await browser.close();
            site.close();
        }
    });
});
