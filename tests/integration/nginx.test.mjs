// config/nginx.conf in front of two presenced instances sharing one Redis, as deployed: the real
// nginx (Debian's, run as a throwaway non-daemon in a temporary directory) with that very file,
// only its upstream `server` lines and `listen` rewritten to this test's ports.
//
// Many socket.io-clients with the DEFAULT transports (long-polling, then the upgrade to WebSocket)
// connect through nginx, each from its own loopback address (127.0.0.x) so that the balancer
// spreads them over both instances. Checked: every client completes the polling→WebSocket
// upgrade; every polling request of a session reached the instance that holds it (nginx's access
// log); both instances got clients; presence events round-trip and reach observers on either
// instance and through nginx; presence:query, presence:room:query and the HTTP API through nginx
// agree with each instance; the SSE stream /v1/events streams through nginx unbuffered.
//
// The instances trust nginx (trusted_proxies = 127.0.0.1/32, as docs/operations.md says) and run
// with small per-address limits: nginx's own connections are not counted, each client counts by
// the address nginx forwards (X-Forwarded-For), so the limits hold per client and not for the
// whole service, a client cannot pick its address by sending the header itself, and the logs
// name the client.
//
// nginx must be installed (Debian package nginx; scripts/deps test installs it), or $NGINX set to
// its binary: without it this test fails.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from './lib/daemon.mjs';
import { PresenceEnv, PClient, waitFor, withTimeout, waitUntil, fence, assertOnline, assertOffline } from './lib/presence.mjs';
import { api, SseStream } from './lib/http.mjs';

const N = 40; // clients through nginx
// Far below N: counted per proxy, they would refuse most clients.
const LIMITS = { trusted_proxies: '127.0.0.1/32', max_sessions_per_ip: 4, max_connections_per_ip: 4 };
const ROOM = 'ng-room';
const CONF = fileURLToPath(new URL('../../config/nginx.conf', import.meta.url));
const STOP_GRACE_MS = 5000;

