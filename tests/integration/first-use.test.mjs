// What a new user runs into when building a "who is here" view from the docs alone: every
// mistake gets an answer that says what to do, metadata can change alone, a socket can connect
// already invisible, and event payloads are what docs/protocol.md says. Against both stores
// where the store takes part.
import { test, describe, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { io } from 'socket.io-client';
import { PresenceEnv, STORES, E, waitUntil } from './lib/presence.mjs';

/** Connects with `auth` and resolves with the connect_error (rejects if it connects). */
function connectError(url, auth) {
    const s = io(url, { transports: ['websocket'], reconnection: false, auth });
    return new Promise((resolve, reject) => {
        s.on('connect', () => {
            s.close();
            reject(new Error(`connected with auth ${JSON.stringify(auth)}`));
        });
        s.on('connect_error', (err) => {
            s.close();
            resolve(err);
        });
    });
}

describe('mistakes get an answer', () => {
    const env = new PresenceEnv('memory');
    afterEach(() => env.cleanup());
    after(() => env.teardown());
    const it = (name, fn) => test(name, { timeout: 20000 }, env.wrap(fn));

    it('an unknown event is answered unknown_event, naming the closest command', async () => {
        const d = await env.daemon();
        const c = await env.client(d, { userId: 'fu-alice' });
        const r = await c.fails('presence:join', { room: 'doc-1' }, 'unknown_event');
        assert.match(r.error.message, /did you mean "presence:room:join"/);
        const r2 = await c.fails('chat:message', { text: 'hi' }, 'unknown_event');
        assert.match(r2.error.message, /docs\/protocol\.md/);
        // The socket carries on.
        await c.ok('presence:room:join', { room: 'doc-1' });
    });

    it('unknown or ill-typed auth keys are a connect_error naming the key', async () => {
        const d = await env.daemon();
        const typo = await connectError(d.url, { user: 'fu-alice' });
        assert.match(typo.message, /unknown auth key "user"/);
        const nul = await connectError(d.url, { userId: null });
        assert.equal(nul.message, 'invalid userId');
        const st = await connectError(d.url, { userId: 'fu-alice', status: 'gone' });
        assert.equal(st.message, 'invalid status');
        const tok = await connectError(d.url, { token: 'abc' });
        assert.match(tok.message, /auth\.token is not used \(auth = insecure\)/);
    });

    it('a refused Origin and a wrong path answer what to change, and are logged', async () => {
        const d = await env.daemon({ path: '/presence/' });
        const res = await fetch(`${d.url}/presence/?EIO=4&transport=polling`, { headers: { origin: 'http://evil.example' } });
        assert.equal(res.status, 403);
        const body = await res.json();
        assert.equal(body.code, 4);
        assert.match(body.hint, /allowed_origins/);
        for (let i = 0; i < 3; i++) {
            const nf = await fetch(`${d.url}/socket.io/?EIO=4&transport=polling`);
            assert.equal(nf.status, 404);
            assert.match((await nf.json()).error.message, /Socket\.IO is served at \/presence\/ \(the path setting/);
        }
        await waitUntil(() => /cause=origin .*setting=allowed_origins/.test(d.stderrText) && /unknown path.*socketio_path=\/presence\//.test(d.stderrText), { what: 'both refusals logged' });
        assert.equal(d.stderrText.match(/unknown path/g).length, 1, 'logged once');
    });
});

for (const store of STORES) {
    describe(`status and metadata (store=${store})`, () => {
        const env = new PresenceEnv(store);
        before(() => env.setup());
        afterEach(() => env.cleanup());
        after(() => env.teardown());
        const it = (name, fn) => test(name, { timeout: 20000 }, env.wrap(fn));

        it('presence:status with metadata alone keeps the status another tab set', async () => {
            const d = await env.daemon();
            const tab1 = await env.client(d, { userId: 'fu-meta', metadata: { name: 'A' } });
            const tab2 = await env.client(d, { userId: 'fu-meta' });
            const w = await env.client(d, { userId: 'fu-watcher' });
            await tab2.ok('presence:status', { status: 'away' });
            await w.rec.waitFor('presence:update', { userId: 'fu-meta', status: 'away' });
            await tab1.ok('presence:status', { metadata: { name: 'Alice' } });
            const up = await w.rec.waitFor('presence:update', (p) => p.userId === 'fu-meta' && p.metadata?.name === 'Alice');
            assert.equal(up.data.status, 'away');
            const q = await w.queryOne('fu-meta');
            assert.equal(q.status, 'away');
            assert.deepEqual(q.metadata, { name: 'Alice' });
            await tab1.fails('presence:status', {}, E.INVALID);
        });

        it('auth.status invisible: a reload stays invisible, nobody hears it come online', async () => {
            const d = await env.daemon();
            const w = await env.client(d, { userId: 'fu-w2' });
            const ghost = await env.client(d, { auth: { userId: 'fu-ghost', status: 'invisible' }, userId: 'fu-ghost' });
            const seen = await ghost.queryOne('fu-ghost');
            assert.equal(seen.status, 'invisible', 'the user sees their own status');
            const other = await w.queryOne('fu-ghost');
            assert.equal(other.online, false);
            ghost.disconnect();
            const again = await env.client(d, { auth: { userId: 'fu-ghost', status: 'invisible' }, userId: 'fu-ghost' });
            await again.ok('presence:status', { status: 'away' });
            await w.rec.waitFor('presence:online', { userId: 'fu-ghost' });
            // Before turning visible, nothing about fu-ghost reached the watcher.
            assert.deepEqual(w.rec.about('fu-ghost').map((e) => e.event), ['presence:online'], w.rec.describe());
        });
    });
}
