// The presence client in a real browser: Debian's chromium driven by playwright-core. A page on
// another origin loads the browser build of socket.io-client and the client as the daemon serves
// it (GET /presence-client.js, imported cross-origin as an ES module), and keeps a view of a room
// while users churn from Node.js; once the churn settles the page's view must equal
// GET /v1/rooms/{room} with the users' status and metadata (seeded rounds). Idle detection runs on
// the page's real input and visibility events, timed by a fake clock the page controls. Needs
// /usr/bin/chromium (scripts/deps test); if it cannot start, the test fails (it is not skipped).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { startDaemon } from './lib/daemon.mjs';
import { waitUntil } from './lib/presence.mjs';
import { Churn, KEY, Oracle, settle, truth } from './lib/views.mjs';
import { io } from 'socket.io-client';

const here = path.dirname(fileURLToPath(import.meta.url));
const CHROMIUM = '/usr/bin/chromium';
const BASE_SEED = Number(process.env.PRESENCE_CLIENT_SEED ?? 0x5eed) + 5000;
const ROUNDS = Number(process.env.PRESENCE_CLIENT_ROUNDS ?? 3);

// The page: connects to ?daemon= (as ?user= if given) and imports the client from the daemon.
// window.clock is a clock that moves only when the test says so.
const PAGE = `<!doctype html><meta charset="utf-8"><title>views</title>
<script src="/socket.io.min.js"></script>
<body><script type="module">
  const q = new URLSearchParams(location.search);
  const daemon = q.get('daemon');
  const { presence } = await import(daemon + '/presence-client.js');
  let t = 1000000, next = 1;
  const timers = new Map();
  window.clock = {
    now: () => t,
    setTimeout(fn, ms) { const id = next++; timers.set(id, { at: t + Math.max(0, ms), fn }); return id; },
    clearTimeout(id) { timers.delete(id); },
    advance(ms) {
      const end = t + ms;
      for (;;) {
        let due = null;
        for (const [id, x] of timers) if (x.at <= end && (!due || x.at < due[1].at)) due = [id, x];
        if (!due) break;
        timers.delete(due[0]); t = due[1].at; due[1].fn();
      }
      t = end;
    },
  };
  const user = q.get('user');
  const connect = () => io(daemon, { transports: ['websocket'], forceNew: true, auth: user ? { userId: user } : {} });
  const socket = connect();
  window.views = {};
  window.states = {}; // name -> every state the view showed its listeners: [{seq, list}]
  // Each view on a socket of its own: a socket holds one view per room.
  window.watch = (name, options) => {
    const p = (window.views[name] = presence(connect(), options));
    const states = (window.states[name] = []);
    for (const e of ['join', 'leave', 'update', 'sync']) p.on(e, () => states.push({ seq: p.seq, list: p.list() }));
    return p.ready.then(() => true);
  };
  window.watchIdle = (name, options) => {
    window.views[name] = presence(socket, { ...options, clock: window.clock });
    return window.views[name].ready.then(() => true);
  };
  window.shown = (name) => (window.views[name].synced ? window.views[name].list() : 'not synced');
  socket.on('connect', () => { window.connected = true; });
</script></body>`;

function startPageServer() {
    const bundle = fs.readFileSync(path.join(here, 'node_modules/socket.io-client/dist/socket.io.min.js'));
    const srv = http.createServer((req, res) => {
        if (req.url === '/socket.io.min.js') {
            res.writeHead(200, { 'content-type': 'text/javascript' });
            return res.end(bundle);
        }
        if (req.url.startsWith('/views.html')) {
            res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
            return res.end(PAGE);
        }
        res.writeHead(404).end();
    });
    return new Promise((resolve) => srv.listen(0, '127.0.0.1', () => resolve(srv)));
}

async function launch() {
    if (!fs.existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} not found: install Debian's chromium (scripts/deps test)`);
    try {
        return await chromium.launch({
            executablePath: CHROMIUM,
            headless: true,
            timeout: 20000,
            args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
        });
    } catch (err) {
        throw new Error(`chromium (${CHROMIUM}) could not start on this machine: ${err.message}`, { cause: err });
    }
}