/** The nginx binary: $NGINX, or `nginx` on PATH or in the sbin directories (not on every PATH). */
function findNginx() {
    if (process.env.NGINX) return process.env.NGINX;
    const dirs = [...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/sbin', '/usr/local/sbin'];
    for (const d of dirs) {
        if (!d) continue;
        const p = path.join(d, 'nginx');
        try {
            fs.accessSync(p, fs.constants.X_OK);
            return p;
        } catch {
            // not here
        }
    }
    throw new Error('nginx not found: install the Debian package nginx (scripts/deps test does) or set NGINX=/path/to/nginx');
}

/**
 * config/nginx.conf with its two upstream servers pointed at `ports` and its listen lines replaced
 * by one on 127.0.0.1:listenPort. Fails when the file no longer has the lines this relies on.
 */
function rewriteConf(src, ports, listenPort) {
    let n = 0;
    let out = src.replace(/^(\s*server\s+)127\.0\.0\.1:\d+/gm, (_, pre) => `${pre}127.0.0.1:${ports[n++]}`);
    assert.equal(n, 2, 'config/nginx.conf has two upstream lines `server 127.0.0.1:PORT ...`');
    let l = 0;
    out = out.replace(/^(\s*)listen\s+80;$/m, (_, ind) => (l++, `${ind}listen 127.0.0.1:${listenPort};`));
    out = out.replace(/^\s*listen\s+\[::\]:80;\n/m, () => (l++, ''));
    assert.equal(l, 2, 'config/nginx.conf has `listen 80;` and `listen [::]:80;`');
    return out;
}

class Nginx {
    constructor(bin, dir, port) {
        this.bin = bin;
        this.dir = dir;
        this.port = port;
        this.proc = null;
        this.stderr = '';
        this.exitInfo = null;
    }

    get url() {
        return `http://127.0.0.1:${this.port}`;
    }

    read(name) {
        try {
            return fs.readFileSync(path.join(this.dir, name), 'utf8');
        } catch {
            return '';
        }
    }

    annotate(err) {
        const tail = (s) => (s.length > 4000 ? '...' + s.slice(-4000) : s);
        const extra = `\n--- nginx ${this.exitInfo ? `exited ${JSON.stringify(this.exitInfo)}` : 'running'}; stderr ---\n${tail(this.stderr)}\n--- error.log ---\n${tail(this.read('error.log'))}\n--- end ---`;
        try {
            err.message += extra;
            return err;
        } catch {
            return new Error(`${err.name}: ${err.message}${extra}`, { cause: err });
        }
    }

    async start() {
        // The workers may run as another user (nobody when nginx starts as root): they need to
        // reach the temporary files in here.
        fs.chmodSync(this.dir, 0o755);
        const args = ['-p', this.dir + '/', '-c', path.join(this.dir, 'nginx.conf'), '-g', `daemon off; pid ${path.join(this.dir, 'nginx.pid')};`];
        this.proc = spawn(this.bin, args, { stdio: ['ignore', 'ignore', 'pipe'] });
        this.proc.stderr.setEncoding('utf8');
        this.proc.stderr.on('data', (d) => (this.stderr = (this.stderr + d).slice(-16000)));
        this.exited = new Promise((resolve) => {
            this.proc.once('error', (err) => resolve((this.exitInfo = { error: err.message })));
            this.proc.once('exit', (code, signal) => resolve((this.exitInfo = { code, signal })));
        });
        const deadline = Date.now() + 10000;
        for (;;) {
            if (this.exitInfo) throw this.annotate(new Error('nginx exited at start'));
            try {
                const r = await api(this.url, '/readyz', { ms: 1000 });
                if (r.status === 200) return this;
            } catch {
                // not listening yet
            }
            if (Date.now() > deadline) throw this.annotate(new Error('nginx did not answer /readyz 200 within 10 s'));
            await new Promise((r) => setTimeout(r, 50));
        }
    }

    /** SIGTERM (the master stops its workers), SIGKILL after 5 s. */
    async stop() {
        if (!this.proc || this.exitInfo) return;
        this.proc.kill('SIGTERM');
        let timer;
        const t = new Promise((r) => (timer = setTimeout(() => r('timeout'), STOP_GRACE_MS)));
        if ((await Promise.race([this.exited, t])) === 'timeout') {
            this.proc.kill('SIGKILL');
            await this.exited;
        }
        clearTimeout(timer);
    }
}

async function startNginx(upstreamPorts) {
    const bin = findNginx();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'presenced-nginx-'));
    const port = await freePort();
    fs.writeFileSync(path.join(dir, 'presenced.conf'), rewriteConf(fs.readFileSync(CONF, 'utf8'), upstreamPorts, port));
    // The main context Debian's /etc/nginx/nginx.conf would give, reduced to this directory. The
    // access log records which instance served each request of each Engine.IO session.
    fs.writeFileSync(
        path.join(dir, 'nginx.conf'),
        `worker_processes 1;
error_log ${dir}/error.log warn;
events { worker_connections 1024; }
http {
    log_format sessions '$remote_addr $request_method sid=$arg_sid transport=$arg_transport upstream=$upstream_addr status=$status';
    access_log ${dir}/access.log sessions;
    client_body_temp_path ${dir}/client_body;
    proxy_temp_path ${dir}/proxy;
    fastcgi_temp_path ${dir}/fastcgi;
    uwsgi_temp_path ${dir}/uwsgi;
    scgi_temp_path ${dir}/scgi;
    include ${dir}/presenced.conf;
}
`,
    );
    const ng = new Nginx(bin, dir, port);
    await ng.start();
    return ng;
}

