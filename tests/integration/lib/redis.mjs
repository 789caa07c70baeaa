// A throwaway redis-server for integration tests: free port, temporary directory, no persistence.
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { freePort } from './daemon.mjs';

const START_DEADLINE_MS = 10000;
const STOP_GRACE_MS = 5000;

/**
 * Sends one command in RESP and resolves with the first reply line (e.g. "+PONG", "$-1", ":1").
 * Enough for the helper's own readiness check and simple assertions; not a Redis client.
 */
export function redisCommand(port, args, { host = '127.0.0.1', timeoutMs = 2000 } = {}) {
    return new Promise((resolve, reject) => {
        const sock = net.connect({ host, port });
        let buf = '';
        const done = (err, val) => {
            sock.removeAllListeners();
            sock.on('error', () => {});
            sock.destroy();
            if (err) reject(err);
            else resolve(val);
        };
        sock.setTimeout(timeoutMs, () => done(new Error(`redis ${args[0]}: timeout`)));
        sock.once('error', (err) => done(err));
        sock.once('connect', () => {
            let req = `*${args.length}\r\n`;
            for (const a of args) req += `$${Buffer.byteLength(String(a))}\r\n${a}\r\n`;
            sock.write(req);
        });
        sock.setEncoding('utf8');
        sock.on('data', (d) => {
            buf += d;
            const nl = buf.indexOf('\r\n');
            if (nl < 0) return;
            const first = buf.slice(0, nl);
            if (first[0] === '$' && first !== '$-1') {
                const len = Number(first.slice(1));
                const rest = buf.slice(nl + 2);
                if (Buffer.byteLength(rest) < len + 2) return;
                return done(null, rest.slice(0, len));
            }
            done(null, first);
        });
        sock.once('close', () => done(new Error(`redis ${args[0]}: connection closed`)));
    });
}

export class RedisServer {
    constructor(port, dir, proc) {
        this.host = '127.0.0.1';
        this.port = port;
        this.dir = dir;
        this.proc = proc;
        this.output = '';
        this.exitInfo = null;
        this.exited = new Promise((resolve) => {
            proc.once('error', (err) => {
                this.output += `\n[spawn error: ${err.message}]`;
                this.exitInfo = { code: null, signal: null, error: err };
                resolve(this.exitInfo);
            });
            proc.once('exit', (code, signal) => {
                this.exitInfo = { code, signal };
                resolve(this.exitInfo);
            });
        });
        for (const s of [proc.stdout, proc.stderr]) {
            s.setEncoding('utf8');
            s.on('data', (c) => {
                this.output = (this.output + c).slice(-16000);
            });
        }
    }

    get url() {
        return `redis://${this.host}:${this.port}`;
    }

    command(...args) {
        return redisCommand(this.port, args, { host: this.host });
    }

    /** SIGTERM (SIGKILL after 5 s), then removes the temporary directory. */
    async stop() {
        if (!this.exitInfo) {
            this.proc.kill('SIGTERM');
            let timer;
            const t = new Promise((r) => (timer = setTimeout(() => r('timeout'), STOP_GRACE_MS)));
            if ((await Promise.race([this.exited, t])) === 'timeout') {
                this.proc.kill('SIGKILL');
                await this.exited;
            }
            clearTimeout(timer);
        }
        await rm(this.dir, { recursive: true, force: true });
        return this.exitInfo;
    }
}

/**
 * Starts redis-server ($REDIS_SERVER or redis-server on PATH) and waits until it answers PING.
 * On a free port, or on `port` (e.g. to restart an empty Redis where a stopped one listened).
 */
export async function startRedis({ port: wanted } = {}) {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'presenced-redis-'));
    const port = wanted ?? (await freePort());
    const bin = process.env.REDIS_SERVER || 'redis-server';
    const proc = spawn(bin, ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no'], {
        stdio: ['ignore', 'pipe', 'pipe'],
    });
    const redis = new RedisServer(port, dir, proc);
    const deadline = Date.now() + START_DEADLINE_MS;
    while (Date.now() < deadline) {
        if (redis.exitInfo) {
            await rm(dir, { recursive: true, force: true });
            throw new Error(`redis-server exited early (code=${redis.exitInfo.code}):\n${redis.output}`);
        }
        try {
            if ((await redis.command('PING')) === '+PONG') return redis;
        } catch {
            // not listening yet
        }
        await new Promise((r) => setTimeout(r, 25));
    }
    await redis.stop();
    throw new Error(`redis-server did not answer PING within ${START_DEADLINE_MS} ms:\n${redis.output}`);
}

/**
 * The Redis key of a user ('u'), user's sockets ('k'), room ('r') or instance ('i') under
 * `prefix`, as docs/redis-schema.md lays them out: `<prefix><tag>:<byte length>:<id>`.
 */
export function presenceKey(prefix, tag, id) {
    return `${prefix}${tag}:${Buffer.byteLength(id)}:${id}`;
}
