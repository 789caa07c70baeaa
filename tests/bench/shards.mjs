// Redis CPU per presence transition on one Redis and on each primary of a 3-primary Redis Cluster,
// by docs/performance.md's method (INFO cpu deltas, in microseconds), and transitions/s on each.
// For each set-up (started by tests/integration/redis-topology.sh on free ports, stopped after):
// K instances (broadcast = scoped), 5 s idle to measure what Redis spends per second with no
// transition (leases, the stream reads), then a burst of fresh users who connect and disconnect
// through churn.mjs (one per instance), until every user is offline again cluster-wide. A user
// makes two transitions; on the cluster each shard is charged the transitions of the users whose
// partition it serves.
// Prints one line per shard and a JSON summary on stdout.
//
// With --rate R, users start at R per second in all for --duration-s and stay 1 s each instead.
// Failed connects are counted as transitions (churn.mjs does not say which ids failed): a
// message on stderr says how many.
//
// Usage: node tests/bench/shards.mjs [--bin build/presenced] [--users 6000] [--concurrency 60]
//        [--rate R [--duration-s 10]] [--instances 2] [--kinds single,cluster] [--partitions 12]
import { spawn, execFile } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Topology, keyPrefixes, partitionOf } from '../integration/lib/topology.mjs';

const run = promisify(execFile);
const here = path.dirname(fileURLToPath(import.meta.url));
const arg = (name, dflt) => {
    const i = process.argv.indexOf(`--${name}`);
    return i > 0 ? process.argv[i + 1] : dflt;
};
const bin = path.resolve(arg('bin', 'build/presenced'));
const users = Number(arg('users', 6000));
const concurrency = Number(arg('concurrency', 60));
const instances = Number(arg('instances', 2));
const partitions = Number(arg('partitions', 12));
const kinds = arg('kinds', 'single,cluster').split(',');
const rate = Number(arg('rate', 0)); // users started per second in all, steady for --duration-s
const durationS = Number(arg('duration-s', 10));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function freePort() {
    return new Promise((resolve, reject) => {
        const s = net.createServer().listen(0, '127.0.0.1', () => {
            const { port } = s.address();
            s.close(() => resolve(port));
        });
        s.on('error', reject);
    });
}

/** Redis's own CPU (used_cpu_sys + used_cpu_user) in microseconds. */
async function redisCpu(port) {
    const { stdout } = await run('redis-cli', ['-p', String(port), 'INFO', 'cpu']);
    const v = (k) => Number(new RegExp(`^${k}:([0-9.]+)`, 'm').exec(stdout)[1]);
    return Math.round((v('used_cpu_sys') + v('used_cpu_user')) * 1e6);
}

const cpus = (ports) => Promise.all(ports.map(redisCpu));

/** INFO commandstats: command -> {calls, usec}. */
async function commandStats(port) {
    const { stdout } = await run('redis-cli', ['-p', String(port), 'INFO', 'commandstats']);
    const out = {};
    for (const m of stdout.matchAll(/^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/gm)) out[m[1]] = { calls: Number(m[2]), usec: Number(m[3]) };
    return out;
}

/** The commands between two INFO commandstats, per transition, the costliest first. */
function commandsPer(a, b, transitions) {
    return Object.entries(b)
        .map(([c, v]) => [c, v.calls - (a[c]?.calls ?? 0), v.usec - (a[c]?.usec ?? 0)])
        .filter(([, calls]) => calls > 0)
        .sort((x, y) => y[2] - x[2])
        .slice(0, 6)
        .map(([c, calls, usec]) => `${c} ${(calls / transitions).toFixed(2)} calls ${(usec / transitions).toFixed(1)} µs`)
        .join(', ');
}

async function getJson(url) {
    const r = await fetch(url);
    if (!r.ok) throw new Error(`${url}: ${r.status}`);
    return r.json();
}

async function until(what, fn, ms = 60000) {
    const end = Date.now() + ms;
    for (;;) {
        try {
            if (await fn()) return;
        } catch {
            // not yet
        }
        if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
        await sleep(50);
    }
}

async function startDaemons(url) {
    const out = [];
    for (let i = 0; i < instances; i++) {
        const port = await freePort();
        const args = ['--listen', `127.0.0.1:${port}`, '--store', 'redis', '--redis', url];
        const set = {
            broadcast: 'scoped',
            log_level: 'warn',
            redis_partitions: partitions,
            max_connections_per_ip: 1000000,
            max_sessions_per_ip: 1000000,
            rate_limit: 1000000,
            rate_burst: 1000000,
        };
        for (const [k, v] of Object.entries(set)) args.push('--set', `${k}=${v}`);
        const proc = spawn(bin, args, { stdio: ['ignore', 'ignore', 'inherit'] });
        const base = `http://127.0.0.1:${port}`;
        out.push({ proc, base });
        await until(`${base}/readyz`, async () => (await fetch(`${base}/readyz`)).ok);
    }
    return out;
}