describe('nginx in front of two instances (config/nginx.conf, store=redis)', () => {
    const env = new PresenceEnv('redis');
    let A, B, ng;
    const extra = []; // sockets opened here, closed in after()

    before(async () => {
        findNginx(); // fail first, and clearly, when nginx is missing
        await env.setup();
        A = await env.daemon(LIMITS);
        B = await env.daemon(LIMITS);
        ng = await startNginx([A.port, B.port]);
    });

    after(async () => {
        for (const s of extra) s.close();
        if (ng) {
            await ng.stop();
            fs.rmSync(ng.dir, { recursive: true, force: true });
        }
        await env.teardown();
    });

    const wrap = (fn) =>
        env.wrap(async (...args) => {
            try {
                return await fn(...args);
            } catch (err) {
                throw ng ? ng.annotate(err) : err;
            }
        });

    /**
     * A socket.io-client through nginx with the default transports, connecting from localAddress.
     * Resolves once connected and upgraded to WebSocket.
     */
    async function viaNginx(localAddress, { userId, label } = {}) {
        const agent = new http.Agent({ localAddress });
        const s = env.pool.socket(ng.url, '/', {
            agent,
            localAddress,
            timeout: 10000,
            ...(userId ? { auth: { userId } } : {}),
        });
        const c = new PClient(s, { userId: userId ?? null, label: label ?? `${userId} via nginx from ${localAddress}` });
        const engine = s.io.engine;
        assert.equal(engine.transport.name, 'polling', `${c.label}: starts with long-polling (default transports)`);
        const upgraded = withTimeout(waitFor(engine, 'upgrade', { ms: 10000, failOn: 'upgradeError' }), 11000, `${c.label}: upgrade`);
        upgraded.catch(() => {});
        await waitFor(s, 'connect', { ms: 10000, failOn: 'connect_error' });
        const [transport] = await upgraded;
        assert.equal(transport.name, 'websocket', `${c.label}: upgraded to`);
        assert.equal(s.io.engine.transport.name, 'websocket', `${c.label}: transport after the upgrade`);
        return c;
    }

    test('config/nginx.conf: proxy timeouts exceed what presenced keeps silent', () => {
        const src = fs.readFileSync(CONF, 'utf8');
        const block = (loc) => {
            const i = src.indexOf(`location ${loc} {`);
            assert.ok(i >= 0, `config/nginx.conf has location ${loc}`);
            return src.slice(i, src.indexOf('}', i));
        };
        const seconds = (text, what) => {
            const m = /proxy_read_timeout\s+(\d+)s;/.exec(text);
            assert.ok(m, `${what} sets proxy_read_timeout in seconds`);
            return Number(m[1]);
        };
        // A held poll or a WebSocket is silent for at most ping_interval, and a dead peer is noticed
        // after ping_interval + ping_timeout (defaults 25 s + 20 s): nginx must not cut first.
        assert.ok(seconds(block('/socket.io/'), '/socket.io/') > (25000 + 20000) / 1000, 'socket.io timeout above ping_interval + ping_timeout');
        const sse = block('= /v1/events');
        assert.ok(seconds(sse, '/v1/events') > 15, 'SSE timeout above the 15 s comment interval');
        assert.match(sse, /proxy_buffering off;/);
        assert.match(src, /proxy_http_version 1\.1;/);
        assert.match(src, /proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;/);
    });

    const ids = Array.from({ length: N }, (_, i) => `ng-u${i}`);

    test(
        `${N} clients with default transports: polling→WebSocket upgrade through nginx, sticky sessions, presence consistent across instances`,
        { timeout: 60000 },
        wrap(async (t) => {
            // Observers: one directly on each instance (WebSocket), one through nginx.
            const obsA = await env.client(A, { label: 'observer on A' });
            const obsB = await env.client(B, { label: 'observer on B' });
            const obsN = await viaNginx('127.0.0.1', { label: 'observer via nginx' });
            const sse = new SseStream(ng.url);
            extra.push(sse);
            const res = await withTimeout(sse.ready, 5000, 'GET /v1/events through nginx');
            assert.equal(res.status, 200, 'SSE through nginx');
            assert.match(sse.contentType ?? '', /^text\/event-stream/);

            const clients = await Promise.all(ids.map((userId, i) => viaNginx(`127.0.0.${10 + i}`, { userId })));

            // Every request of every Engine.IO session went to one instance, and both got sessions.
            const log = ng.read('access.log').trim().split('\n');
            const bySid = new Map();
            for (const line of log) {
                const m = /sid=(\S*) transport=(\S*) upstream=(\S*) status=(\d+)/.exec(line);
                assert.ok(m, `access log line: ${line}`);
                const [, sid, , upstream, status] = m;
                if (sid === '-') continue; // nginx's empty value: handshakes, /readyz, SSE
                assert.notEqual(status, '400', `a request of session ${sid} was refused (400: session unknown where it landed?): ${line}`);
                if (!bySid.has(sid)) bySid.set(sid, new Set());
                bySid.get(sid).add(upstream);
            }
            assert.ok(bySid.size >= N, `the access log has the requests of ${N}+ sessions (got ${bySid.size})`);
            for (const [sid, ups] of bySid) assert.equal(ups.size, 1, `session ${sid} reached one instance, not ${[...ups].join(' and ')}`);
            const perUpstream = {};
            for (const ups of bySid.values()) perUpstream[[...ups][0]] = (perUpstream[[...ups][0]] ?? 0) + 1;
            t.diagnostic(`Engine.IO sessions per instance: ${JSON.stringify(perUpstream)} (A = ${A.port}, B = ${B.port})`);
            const used = new Set(Object.keys(perUpstream));
            assert.deepEqual(
                [...used].sort(),
                [`127.0.0.1:${A.port}`, `127.0.0.1:${B.port}`].sort(),
                'the sessions through nginx landed on both instances',
            );

            // Events round-trip over the upgraded connections: a command and its ack each.
            await Promise.all(clients.map((c) => c.ok('presence:room:join', { room: ROOM })));

            // Everyone hears every user come online, whichever instance the user landed on.
            for (const o of [obsA, obsB, obsN]) {
                for (const c of clients) {
                    const ev = await o.rec.waitFor('presence:online', { userId: c.userId });
                    assert.equal(ev.data.socketId, c.id, `${o.label}: online event of ${c.userId} names its socket`);
                }
            }
            await sse.until((evs) => ids.every((id) => evs.some((e) => e.event === 'user.online' && e.data.userId === id)), 5000, `user.online x${N} on SSE through nginx`);
            // ... and once each, on every path (a fence through nginx, seen by all of them).
            await fence(ng.url, [obsA, obsB, obsN, sse]);
            const sseCount = (type, id) => sse.events.filter((e) => e.event === type && e.data.userId === id).length;
            for (const id of ids) {
                for (const o of [obsA, obsB, obsN]) o.rec.assertCount('presence:online', { userId: id }, 1);
                assert.equal(sseCount('user.online', id), 1, `user.online of ${id} once on SSE through nginx`);
            }

            // Each instance holds some of the users (observers are anonymous), together all of them.
            const statsA = (await api(A.url, '/v1/stats')).json;
            const statsB = (await api(B.url, '/v1/stats')).json;
            assert.ok(statsA.instance.users > 0 && statsB.instance.users > 0, `both instances hold users: A ${statsA.instance.users}, B ${statsB.instance.users}`);
            assert.equal(statsA.instance.users + statsB.instance.users, N, 'the users are split between A and B');
            const conns = (s) => s.instance.connections;
            assert.equal(conns(statsA).polling + conns(statsB).polling, 0, `no session stayed on long-polling: ${JSON.stringify([conns(statsA), conns(statsB)])}`);
            assert.equal(statsA.cluster.usersOnline, N);
            assert.equal(statsB.cluster.usersOnline, N);

            // Queries through nginx agree with each instance.
            const qN = await obsN.query(ids);
            for (const id of ids) assertOnline(qN[id], 'online', id);
            assert.deepEqual(await obsA.query(ids), qN, 'presence:query on A = through nginx');
            assert.deepEqual(await obsB.query(ids), qN, 'presence:query on B = through nginx');
            const room = await obsN.roomQuery(ROOM);
            assert.deepEqual(room, { onlineCount: N, ids: [...ids].sort() }, 'presence:room:query through nginx');
            assert.deepEqual(await obsA.roomQuery(ROOM), room);
            const httpUsers = await api(ng.url, `/v1/users?ids=${ids.join(',')}`);
            assert.equal(httpUsers.status, 200, `GET /v1/users through nginx: ${httpUsers.text}`);
            assert.deepEqual(httpUsers.json.users, Object.fromEntries(ids.map((id) => [id, true])));

            // Half leave: everyone hears it, queries through nginx and on both instances agree.
            const leaving = clients.filter((_, i) => i % 2 === 0);
            const staying = clients.filter((_, i) => i % 2 === 1);
            for (const c of leaving) c.disconnect();
            for (const o of [obsA, obsB, obsN]) {
                for (const c of leaving) await o.rec.waitFor('presence:offline', { userId: c.userId });
            }
            await sse.until((evs) => leaving.every((c) => evs.some((e) => e.event === 'user.offline' && e.data.userId === c.userId)), 5000, 'user.offline on SSE');
            const after = await obsN.query(ids);
            for (const c of leaving) assertOffline(after[c.userId], {}, c.userId);
            for (const c of staying) assertOnline(after[c.userId], 'online', c.userId);
            assert.deepEqual(await obsA.query(ids), after, 'A agrees after the departures');
            assert.deepEqual(await obsB.query(ids), after, 'B agrees after the departures');
            await waitUntil(async () => (await obsN.roomQuery(ROOM)).onlineCount === staying.length, { what: 'room count after the departures' });
            await fence(ng.url, [obsA, obsB, obsN, sse]);
            for (const o of [obsA, obsB, obsN]) {
                for (const c of leaving) o.rec.assertCount('presence:offline', { userId: c.userId }, 1);
                for (const c of staying) o.rec.assertNone('presence:offline', { userId: c.userId }, 'still connected');
            }
            for (const c of leaving) assert.equal(sseCount('user.offline', c.userId), 1, `user.offline of ${c.userId} once on SSE`);
            for (const c of staying) assert.equal(sseCount('user.offline', c.userId), 0, `no user.offline of ${c.userId} on SSE`);
        }),
    );

    test(
        'per-address limits count the client nginx forwards; a client cannot choose its address; logs name it',
        { timeout: 30000 },
        wrap(async () => {
            // Five sessions from 127.0.0.77, each claiming another address in its own
            // X-Forwarded-For: nginx appends the real one, which is what counts.
            const sockets = [];
            const errors = [];
            for (let i = 0; i < 5; i++) {
                const agent = new http.Agent({ localAddress: '127.0.0.77' });
                const s = env.pool.socket(ng.url, '/', { agent, localAddress: '127.0.0.77', transports: ['polling'], extraHeaders: { 'X-Forwarded-For': `203.0.113.${i}` } });
                sockets.push(s);
                await waitFor(s, 'connect', { ms: 10000, failOn: 'connect_error' }).catch((e) => errors.push(e));
            }
            assert.equal(errors.length, 1, `the fifth session of 127.0.0.77 is refused (max_sessions_per_ip = 4): ${errors.map((e) => e.message)}`);
            assert.equal(sockets.filter((s) => s.connected).length, 4);
            const logs = A.stderrText + B.stderrText;
            assert.match(logs, /msg="refused" cause=max_sessions_per_ip status=429 setting=max_sessions_per_ip addr=127\.0\.0\.77/, 'the log names the client, not nginx');
            assert.doesNotMatch(logs, /addr=203\.0\.113\./, 'the addresses the client made up are not believed');
            // Another client through the same nginx is not affected.
            const other = await viaNginx('127.0.0.78', { userId: 'ng-other' });
            await other.ok('presence:heartbeat', {});
            for (const s of sockets) s.close();
        }),
    );
});
