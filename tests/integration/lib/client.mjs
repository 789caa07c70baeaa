// Client-side helpers: socket.io-client sockets that are always closed, event waits with timeouts,
// a raw WebSocket speaking Engine.IO by hand, and plain HTTP requests with a deadline.
import { io, Manager } from 'socket.io-client';
import WebSocket from 'ws';

export const DEFAULT_WAIT_MS = 5000;

/**
 * Resolves with the argument array of the next `event` on `emitter` (socket.io-client Socket,
 * engine.io Socket or any EventEmitter). Rejects after ms, or on the first `failOn` event (for
 * example 'connect_error' while waiting for 'connect').
 */
export function waitFor(emitter, event, { ms = DEFAULT_WAIT_MS, failOn = [] } = {}) {
    return new Promise((resolve, reject) => {
        const cleanups = [];
        const finish = (fn) => {
            clearTimeout(timer);
            cleanups.forEach((c) => c());
            fn();
        };
        const onEvent = (...args) => finish(() => resolve(args));
        emitter.on(event, onEvent);
        cleanups.push(() => emitter.off(event, onEvent));
        for (const f of [].concat(failOn)) {
            const onFail = (...args) => {
                const detail = args[0] instanceof Error ? args[0].message : JSON.stringify(args);
                finish(() => reject(new Error(`got '${f}' (${detail}) while waiting for '${event}'`)));
            };
            emitter.on(f, onFail);
            cleanups.push(() => emitter.off(f, onFail));
        }
        const timer = setTimeout(
            () => finish(() => reject(new Error(`timed out after ${ms} ms waiting for '${event}'`))),
            ms,
        );
    });
}

/** Rejects with a descriptive error when promise does not settle within ms. */
export function withTimeout(promise, ms, what) {
    let timer;
    const t = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
    });
    return Promise.race([promise, t]).finally(() => clearTimeout(timer));
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Keeps track of every socket.io-client socket/manager a test opens so that closeAll() (called from
 * afterEach/after) leaves nothing connected, whatever the test outcome.
 */
export class ClientPool {
    constructor() {
        this.sockets = new Set();
        this.managers = new Set();
        this.raws = new Set();
    }

    /**
     * io(baseUrl + nsp, opts) with forceNew and no reconnection unless opts says otherwise.
     * Does not wait for the connection; see connect().
     */
    socket(baseUrl, nsp = '/', opts = {}) {
        const s = io(baseUrl + nsp, { forceNew: true, reconnection: false, timeout: DEFAULT_WAIT_MS, ...opts });
        this.sockets.add(s);
        return s;
    }

    /** Like socket() but resolves once 'connect' fired (rejects on connect_error or timeout). */
    async connect(baseUrl, nsp = '/', opts = {}) {
        const s = this.socket(baseUrl, nsp, opts);
        if (!s.connected) await waitFor(s, 'connect', { failOn: 'connect_error' });
        return s;
    }

    manager(baseUrl, opts = {}) {
        const m = new Manager(baseUrl, { reconnection: false, timeout: DEFAULT_WAIT_MS, ...opts });
        this.managers.add(m);
        return m;
    }

    raw(url, opts) {
        const r = new RawWs(url, opts);
        this.raws.add(r);
        return r;
    }

    closeAll() {
        for (const s of this.sockets) {
            s.io.opts.reconnection = false;
            s.io.reconnection(false);
            s.disconnect();
            s.io.engine?.close();
        }
        for (const m of this.managers) {
            m.reconnection(false);
            m.engine?.close();
        }
        for (const r of this.raws) r.terminate();
        this.sockets.clear();
        this.managers.clear();
        this.raws.clear();
    }
}

/** Converts every Buffer/TypedArray/ArrayBuffer inside v to a Buffer, for deepStrictEqual. */
export function normalizeBinary(v) {
    if (Buffer.isBuffer(v)) return Buffer.from(v);
    if (ArrayBuffer.isView(v)) return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
    if (v instanceof ArrayBuffer) return Buffer.from(v);
    if (Array.isArray(v)) return v.map(normalizeBinary);
    if (v && typeof v === 'object') {
        const o = {};
        for (const [k, x] of Object.entries(v)) o[k] = normalizeBinary(x);
        return o;
    }
    return v;
}

/**
 * A WebSocket speaking Engine.IO by hand. Received messages are queued (strings for text frames,
 * Buffers for binary frames); Engine.IO pings ("2") are answered with "3" and counted in `pings`,
 * not queued, unless autoPong is false, so a connection only closes for the reason a test provokes.
 */
export class RawWs {
    constructor(url, { autoPong = true, headers, origin, ...wsOpts } = {}) {
        this.queue = [];
        this.pings = 0;
        this.waiters = [];
        this.closeInfo = null;
        this.ws = new WebSocket(url, { headers, origin, ...wsOpts });
        this.opened = new Promise((resolve, reject) => {
            this.ws.once('open', resolve);
            this.ws.once('unexpected-response', (req, res) => {
                const err = new Error(`unexpected HTTP ${res.statusCode} instead of 101`);
                err.statusCode = res.statusCode;
                err.response = res;
                res.resume();
                reject(err);
            });
            this.ws.once('error', reject);
        });
        this.opened.catch(() => {});
        this.closed = new Promise((resolve) => {
            this.ws.once('close', (code, reason) => {
                this.closeInfo = { code, reason: reason.toString() };
                resolve(this.closeInfo);
                for (const w of this.waiters.splice(0)) w.reject(new Error(`connection closed (code ${code}) while waiting for a message`));
            });
        });
        this.ws.on('error', () => {}); // reported via opened / closed
        this.ws.on('message', (data, isBinary) => {
            const msg = isBinary ? Buffer.from(data) : data.toString();
            if (autoPong && msg === '2') {
                this.pings++;
                this.send('3');
                return;
            }
            const w = this.waiters.shift();
            if (w) w.resolve(msg);
            else this.queue.push(msg);
        });
    }