describe('presence client in a real browser', () => {
    let d, srv, browser, ctx, origin;
    before(async () => {
        srv = await startPageServer();
        origin = `http://127.0.0.1:${srv.address().port}`;
        d = await startDaemon({ set: { allowed_origins: origin, api_key: KEY, offline_grace: 0, rate_limit: 100000, rate_burst: 100000 } });
        browser = await launch();
        ctx = await browser.newContext();
    });
    after(async () => {
        await browser?.close();
        srv?.close();
        await d?.stop();
    });

    async function open(user) {
        const page = await ctx.newPage();
        const errors = [];
        page.on('pageerror', (e) => errors.push(e.message));
        await page.goto(`${origin}/views.html?daemon=${encodeURIComponent(d.url)}${user ? `&user=${encodeURIComponent(user)}` : ''}`);
        await page.waitForFunction(() => window.connected === true, null, { timeout: 10000 }).catch((err) => {
            throw new Error(`the page did not connect: ${errors.join('; ')}`, { cause: err });
        });
        return { page, errors };
    }

    test(`randomized churn: the page's view ends equal to the server (${ROUNDS} seeded rounds)`, { timeout: 120000 }, () =>
        d.wrap(async () => {
            const { page, errors } = await open(null);
            for (let r = 0; r < ROUNDS; r++) {
                const seed = BASE_SEED + r;
                const room = `page-${seed}`;
                const churn = new Churn({ urls: [d.url], room, seed, prefix: 'br' });
                // A member that hears every single event knows the room at each seq.
                const witness = io(d.url, { transports: ['websocket'], forceNew: true, auth: { userId: `br-oracle-${seed}` } });
                const oracle = new Oracle(witness, room);
                try {
                    await new Promise((r) => witness.once('connect', r));
                    assert.equal((await witness.emitWithAck('presence:room:join', { room })).ok, true);
                    await page.evaluate(([name, room]) => window.watch(name, { room, batchMs: 30 }), [`r${r}`, room]);
                    await churn.run(40, {
                        // Half-way, a second view of the room starts in the middle of it all.
                        during: async (i) => {
                            if (i >= 20 && !(await page.evaluate((n) => !!window.views[n], `late${r}`))) {
                                await page.evaluate(([name, room]) => window.watch(name, { room, batchMs: 0 }), [`late${r}`, room]);
                            }
                        },
                    });
                    for (const name of [`r${r}`, `late${r}`]) {
                        await settle(() => page.evaluate((n) => window.shown(n), name), d.url, { room }, `seed ${seed}, page view ${name}`);
                        // Every state the page's view showed is the room as the server had it then.
                        const states = await page.evaluate((n) => window.states[n], name);
                        assert.ok(states.length > 0, `seed ${seed}: view ${name} showed states`);
                        for (const { seq, list } of states) {
                            assert.deepEqual(list, oracle.at(seq), `seed ${seed}: page view ${name} showed, at seq ${seq}, a state the server never had`);
                        }
                    }
                } finally {
                    churn.close();
                    witness.disconnect();
                }
            }
            assert.deepEqual(errors, [], 'no error on the page');
            await page.close();
        })());

    test('idle detection: away after the idle time or while hidden, back on input', { timeout: 40000 }, () =>
        d.wrap(async () => {
            const { page } = await open('br-idle');
            await page.evaluate(() => window.watchIdle('me', { userIds: ['br-idle'], idle: { after: 60000 } }));
            const status = async () => (await truth(d.url, { userIds: ['br-idle'] }))[0]?.status;
            const until = (want, what) => waitUntil(async () => (await status()) === want, { what, ms: 8000 });
            await page.evaluate(() => window.clock.advance(59000));
            await page.mouse.move(20, 20);
            await page.evaluate(() => window.clock.advance(59000));
            assert.equal(await status(), 'online', 'input restarted the wait');
            await page.evaluate(() => window.clock.advance(2000));
            await until('away', 'away after 60 s without input');
            await page.mouse.move(40, 40);
            await until('online', 'online again after the mouse moved');
            await page.keyboard.press('Shift');
            await page.evaluate(() => {
                Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => 'hidden' });
                document.dispatchEvent(new Event('visibilitychange'));
            });
            await until('away', 'away while the tab is hidden');
            await page.evaluate(() => {
                Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => 'visible' });
                document.dispatchEvent(new Event('visibilitychange'));
            });
            await until('online', 'online when the tab shows again');
            // The page's own view of itself follows.
            await settle(() => page.evaluate(() => window.shown('me')), d.url, { userIds: ['br-idle'] }, 'the page sees itself');
            await page.close();
        })());

    test('GET /presence-client.js is the client, loadable from any origin', { timeout: 10000 }, () =>
        d.wrap(async () => {
            const r = await fetch(`${d.url}/presence-client.js`);
            assert.equal(r.status, 200);
            assert.match(r.headers.get('content-type'), /^text\/javascript/);
            assert.equal(r.headers.get('access-control-allow-origin'), '*');
            assert.equal(await r.text(), fs.readFileSync(path.join(here, '../../clients/js/presence.js'), 'utf8'));
        })());
});
