// Helpers for the HTTP API tests: JSON requests, a Server-Sent Events reader, raw TCP requests
// (for what fetch refuses to send) and a webhook receiver with signature checking.
import crypto from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import { checkAnswer } from './openapi.mjs';
import { isFence } from './fence.mjs';

/**
 * fetch with a deadline; resolves {status, headers, text, json}. Every answer is checked against
 * the OpenAPI document (lib/openapi.mjs): one that does not match it throws.
 */
export async function api(base, path, { method = 'GET', body, key, headers = {}, ms = 5000 } = {}) {
    const h = { ...headers };
    if (key) h.authorization = `Bearer ${key}`;
    if (body !== undefined && typeof body !== 'string') {
        body = JSON.stringify(body);
        h['content-type'] = 'application/json';
    }
    const res = await fetch(base + path, { method, body, headers: h, signal: AbortSignal.timeout(ms) });
    const text = await res.text();
    checkAnswer({ method, url: base + path, status: res.status, contentType: res.headers.get('content-type'), text });
    let json;
    try {
        json = text ? JSON.parse(text) : undefined;
    } catch {
        json = undefined;
    }
    return { status: res.status, headers: res.headers, text, json };
}

/**
 * Sends raw bytes on a new TCP connection and resolves {text, closed} with whatever came back
 * before the server closed the connection or `ms` passed (closed tells which).
 */
export function rawRequest(host, port, bytes, { ms = 3000, end = false } = {}) {
    return new Promise((resolve) => {
        const sock = net.connect({ host, port });
        let text = '';
        const done = (closed) => {
            clearTimeout(timer);
            sock.destroy();
            resolve({ text, closed });
        };
        const timer = setTimeout(() => done(false), ms);
        sock.setEncoding('latin1');
        sock.on('data', (d) => (text += d));
        sock.on('close', () => done(true));
        sock.on('error', () => {});
        sock.on('connect', () => {
            sock.write(bytes);
            if (end) sock.end();
        });
    });
}

/**
 * An open GET /v1/events stream: events arrive in `events` ({id, event, data}), those about fence
 * users (lib/fence.mjs) in `fences`, comment lines (without the ':') in `comments`.
 */
export class SseStream {
    constructor(base, { lastEventId, key, query = '' } = {}) {
        this.events = [];
        this.fences = [];
        this.comments = [];
        this.waiters = [];
        this.ctrl = new AbortController();
        const headers = { accept: 'text/event-stream' };
        if (lastEventId) headers['last-event-id'] = lastEventId;
        if (key) headers.authorization = `Bearer ${key}`;
        this.ready = fetch(`${base}/v1/events${query}`, { headers, signal: this.ctrl.signal }).then(async (res) => {
            this.status = res.status;
            this.contentType = res.headers.get('content-type');
            const url = `${base}/v1/events${query}`;
            const text = res.status === 200 ? null : await res.clone().text();
            checkAnswer({ method: 'GET', url, status: res.status, contentType: this.contentType, text });
            if (res.status === 200) this.pump(res.body);
            return res;
        });
    }

    async pump(body) {
        const dec = new TextDecoder();
        let buf = '';
        try {
            for await (const chunk of body) {
                buf += dec.decode(chunk, { stream: true });
                let i;
                while ((i = buf.indexOf('\n\n')) >= 0) {
                    const block = buf.slice(0, i);
                    buf = buf.slice(i + 2);
                    const ev = {};
                    for (const line of block.split('\n')) {
                        if (line.startsWith(':')) {
                            this.comments.push(line.slice(1).trim());
                            continue;
                        }
                        const c = line.indexOf(': ');
                        if (c > 0) ev[line.slice(0, c)] = line.slice(c + 2);
                    }
                    if (ev.data !== undefined) {
                        ev.data = JSON.parse(ev.data);
                        (isFence(ev.data.userId) ? this.fences : this.events).push(ev);
                    }
                    this.waiters = this.waiters.filter((w) => !w());
                }
            }
        } catch {
            // aborted
        }
        this.ended = true;
        this.waiters = this.waiters.filter((w) => !w());
    }