/** One churn.mjs per instance (a burst, or --rate for --duration-s); resolves with their reports. */
function churn(daemons, prefix) {
    const per = Math.ceil(users / daemons.length);
    return Promise.all(
        daemons.map(
            (d, i) =>
                new Promise((resolve, reject) => {
                    const args = [path.join(here, 'churn.mjs'), '--url', d.base, '--prefix', `${prefix}${i}-`];
                    if (rate) args.push('--rate', String(rate / daemons.length), '--duration-s', String(durationS), '--hold-ms', '1000');
                    else args.push('--users', String(per), '--concurrency', String(Math.ceil(concurrency / daemons.length)));
                    const p = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
                    let out = '';
                    p.stdout.on('data', (b) => (out += b));
                    p.on('exit', (code) => (code === 0 ? resolve({ ...JSON.parse(out), prefix: `${prefix}${i}-` }) : reject(new Error(`churn.mjs exited ${code}`))));
                }),
        ),
    );
}

/** The transitions each primary served: 2 per user whose partition it holds. */
async function perShard(topo, primaries, results) {
    if (topo.kind !== 'cluster') return [2 * results.reduce((n, r) => n + r.started, 0)];
    const owner = await Promise.all(keyPrefixes('x', partitions, true).map((p) => topo.nodeFor(`${p}probe`)));
    const counts = primaries.map(() => 0);
    for (const r of results) {
        for (let i = 0; i < r.started; i++) counts[primaries.indexOf(owner[partitionOf(`${r.prefix}${i}`, partitions)])] += 2;
    }
    return counts;
}

async function measure(kind) {
    const topo = await Topology.start(kind);
    let daemons = [];
    try {
        daemons = await startDaemons(topo.url);
        const primaries = topo.dataNodes().filter((n) => n.role === 'primary').map((n) => n.port);
        await sleep(2000);
        const i0 = await cpus(primaries);
        const idleStart = Date.now();
        await sleep(5000);
        const i1 = await cpus(primaries);
        const c1 = await Promise.all(primaries.map(commandStats));
        const idleUsPerS = i1.map((c, k) => ((c - i0[k]) * 1000) / (Date.now() - idleStart));

        const t0 = Date.now();
        const results = await churn(daemons, `sh${process.pid}-${kind}-`);
        await until('every user offline', async () => (await getJson(`${daemons[0].base}/v1/stats`)).cluster.usersOnline === 0);
        const ms = Date.now() - t0;
        const b1 = await cpus(primaries);
        const c2 = await Promise.all(primaries.map(commandStats));
        const failed = results.reduce((n, r) => n + r.failed, 0);
        if (failed) console.error(`${kind}: ${failed} users failed to connect; their transitions are not counted`);
        const transitions = await perShard(topo, primaries, results);
        const total = transitions.reduce((a, b) => a + b, 0);
        const shards = primaries.map((port, k) => {
            const used = b1[k] - i1[k];
            return {
                port,
                transitions: transitions[k],
                cpuUs: used,
                idleUsPerS: Math.round(idleUsPerS[k]),
                usPerTransition: +(used / transitions[k]).toFixed(1),
                usPerTransitionLessIdle: +((used - (idleUsPerS[k] * ms) / 1000) / transitions[k]).toFixed(1),
                commands: commandsPer(c1[k], c2[k], transitions[k]),
            };
        });
        const sum = shards.reduce((n, s) => n + s.cpuUs, 0);
        for (const s of shards) {
            console.log(`${kind} primary :${s.port}: ${s.transitions} transitions, ${s.usPerTransition} µs Redis CPU each (${s.usPerTransitionLessIdle} less the idle ${s.idleUsPerS} µs/s)`);
            console.log(`    per transition: ${s.commands}`);
        }
        const summary = { kind, instances, rate, users: total / 2, transitions: total, ms, transitionsPerS: Math.round((total * 1000) / ms), redisUsPerTransitionAllShards: +(sum / total).toFixed(1), shards };
        console.log(`${kind}: ${total} transitions in ${ms} ms, ${summary.transitionsPerS}/s; all primaries together ${summary.redisUsPerTransitionAllShards} µs per transition`);
        return summary;
    } finally {
        for (const d of daemons) d.proc.kill('SIGTERM');
        await Promise.all(daemons.map((d) => (d.proc.exitCode === null ? new Promise((r) => d.proc.once('exit', r)) : null)));
        await topo.stop();
    }
}

const out = [];
for (const kind of kinds) out.push(await measure(kind));
console.log(JSON.stringify(out));
