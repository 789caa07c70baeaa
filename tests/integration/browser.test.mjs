// The live page (GET /) in a real browser: Debian's chromium driven by playwright-core. Users
// connect from other browser tabs with the browser build of socket.io-client, served by this
// test from a second origin (allowed through allowed_origins). The page must show both users
// online, keep a user online while one of their tabs is left, show them offline once the last
// one closes, seed a freshly opened page from the replayed history, and stay behind api_key.
// A screenshot is saved (path printed) for a human look. Needs /usr/bin/chromium
// (scripts/deps test); if it cannot start, the test fails (it is not skipped).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { startDaemon } from './lib/daemon.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const CHROMIUM = '/usr/bin/chromium';
const KEY = 'dash-s3cret';
const WAIT = { timeout: 8000 };
const artifacts = path.join(here, 'artifacts');

/** Serves the browser socket.io-client and a tiny page that connects to `target.url` as ?user=. */
function startClientServer(target) {
    const bundle = fs.readFileSync(path.join(here, 'node_modules/socket.io-client/dist/socket.io.min.js'));
    const page = () => `<!doctype html><meta charset="utf-8"><title>client</title>
<script src="/socket.io.min.js"></script>
<body><p id="state">connecting</p>
<script>
  const userId = new URLSearchParams(location.search).get('user');
  document.title = userId;
  const socket = io(${JSON.stringify(target.url)}, { auth: { userId } });
  window.socket = socket;
  socket.on('connect', () => { document.getElementById('state').textContent = 'connected'; window.sioConnected = true; });
  socket.on('connect_error', (e) => { document.getElementById('state').textContent = 'error: ' + e.message; });
</script></body>`;
    const srv = http.createServer((req, res) => {
        if (req.url === '/socket.io.min.js') {
            res.writeHead(200, { 'content-type': 'text/javascript' });
            return res.end(bundle);
        }
        if (req.url.startsWith('/client.html')) {
            res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
            return res.end(page());
        }
        res.writeHead(404).end();
    });
    return new Promise((resolve) => srv.listen(0, '127.0.0.1', () => resolve(srv)));
}