    /** Resolves once pred(events, this) is true; rejects after ms (or when the stream ended). */
    until(pred, ms = 5000, what = 'events') {
        return new Promise((resolve, reject) => {
            const check = () => {
                if (pred(this.events, this)) {
                    clearTimeout(timer);
                    resolve(this.events);
                    return true;
                }
                if (this.ended) {
                    clearTimeout(timer);
                    reject(new Error(`the stream ended while waiting for ${what}; got ${JSON.stringify(this.events)}`));
                    return true;
                }
                return false;
            };
            const timer = setTimeout(() => {
                this.waiters = this.waiters.filter((w) => w !== check);
                reject(new Error(`timed out waiting for ${what}; got ${JSON.stringify(this.events)}`));
            }, ms);
            if (!check()) this.waiters.push(check);
        });
    }

    /**
     * Resolves once the stream is registered: the daemon sends its first comment line only after
     * it has added the stream, so events decided after that reach it. Rejects on a non-200.
     */
    async opened(ms = 5000) {
        const res = await this.ready;
        if (res.status !== 200) throw new Error(`GET /v1/events answered ${res.status}`);
        await this.until((_, st) => st.comments.includes('presenced event stream'), ms, 'the stream to open');
        return this;
    }

    close() {
        this.ctrl.abort();
    }
}

/** The signature presenced puts on a webhook body. */
export function sign(secret, body) {
    return 'sha256=' + crypto.createHmac('sha256', secret).update(body).digest('hex');
}

/**
 * A webhook receiver on a free port. `respond(n, req)` gives the status for the n-th request
 * (from 1), or null to never answer it (the connection is held until close()). Every request is
 * kept in `requests` ({body, signature, status, events, valid, at}).
 */
export async function startReceiver({ secret = '', respond = () => 200 } = {}) {
    const requests = [];
    const held = new Set();
    const srv = http.createServer((req, res) => {
        const chunks = [];
        req.on('data', (c) => chunks.push(c));
        req.on('end', () => {
            const body = Buffer.concat(chunks).toString('utf8');
            const signature = req.headers['x-presenced-signature'];
            const status = respond(requests.length + 1, req);
            let events = [];
            try {
                events = JSON.parse(body).events;
            } catch {
                events = null;
            }
            requests.push({ body, signature, status, events, valid: !secret || signature === sign(secret, body), at: Date.now() });
            if (status === null) {
                held.add(res);
                return;
            }
            res.writeHead(status, { 'content-type': 'text/plain' });
            res.end('ok');
        });
    });
    await new Promise((r) => srv.listen(0, '127.0.0.1', r));
    const acceptedAll = () => requests.filter((r) => r.status !== null && r.status < 300).flatMap((r) => r.events);
    return {
        url: `http://127.0.0.1:${srv.address().port}/hook`,
        requests,
        /** Events of accepted (2xx) requests, in arrival order, fence events left out. */
        accepted() {
            return acceptedAll().filter((e) => !isFence(e.userId));
        },
        /** The fence events (lib/fence.mjs) of accepted requests. */
        fenceEvents() {
            return acceptedAll().filter((e) => isFence(e.userId));
        },
        close: () =>
            new Promise((r) => {
                for (const res of held) res.destroy();
                srv.closeAllConnections?.();
                srv.close(r);
            }),
    };
}

/**
 * The value of one series in the Prometheus text at `url`/metrics: `name` with its labels exactly
 * as printed (`presenced_sockets_local`, `presenced_limit_hits_total{limit="rate"}`); NaN if absent.
 */
export async function metric(url, name, { key } = {}) {
    const res = await api(url, '/metrics', { key });
    if (res.status !== 200) throw new Error(`GET ${url}/metrics: ${res.status} ${res.text.slice(0, 200)}`);
    const line = res.text.split('\n').find((l) => l.startsWith(name + ' '));
    return line ? Number(line.slice(name.length + 1)) : NaN;
}

/** Polls metric() until it equals `want`; fails with the last value after ms. */
export async function waitMetric(url, name, want, { ms = 15000, key } = {}) {
    const deadline = Date.now() + ms;
    let v;
    for (;;) {
        v = await metric(url, name, { key });
        // A function is asked again each time: for counts that may still grow while we wait.
        const w = typeof want === 'function' ? want() : want;
        if (v === w) return v;
        if (Date.now() > deadline) throw new Error(`${name} at ${url} is ${v}, not ${w}, after ${ms} ms`);
        await new Promise((r) => setTimeout(r, 20));
    }
}