    /** Next received message (string or Buffer); rejects on timeout or close. */
    next(ms = DEFAULT_WAIT_MS) {
        if (this.queue.length) return Promise.resolve(this.queue.shift());
        if (this.closeInfo) return Promise.reject(new Error(`connection closed (code ${this.closeInfo.code})`));
        return new Promise((resolve, reject) => {
            const w = {
                resolve: (m) => {
                    clearTimeout(timer);
                    resolve(m);
                },
                reject: (e) => {
                    clearTimeout(timer);
                    reject(e);
                },
            };
            const timer = setTimeout(() => {
                this.waiters.splice(this.waiters.indexOf(w), 1);
                reject(new Error(`timed out after ${ms} ms waiting for a message`));
            }, ms);
            this.waiters.push(w);
        });
    }

    send(data, opts) {
        if (this.ws.readyState === WebSocket.OPEN) this.ws.send(data, opts);
    }

    /** Resolves with {code, reason} when the peer (or we) closed; rejects after ms. */
    waitClose(ms = DEFAULT_WAIT_MS) {
        return withTimeout(this.closed, ms, 'waiting for the server to close the WebSocket');
    }

    terminate() {
        if (this.ws.readyState !== WebSocket.CLOSED) this.ws.terminate();
    }
}

/**
 * Opens a raw Engine.IO WebSocket to baseWsUrl + path, checks the open packet and returns
 * { raw, handshake }.
 */
export async function openEngineWs(pool, baseWsUrl, path = '/socket.io/', opts = {}) {
    const raw = pool.raw(`${baseWsUrl}${path}?EIO=4&transport=websocket`, opts);
    await withTimeout(raw.opened, DEFAULT_WAIT_MS, 'WebSocket open');
    const open = await raw.next();
    if (typeof open !== 'string' || open[0] !== '0') throw new Error(`expected an Engine.IO open packet, got ${JSON.stringify(open)}`);
    return { raw, handshake: JSON.parse(open.slice(1)) };
}

/**
 * Raw WebSocket with the Socket.IO main namespace connected ("40" sent, "40{sid}" received).
 * In conformance mode the daemon then emits "auth"; that packet is consumed too.
 */
export async function openSocketIoWs(pool, baseWsUrl, { expectAuth = true } = {}) {
    const { raw } = await openEngineWs(pool, baseWsUrl);
    raw.send('40');
    const connect = await raw.next();
    if (typeof connect !== 'string' || !connect.startsWith('40{')) throw new Error(`expected a CONNECT reply, got ${JSON.stringify(connect)}`);
    if (expectAuth) {
        const auth = await raw.next();
        if (!String(auth).startsWith('42["auth"')) throw new Error(`expected the auth event, got ${JSON.stringify(auth)}`);
    }
    return raw;
}

/** fetch() with a deadline; resolves with { status, headers, text, json() }. */
export async function http(url, { method = 'GET', headers = {}, body, ms = DEFAULT_WAIT_MS } = {}) {
    let res, text;
    try {
        res = await fetch(url, { method, headers, body, signal: AbortSignal.timeout(ms) });
        text = await res.text();
    } catch (err) {
        throw new Error(`${method} ${url.length > 200 ? url.slice(0, 200) + '...' : url}: ${err.name}: ${err.message}`, { cause: err });
    }
    return {
        status: res.status,
        headers: res.headers,
        text,
        json() {
            try {
                return JSON.parse(text);
            } catch {
                throw new Error(`body is not JSON: ${JSON.stringify(text.slice(0, 200))}`);
            }
        },
    };
}

/** Opens an Engine.IO long-polling session; returns { sid, handshake }. */
export async function pollingHandshake(baseUrl, path = '/socket.io/', headers = {}) {
    const res = await http(`${baseUrl}${path}?EIO=4&transport=polling`, { headers });
    if (res.status !== 200 || res.text[0] !== '0') throw new Error(`polling handshake failed: ${res.status} ${res.text.slice(0, 200)}`);
    const handshake = JSON.parse(res.text.slice(1));
    return { sid: handshake.sid, handshake };
}

/**
 * Resolves once a socket.io-client socket has received `n` more Engine.IO pings: the server sends
 * a ping only after the previous pong arrived, so `n` pings mean the connection was alive and
 * answering for n - 1 whole heartbeats. Rejects after ms.
 */
export function morePings(socket, n, ms = DEFAULT_WAIT_MS) {
    return new Promise((resolve, reject) => {
        let seen = 0;
        const onPing = () => {
            if (++seen < n) return;
            clearTimeout(timer);
            socket.io.off('ping', onPing);
            resolve();
        };
        const timer = setTimeout(() => {
            socket.io.off('ping', onPing);
            reject(new Error(`${seen} of ${n} pings within ${ms} ms`));
        }, ms);
        socket.io.on('ping', onPing);
    });
}

/** One message/message-back round trip on a connected conformance-mode socket. */
export async function roundTrip(socket, ...args) {
    const back = waitFor(socket, 'message-back', { failOn: 'disconnect' });
    socket.emit('message', ...args);
    return back;
}