async function launch() {
    if (!fs.existsSync(CHROMIUM)) {
        throw new Error(`${CHROMIUM} not found: install Debian's chromium (scripts/deps test)`);
    }
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

describe('live page in a real browser', () => {
    let d, srv, browser, ctx, origin;
    const target = { url: null }; // the daemon, once started
    before(async () => {
        // The client pages' server first: the daemon must allow its origin.
        srv = await startClientServer(target);
        origin = `http://127.0.0.1:${srv.address().port}`;
        // A history sample every second, so that the charts fill within the test.
        d = await startDaemon({ set: { allowed_origins: origin, api_key: KEY, offline_grace: 0, stats_interval: 1 } });
        target.url = d.url;
        browser = await launch();
        ctx = await browser.newContext({ viewport: { width: 1200, height: 720 } });
    });
    after(async () => {
        await browser?.close();
        srv?.close();
        await d?.stop();
    });

    /** Opens a tab connected as `userId`; resolves once its socket is connected. */
    async function tab(userId) {
        const p = await ctx.newPage();
        await p.goto(`${origin}/client.html?user=${encodeURIComponent(userId)}`);
        await p.waitForFunction(() => window.sioConnected === true, null, WAIT).catch(async (err) => {
            throw new Error(`${userId}'s tab did not connect: ${await p.textContent('#state')}`, { cause: err });
        });
        return p;
    }

    /** What the live page shows of a user: {online, status, rooms} or null when absent. */
    const row = (page, userId) =>
        page.evaluate((id) => {
            const tr = [...document.querySelectorAll('#users tr')].find((r) => r.dataset.user === id);
            if (!tr) return null;
            return { online: tr.dataset.online === 'true', status: tr.dataset.status, rooms: [...tr.querySelectorAll('.room')].map((r) => r.textContent) };
        }, userId);
    const waitRow = (page, userId, want, what, wait = WAIT) =>
        page
            .waitForFunction(
                ([id, w]) => {
                    const tr = [...document.querySelectorAll('#users tr')].find((r) => r.dataset.user === id);
                    if (w === 'offline') return !tr || tr.dataset.online === 'false';
                    return !!tr && tr.dataset.online === 'true' && (!w.status || tr.dataset.status === w.status) && (!w.room || [...tr.querySelectorAll('.room')].some((r) => r.textContent === w.room));
                },
                [userId, want],
                wait,
            )
            .catch(async (err) => {
                throw new Error(`live page: ${what}; ${userId} shows ${JSON.stringify(await row(page, userId))}`, { cause: err });
            });
    const waitText = (page, sel, text, what) =>
        page.locator(sel).filter({ hasText: new RegExp(`^${text}$`) }).waitFor(WAIT).catch(async (err) => {
            throw new Error(`live page: ${what}; ${sel} shows ${JSON.stringify(await page.textContent(sel))}`, { cause: err });
        });

    test('shows users, tabs and counts live, seeds from history, saves a screenshot', { timeout: 70000 }, () =>
        d.wrap(async () => {
            const live = await ctx.newPage();
            const res = await live.goto(`${d.url}/?key=${KEY}`);
            assert.equal(res.status(), 200);
            assert.match(res.headers()['content-type'], /^text\/html/);
            await live.waitForSelector('body[data-stream="live"]', WAIT);

            const a1 = await tab('alice');
            const b1 = await tab('bob');
            await b1.evaluate(() => window.socket.emitWithAck('presence:room:join', { room: 'doc-42' }));
            await b1.evaluate(() => window.socket.emitWithAck('presence:status', { status: 'away' }));
            await waitRow(live, 'alice', {}, 'alice online');
            await waitRow(live, 'bob', { status: 'away', room: 'doc-42' }, 'bob online, away, in doc-42');
            await waitText(live, '#online-count', '2', 'two users online');
            // /v1/stats, polled every 2 s with the key the page was opened with.
            await waitText(live, '#c-users', '2', 'cluster users online');
            await waitText(live, '#c-sockets', '2', 'cluster sockets');

            // A second tab of alice's, then the first one closes: she stays online.
            const a2 = await tab('alice');
            await waitText(live, '#c-sockets', '3', 'three sockets with alice in two tabs');
            await a1.close();
            await waitText(live, '#c-sockets', '2', 'two sockets once alice closed a tab');
            // A marker user comes online after the close: the page handles events in stream
            // order, so once it shows the marker, an offline of alice would be on it already.
            const marker = await tab('marker');
            await waitRow(live, 'marker', {}, 'the marker online');
            assert.deepEqual(await row(live, 'alice'), { online: true, status: 'online', rooms: [] }, 'alice, with a tab left, is still online');
            assert.equal(await live.locator('#feed li.user-offline').count(), 0, 'no offline event so far');
            // A closed tab's connection ends when the browser's network process gets to it, which
            // on a loaded machine can take longer than a page update: wait for it, as long as a
            // ping interval would.
            await marker.close();
            await waitRow(live, 'marker', 'offline', 'the marker gone', { timeout: 30000 });

            // A page opened now learns who is online from the replayed history.
            const late = await ctx.newPage();
            await late.goto(`${d.url}/?key=${KEY}`);
            await waitRow(late, 'alice', {}, 'a late page sees alice from the replay');
            await waitRow(late, 'bob', { status: 'away', room: 'doc-42' }, 'a late page sees bob from the replay');
            await late.close();

            // Her last tab closes: offline (gone or marked so), bob unaffected.
            await a2.close();
            await waitRow(live, 'alice', 'offline', 'alice offline after her last tab closed');
            await waitRow(live, 'bob', { status: 'away' }, 'bob still online');
            await waitText(live, '#online-count', '1', 'one user online');
            await live.locator('#feed li.user-offline').filter({ hasText: 'alice' }).waitFor(WAIT);
            await waitText(live, '#c-users', '1', 'cluster users online after alice left');

            // The history the charts draw: alice's, bob's and the marker's online, the marker's and
            // alice's offline, one user left.
            let hist;
            const deadline = Date.now() + WAIT.timeout;
            for (;;) {
                hist = await (await fetch(`${d.url}/v1/stats/history?key=${KEY}`)).json();
                const sum = (k) => hist.samples.reduce((a, s) => a + s[k], 0);
                const last = hist.samples.at(-1);
                if (sum('online') === 3 && sum('offline') === 2 && last?.usersOnline === 1 && last?.sockets === 1) break;
                if (Date.now() > deadline) assert.fail(`history never showed 3 online, 2 offline, 1 user left: ${JSON.stringify(hist)}`);
                await new Promise((r) => setTimeout(r, 200));
            }
            assert.equal(hist.intervalMs, 1000);
            // Alice and bob were online together for seconds (the marker perhaps between two samples).
            const peak = Math.max(...hist.samples.map((s) => s.usersOnline ?? 0));
            assert.ok(peak >= 2, `a sample with alice and bob online (peak ${peak})`);
            // ... drawn: a line in each chart, up to that peak, and the offline burst.
            await live
                .waitForFunction(
                    (want) => {
                        const n = (id) => Number(document.getElementById(id).dataset.points || 0);
                        const lines = (id, cls) => document.querySelectorAll(`#${id} polyline.${cls}`).length;
                        return n('chart-users') >= 3 && n('chart-sockets') >= 3 && n('chart-rate') >= 6 &&
                            lines('chart-users', 's-users') > 0 && lines('chart-rate', 's-offline') > 0 &&
                            document.getElementById('chart-users').dataset.max === want &&
                            document.getElementById('h-users').textContent === '1';
                    },
                    String(peak),
                    WAIT,
                )
                .catch(async (err) => {
                    const state = await live.evaluate(() => ['chart-users', 'chart-sockets', 'chart-rate'].map((id) => document.getElementById(id).outerHTML.slice(0, 300)));
                    throw new Error(`live page: the charts did not draw the history: ${state.join('\n')}`, { cause: err });
                });
            const offlinePeak = await live.evaluate(() => {
                const ys = [...document.querySelectorAll('#chart-rate polyline.s-offline')].flatMap((l) => l.getAttribute('points').split(' ').map((p) => Number(p.split(',')[1])));
                return Math.min(...ys);
            });
            assert.ok(offlinePeak < 100, `the offline burst rises above the baseline (y=${offlinePeak})`);

            fs.mkdirSync(artifacts, { recursive: true });
            const shot = path.join(artifacts, 'live-page.png');
            await live.screenshot({ path: shot, fullPage: true });
            console.log(`screenshot of the live page: ${shot}`);
            await b1.close();
            await live.close();
        })());

    test('the page and its API calls need the key; dashboard=off answers 404', { timeout: 20000 }, () =>
        d.wrap(async () => {
            for (const [url, want] of [
                [`${d.url}/`, 401],
                [`${d.url}/?key=wrong`, 401],
                [`${d.url}/?key=${KEY}&key=${KEY}`, 401],
                [`${d.url}/v1/stats?key=wrong`, 401],
                [`${d.url}/v1/stats?key=${KEY}`, 200],
                [`${d.url}/v1/users?ids=bob&key=${KEY}`, 401], // ?key= only where the page needs it
            ]) {
                const r = await fetch(url);
                assert.equal(r.status, want, url);
                await r.arrayBuffer();
            }
            const ok = await fetch(`${d.url}/`, { headers: { Authorization: `Bearer ${KEY}` } });
            assert.equal(ok.status, 200);
            assert.match(await ok.text(), /<title>presenced/);
            // In the browser, a page opened without the key gets the 401.
            const p = await ctx.newPage();
            assert.equal((await p.goto(`${d.url}/`)).status(), 401);
            await p.close();

            const off = await startDaemon({ set: { dashboard: 'off' } });
            try {
                const r = await fetch(`${off.url}/`);
                assert.equal(r.status, 404);
                assert.equal((await r.json()).error.code, 'not_found');
                assert.equal((await fetch(`${off.url}/healthz`)).status, 200);
            } finally {
                await off.stop();
            }
        })());
});
