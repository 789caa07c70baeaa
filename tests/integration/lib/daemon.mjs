// Starts and stops the presenced binary under test ($PRESENCED_BIN).
//
// Every test file starts its own daemon(s) on a free port, so files do not depend on each other.
// The daemon's stderr is kept (the last 64 KiB) and appended to the message of any failure raised
// through Daemon.wrap(), Daemon.stop() or startDaemon(), so a failing run shows what the daemon said.
import { spawn } from 'node:child_process';
import net from 'node:net';

const START_DEADLINE_MS = 10000;
const STOP_GRACE_MS = 5000;
const STDERR_KEEP = 64 * 1024;

/** Returns a TCP port that was free a moment ago (bind port 0, read it, close). */
export function freePort(host = '127.0.0.1') {
    return new Promise((resolve, reject) => {
        const srv = net.createServer();
        srv.unref();
        srv.on('error', reject);
        srv.listen(0, host, () => {
            const { port } = srv.address();
            srv.close(() => resolve(port));
        });
    });
}

/** Resolves true when host:port accepts a TCP connection, false when refused. */
function probe(host, port) {
    return new Promise((resolve) => {
        const sock = net.connect({ host, port });
        const done = (ok) => {
            sock.removeAllListeners();
            sock.on('error', () => {});
            sock.destroy();
            resolve(ok);
        };
        sock.setTimeout(500, () => done(false));
        sock.once('connect', () => done(true));
        sock.once('error', () => done(false));
    });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function binaryPath() {
    const bin = process.env.PRESENCED_BIN;
    if (!bin) throw new Error('PRESENCED_BIN is not set (run tests through tests/integration/run.sh <binary>)');
    return bin;
}

export class Daemon {
    constructor({ host, port, args }) {
        this.host = host;
        this.port = port;
        this.args = args;
        this.proc = null;
        this.stderrText = '';
        this.exitInfo = null; // {code, signal} once exited
        this.exited = null; // Promise<{code, signal}>
    }

    /** Base URL, e.g. http://127.0.0.1:1234 */
    get url() {
        return `http://${this.host}:${this.port}`;
    }

    get wsUrl() {
        return `ws://${this.host}:${this.port}`;
    }

    /** The last part of what the daemon wrote to stderr, for failure messages. */
    stderrTail(max = 8000) {
        const s = this.stderrText;
        return s.length > max ? '...' + s.slice(s.length - max) : s;
    }

    /** Appends the daemon's state and stderr tail to err's message (or wraps err if read-only). */
    annotate(err) {
        if (!err || typeof err !== 'object') return err;
        const done = err.presencedAnnotated ?? [];
        if (done.includes(this)) return err;
        const status = this.exitInfo ? `exited code=${this.exitInfo.code} signal=${this.exitInfo.signal}` : 'running';
        const extra = `\n--- presenced (${this.args.join(' ')}) ${status}; stderr tail ---\n${this.stderrTail()}\n--- end ---`;
        try {
            err.message += extra;
            err.presencedAnnotated = [...done, this];
            return err;
        } catch {
            // e.g. DOMException (fetch timeouts): message is a getter.
            const wrapped = new Error(`${err.name}: ${err.message}${extra}`, { cause: err });
            wrapped.presencedAnnotated = [...done, this];
            return wrapped;
        }
    }

    /** Wraps a test function so that its failure carries the daemon's stderr. */
    wrap(fn) {
        return async (...a) => {
            try {
                return await fn(...a);
            } catch (err) {
                throw this.annotate(err);
            }
        };
    }

    async start() {
        this.stderrText = '';
        this.exitInfo = null;
        // presenced reads PRESENCED_* variables as configuration (and refuses unknown ones, such as
        // our own PRESENCED_BIN): the daemon under test gets none of them, only its arguments.
        const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('PRESENCED_')));
        const proc = spawn(binaryPath(), this.args, { stdio: ['ignore', 'ignore', 'pipe'], env });
        this.proc = proc;
        proc.stderr.setEncoding('utf8');
        this.startedAs = null;
        proc.stderr.on('data', (chunk) => {
            this.stderrText += chunk;
            // The start-up line, kept before the tail drops it (on a Redis Cluster every
            // partition logs its own reconnections, which fill the tail within one outage).
            this.startedAs ??= /msg="presence" instance=(\S+)/.exec(this.stderrText)?.[1] ?? null;
            if (this.stderrText.length > 2 * STDERR_KEEP) {
                this.stderrText = this.stderrText.slice(this.stderrText.length - STDERR_KEEP);
            }
        });
        this.exited = new Promise((resolve) => {
            proc.once('error', (err) => {
                this.stderrText += `\n[spawn error: ${err.message}]`;
                this.exitInfo = { code: null, signal: null, error: err };
                resolve(this.exitInfo);
            });
            proc.once('exit', (code, signal) => {
                this.exitInfo = { code, signal };
                resolve(this.exitInfo);
            });
        });
        const deadline = Date.now() + START_DEADLINE_MS;
        while (Date.now() < deadline) {
            if (this.exitInfo) {
                throw this.annotate(new Error(`presenced exited before accepting connections on port ${this.port}`));
            }
            if (await probe(this.host, this.port)) return this;
            await sleep(25);
        }
        await this.kill('SIGKILL');
        throw this.annotate(new Error(`presenced did not accept connections on port ${this.port} within ${START_DEADLINE_MS} ms`));
    }

    /** This instance's id in the store, from its start-up log line (null before it is logged). */
    get instanceId() {
        return this.startedAs ?? null;
    }

    /** Sends a signal without waiting (e.g. SIGSTOP/SIGCONT). */
    signal(sig) {
        if (this.proc && !this.exitInfo) this.proc.kill(sig);
    }

    /** Sends sig and waits for the process to exit; returns {code, signal}. */
    async kill(sig = 'SIGKILL') {
        if (!this.proc) return this.exitInfo;
        if (!this.exitInfo) {
            this.proc.kill('SIGCONT'); // in case a test stopped it
            this.proc.kill(sig);
        }
        return this.exited;
    }

    /**
     * SIGTERM, wait for exit (SIGKILL after 5 s). Throws unless the daemon exited with code 0.
     * Idempotent: stopping an already stopped daemon checks the recorded exit status again only if
     * it was stopped by this method.
     */
    async stop({ expectClean = true } = {}) {
        if (!this.proc) return null;
        if (this.exitInfo) {
            const info = this.exitInfo;
            this.proc = null;
            if (expectClean && !(info.code === 0 && info.signal === null)) {
                throw this.annotate(new Error(`presenced had already exited (code=${info.code} signal=${info.signal}) before stop()`));
            }
            return info;
        }
        this.proc.kill('SIGCONT');
        this.proc.kill('SIGTERM');
        let timer;
        const killed = new Promise((resolve) => {
            timer = setTimeout(() => resolve('timeout'), STOP_GRACE_MS);
        });
        const first = await Promise.race([this.exited, killed]);
        clearTimeout(timer);
        let hung = false;
        if (first === 'timeout') {
            hung = true;
            this.proc.kill('SIGKILL');
            await this.exited;
        }
        const info = this.exitInfo;
        this.proc = null;
        if (expectClean) {
            if (hung) {
                throw this.annotate(new Error(`presenced did not exit within ${STOP_GRACE_MS} ms of SIGTERM (SIGKILLed)`));
            }
            if (!(info.code === 0 && info.signal === null)) {
                throw this.annotate(new Error(`presenced exited with code=${info.code} signal=${info.signal} after SIGTERM, expected code 0`));
            }
        }
        return info;
    }

    /** Stops (SIGTERM, must exit 0) and starts again on the same port with the same arguments. */
    async restart() {
        await this.stop();
        return this.start();
    }
}

