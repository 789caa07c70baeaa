// One hostile process floods commands, opens connections past the per-address limit and sends
// oversized and malformed frames, while 100 well-behaved clients stay connected and receive every
// presence event exactly once. How fast the events come and how much memory the daemon uses
// meanwhile are printed, not asserted (docs/testing.md: performance is never asserted in a test;
// scripts/bench measures it).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { readFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { io } from 'socket.io-client';
import { startDaemon } from './lib/daemon.mjs';
import { Recorder } from './lib/presence.mjs';
import { fence } from './lib/fence.mjs';
import { metric } from './lib/http.mjs';

const FRESH = 40; // users that come online during the attack
// Under AddressSanitizer freed memory waits in a quarantine (256 MB by default) before reuse:
// keep it small so that the RSS printed says something about the daemon.
process.env.ASAN_OPTIONS = [process.env.ASAN_OPTIONS, 'quarantine_size_mb=16'].filter(Boolean).join(':');
let d;
const clients = [];
after(async () => {
    clients.forEach((c) => c.close());
    await d?.stop();
});

function connect(userId, localAddress) {
    const agent = new http.Agent({ localAddress });
    return new Promise((resolve, reject) => {
        const s = io(d.url, { transports: ['websocket'], forceNew: true, reconnection: false, agent, auth: userId ? { userId } : undefined });
        const rec = new Recorder(s, userId ?? `observer@${localAddress}`);
        s.once('connect', () => resolve({ s, rec }));
        s.once('connect_error', reject);
        clients.push(s);
    });
}

const rssKb = (pid) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);

test('100 well-behaved clients get every presence event once while one process attacks', { timeout: 120000 }, async (t) => {
    d = await startDaemon({ set: { max_connections_per_ip: 30 } });
    const pid = d.proc.pid;
    const limits = async (l) => metric(d.url, `presenced_limit_hits_total{limit="${l}"}`);
    // The good clients come from ten addresses, ten each; the attacker from 127.0.0.2.
    const good = [];
    for (let i = 0; i < 100; i++) good.push(await connect(`good-${i}`, `127.0.0.${10 + (i % 10)}`));
    const observer = await connect(null, '127.0.0.3');

    const rssBefore = rssKb(pid);
    const attacker = spawn(process.execPath, [new URL('./lib/hostile.mjs', import.meta.url).pathname, d.url, '127.0.0.2', '110000'], { stdio: ['ignore', 'pipe', 'inherit'] });
    let attackerOut = '';
    attacker.stdout.on('data', (b) => (attackerOut += b));
    const attackerDone = new Promise((r) => attacker.on('exit', r));
    try {
        // The attack is under way once the daemon has refused it on both counts.
        const deadline = Date.now() + 30000;
        while (!((await limits('connections_per_ip')) >= 1 && (await limits('rate')) >= 1)) {
            assert.ok(Date.now() < deadline, 'the attack never reached the per-address or rate limits');
            await new Promise((r) => setTimeout(r, 50));
        }
        // During the attack, fresh users come online one after another; time each until the
        // observer hears of it, and watch the daemon's memory.
        const latencies = [];
        let rssMax = rssBefore;
        for (let i = 0; i < FRESH; i++) {
            const user = `fresh-${i}`;
            const t0 = performance.now();
            const { s } = await connect(user, `127.0.0.${20 + (i % 5)}`);
            await observer.rec.waitFor('presence:online', { userId: user }, 30000);
            latencies.push(performance.now() - t0);
            s.close();
            rssMax = Math.max(rssMax, rssKb(pid));
        }
        latencies.sort((a, b) => a - b);
        const p99 = latencies[Math.floor(latencies.length * 0.99)];
        t.diagnostic(`${latencies.length} online events during the attack, p99 ${p99.toFixed(1)} ms; RSS ${rssBefore} -> max ${rssMax} KB`);
    } finally {
        attacker.kill('SIGTERM');
        await attackerDone;
    }
    const did = JSON.parse(attackerOut.trim().split('\n').pop());
    t.diagnostic(`attacker ${JSON.stringify(did)}`);
    assert.ok(did.commands > 0 && did.tcp > 0 && did.frames > 0, `the attack happened: ${JSON.stringify(did)}`);

    good.forEach(({ s }, i) => assert.ok(s.connected, `good client ${i} still connected`));
    // Every good client got every fresh user's online, and each once.
    await fence(d.url, [observer.rec, ...good.map((g) => g.rec)]);
    for (const { rec } of [observer, ...good]) {
        for (let i = 0; i < FRESH; i++) rec.assertCount('presence:online', { userId: `fresh-${i}` }, 1);
    }
    assert.ok((await limits('connections_per_ip')) >= 1);
    assert.ok((await limits('rate')) >= 1);
});
