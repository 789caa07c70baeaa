// A Redis set-up for integration tests, started by tests/integration/redis-topology.sh: one
// redis-server ("single"), a Sentinel set-up (a primary, two replicas, three sentinels) or a Redis
// Cluster (three primaries with a replica each), on free loopback ports, without persistence.
// PRESENCED_REDIS_TOPOLOGY picks the kind the presence suites run against (default single).
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { redisCommand } from './redis.mjs';

const run = promisify(execFile);
const SCRIPT = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'redis-topology.sh');
export const TOPOLOGIES = ['single', 'sentinel', 'cluster'];

/** The kind PRESENCED_REDIS_TOPOLOGY asks for. */
export function topologyKind() {
    const kind = process.env.PRESENCED_REDIS_TOPOLOGY || 'single';
    if (!TOPOLOGIES.includes(kind)) throw new Error(`PRESENCED_REDIS_TOPOLOGY must be one of ${TOPOLOGIES}, not ${kind}`);
    return kind;
}

// CRC16/XMODEM, as Redis Cluster hashes keys (with hash tags), to send a key to its node.
function crc16(buf) {
    let crc = 0;
    for (const b of buf) {
        crc ^= b << 8;
        for (let i = 0; i < 8; i++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
    }
    return crc;
}

export function keySlot(key) {
    let k = Buffer.from(key);
    const open = k.indexOf('{');
    if (open >= 0) {
        const close = k.indexOf('}', open + 1);
        if (close > open + 1) k = k.subarray(open + 1, close);
    }
    return crc16(k) & 16383;
}

/** The partitions a daemon on a cluster splits its keys into (redis_partitions, default 12). */
export function partitionCount() {
    return topologyKind() === 'cluster' ? Number(process.env.PRESENCED_REDIS_PARTITIONS ?? 12) : 1;
}

/** The partition of a user id (redis_partition_of: CRC16 of the id, modulo n). */
export function partitionOf(id, n = partitionCount()) {
    return n > 1 ? crc16(Buffer.from(id)) % n : 0;
}

/**
 * The key prefixes a daemon with `prefix` uses: `prefix` itself on one Redis, and on a cluster
 * (`cluster`, by default when there are several partitions) one per partition,
 * `prefix{<k>-<j>}:` with the tag redis_partition_tag picks.
 */
export function keyPrefixes(prefix, n = partitionCount(), cluster = n > 1) {
    if (!cluster) return [prefix];
    const out = [];
    for (let k = 0; k < n; k++) {
        const lo = Math.floor((k * 16384) / n), hi = Math.floor(((k + 1) * 16384) / n);
        for (let j = 0; ; j++) {
            const slot = keySlot(`${k}-${j}`);
            if (slot >= lo && slot < hi) {
                out.push(`${prefix}{${k}-${j}}:`);
                break;
            }
        }
    }
    return out;
}

export class Topology {
    constructor(kind, dir, info) {
        this.kind = kind;
        this.dir = dir;
        this.isDown = false;
        this.load(info);
    }

    load(info) {
        this.url = info.url;
        this.nodes = info.nodes;
    }

    /** Starts a set-up of `kind` and resolves once it works. */
    static async start(kind = topologyKind()) {
        const dir = await mkdtemp(path.join(os.tmpdir(), `presenced-${kind}-`));
        try {
            await run('bash', [SCRIPT, 'start', kind, dir], { timeout: 120000 });
        } catch (err) {
            await rm(dir, { recursive: true, force: true });
            throw new Error(`redis-topology.sh start ${kind} failed: ${err.stderr || err.message}`);
        }
        return new Topology(kind, dir, JSON.parse(await readFile(path.join(dir, 'topology.json'), 'utf8')));
    }

    async reload() {
        this.load(JSON.parse(await readFile(path.join(this.dir, 'topology.json'), 'utf8')));
    }

    dataNodes() {
        return this.nodes.filter((n) => n.role !== 'sentinel');
    }

    /** The port of the data node that is a primary now (single, sentinel), as ROLE says. */
    async primaryPort() {
        if (this.kind === 'single') return this.nodes[0].port;
        const [port] = await this.primaries();
        if (port === undefined) throw new Error('no primary answers');
        return port;
    }

    /** "master" or "slave", as the node itself says. */
    async role(port) {
        return rawFirstElement(port, ['ROLE']);
    }

    /** The ports of the data nodes that are primaries now. */
    async primaries() {
        const out = [];
        for (const n of this.dataNodes()) {
            try {
                if ((await this.role(n.port)) === 'master') out.push(n.port);
            } catch {
                // down
            }
        }
        return out;
    }

    /** The port of the primary serving `key` in the cluster now (following MOVED). */
    async nodeFor(key) {
        let port = (await this.primaries())[0];
        for (let i = 0; i < 5; i++) {
            const r = await redisCommand(port, ['EXISTS', key]);
            const m = /^-MOVED \d+ [^:]*:(\d+)/.exec(r);
            if (!m) return port;
            port = Number(m[1]);
        }
        throw new Error(`no node serves ${key}`);
    }

    /**
     * One command, answered as lib/redis.mjs's redisCommand answers (the first reply line or a
     * bulk string): single and Sentinel on the primary; on a cluster, FLUSHALL and DBSIZE go to
     * every primary (DBSIZE summed), the rest to the node of its key (args[1]).
     */
    async command(...args) {
        if (this.kind !== 'cluster') return redisCommand(await this.primaryPort(), args);
        const cmd = String(args[0]).toUpperCase();
        if (cmd === 'FLUSHALL' || cmd === 'DBSIZE') {
            const replies = await Promise.all((await this.primaries()).map((p) => redisCommand(p, args)));
            if (cmd === 'FLUSHALL') return replies.every((r) => r === '+OK') ? '+OK' : replies.find((r) => r !== '+OK');
            return `:${replies.reduce((n, r) => n + Number(r.slice(1)), 0)}`;
        }
        return redisCommand(await this.nodeFor(String(args[1])), args);
    }

    /** The data nodes stop (SIGTERM); sentinels stay up. */
    async down() {
        await run('bash', [SCRIPT, 'down', this.dir], { timeout: 60000 });
        this.isDown = true;
    }

    /** The data nodes start again, empty, on their ports; resolves once the set-up works. */
    async up() {
        await run('bash', [SCRIPT, 'up', this.dir], { timeout: 120000 });
        this.isDown = false;
        await this.reload();
    }

    /** The node id of the cluster node on `port`. */
    async nodeId(port) {
        return redisCommand(port, ['CLUSTER', 'MYID']);
    }

    /** Moves `slots` slots from the primary on `from` to the one on `to`, keys and all, as an
     * operator would (redis-cli --cluster reshard); resolves once it is done. */
    async reshard(from, to, slots) {
        const [fromId, toId] = [await this.nodeId(from), await this.nodeId(to)];
        await run(
            'redis-cli',
            ['--cluster', 'reshard', `127.0.0.1:${from}`, '--cluster-from', fromId, '--cluster-to', toId, '--cluster-slots', String(slots), '--cluster-yes'],
            { timeout: 120000, maxBuffer: 64 * 1024 * 1024 },
        );
    }

    /** How many slots the primary on `port` serves, as CLUSTER NODES there says. */
    async slotCount(port) {
        const nodes = await rawLines(port, ['CLUSTER', 'NODES']);
        const me = nodes.split('\n').find((l) => l.includes('myself'));
        let n = 0;
        for (const part of me.trim().split(' ').slice(8)) {
            const m = /^(\d+)(?:-(\d+))?$/.exec(part);
            if (m) n += (m[2] ? Number(m[2]) : Number(m[1])) - Number(m[1]) + 1;
        }
        return n;
    }

    /** Sends `signal` to the data node on `port`. */
    kill(port, signal = 'SIGKILL') {
        const n = this.nodes.find((x) => x.port === port);
        if (!n) throw new Error(`no node on port ${port}`);
        process.kill(n.pid, signal);
    }

    /**
     * SIGKILL of the primary on `port` once its replicas hold every write it acknowledged: its
     * writes are paused first (CLIENT PAUSE WRITE: what clients send from then on waits, and dies
     * unanswered with it), then its replicas' offsets are awaited. Redis replicates
     * asynchronously: a primary killed with acknowledged writes not yet on the replica that
     * takes over loses them, and no client of Redis can tell (docs/operations.md). A test of the
     * failover itself must not lose them by chance of timing. Resolves with the time of the kill.
     */
    async killSynced(port, ms = 20000) {
        const replicas = this.kind === 'sentinel' ? this.dataNodes().length - 1 : 1;
        const r = await redisCommand(port, ['CLIENT', 'PAUSE', String(ms), 'WRITE']);
        if (r !== '+OK') throw new Error(`CLIENT PAUSE on ${port}: ${r}`);
        const end = Date.now() + ms;
        for (;;) {
            const info = await rawLines(port, ['INFO', 'replication']);
            const offset = Number(/master_repl_offset:(\d+)/.exec(info)?.[1]);
            const acked = [...info.matchAll(/^slave\d+:.*state=online,offset=(\d+)/gm)].map((m) => Number(m[1]));
            if (acked.length >= replicas && acked.every((o) => o >= offset)) break;
            if (Date.now() > end) throw new Error(`the replicas of ${port} did not catch up: ${info}`);
            await new Promise((res) => setTimeout(res, 20));
        }
        this.kill(port, 'SIGKILL');
        return Date.now();
    }

    async stop() {
        try {
            await run('bash', [SCRIPT, 'stop', this.dir], { timeout: 60000 });
        } finally {
            await rm(this.dir, { recursive: true, force: true });
        }
    }
}

/** A bulk string reply in full (CLUSTER NODES). */
async function rawLines(port, args) {
    const { stdout } = await run('redis-cli', ['-p', String(port), ...args]);
    return stdout;
}

/** The first element of an array reply, when it is a bulk string ("master" from ROLE). */
function rawFirstElement(port, args) {
    return new Promise((resolve, reject) => {
        const sock = net.connect({ host: '127.0.0.1', port });
        let buf = '';
        const done = (err, v) => {
            sock.destroy();
            if (err) reject(err);
            else resolve(v);
        };
        sock.setTimeout(2000, () => done(new Error('timeout')));
        sock.once('error', (e) => done(e));
        sock.once('connect', () => sock.write(`*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`));
        sock.setEncoding('utf8');
        sock.on('data', (d) => {
            buf += d;
            const m = /^\*\d+\r\n\$\d+\r\n([^\r]*)\r\n/.exec(buf);
            if (m) done(null, m[1]);
            else if (buf.startsWith('-')) done(new Error(buf.trim()));
        });
    });
}