/**
 * Waits until GET /readyz at `url` answers 200: with the Redis store a daemon listens before it
 * has reached Redis, and state changes made in between are only re-asserted at its next lease
 * refresh, so tests start from a daemon that is ready. A daemon that is not ready within `ms`
 * fails the test (with the last answer).
 */
export async function waitReady(url, ms = 15000) {
    const until = Date.now() + ms;
    let last = 'no answer';
    for (;;) {
        const res = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(ms) }).then(
            async (r) => ({ status: r.status, text: await r.text() }),
            (err) => ({ status: 0, text: err.message }),
        );
        if (res.status === 200) return;
        last = `${res.status} ${res.text}`;
        if (Date.now() >= until) throw new Error(`${url}/readyz did not answer 200 within ${ms} ms; last answer: ${last}`);
        await sleep(20);
    }
}

/**
 * Starts presenced on a free port (or the given one).
 *   mode: 'socketio' (--conformance), 'engineio' (--conformance=engineio) or 'default'
 *   set:  { key: value } → --set key=value
 *   ready: with the Redis store, also wait until /readyz says 200 (on admin_listen if set)
 */
export async function startDaemon({ mode = 'default', set = {}, port, host = '127.0.0.1', extraArgs = [], ready = true } = {}) {
    const p = port ?? (await freePort(host));
    const args = ['--listen', `${host}:${p}`];
    if (mode === 'socketio') args.push('--conformance');
    else if (mode === 'engineio') args.push('--conformance=engineio');
    else if (mode !== 'default') throw new Error(`unknown mode ${mode}`);
    for (const [k, v] of Object.entries(set)) args.push('--set', `${k}=${v}`);
    args.push(...extraArgs);
    const d = new Daemon({ host, port: p, args });
    await d.start();
    const redis = set.store === 'redis' || extraArgs.includes('redis') || extraArgs.includes('--redis');
    if (ready && redis) {
        try {
            await d.wrap(() => waitReady(set.admin_listen ? `http://${set.admin_listen}` : d.url))();
        } catch (err) {
            await d.kill('SIGKILL');
            throw err;
        }
    }
    return d;
}
