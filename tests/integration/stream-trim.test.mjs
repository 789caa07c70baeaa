// The event stream is trimmed to about stream_maxlen entries whether or not every instance has read
// them. An instance whose reader falls that far behind (its loop stopped or starved through a
// storm) has missed events for good: its readers must be told that what they hold is void
// (presence:resync {reset: true}), or they keep a wrong view forever. One that fell behind
// without losing anything must not tell them.
import { describe, test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { PresenceEnv, sleep, waitUntil } from './lib/presence.mjs';

const T = { timeout: 60000 };

describe('a reader behind the stream trimming (redis)', () => {
    const env = new PresenceEnv('redis');
    before(() => env.setup());
    afterEach(() => env.cleanup());
    after(() => env.teardown());

    // A watcher on instance A follows a user on instance B; A is stopped (SIGSTOP, as a loop
    // starved of CPU) while B makes `changes` status changes; then A goes on, and B makes one more
    // ('busy'). Returns the watcher once it was told of that change or to start again.
    async function behind(changes) {
        const set = { stream_maxlen: 100, rate_limit: 100000, rate_burst: 100000 };
        const a = await env.daemon(set);
        const b = await env.daemon(set);
        const watcher = await env.client(a, { userId: 'watcher' });
        const busy = await env.client(b, { userId: 'busy' });
        await watcher.ok('presence:subscribe', { userIds: ['busy'] });
        a.proc.kill('SIGSTOP');
        try {
            for (let i = 0; i < changes; i++) await busy.ok('presence:status', { status: i % 2 ? 'online' : 'away' });
        } finally {
            a.proc.kill('SIGCONT');
        }
        await busy.ok('presence:status', { status: 'busy' });
        await waitUntil(
            () =>
                watcher.rec.count('presence:update', { userId: 'busy', status: 'busy' }) > 0 ||
                watcher.rec.count('presence:resync') > 0,
            { what: "the last change or a resync on the watcher's instance" },
        );
        return watcher;
    }

    test('entries it never read were trimmed: its readers are told to start again', T, env.wrap(async () => {
        const w = await behind(600);
        assert.equal(w.rec.count('presence:resync', { reset: true }), 1, w.rec.describe());
        // The watcher missed most of the 600 updates; what it was told after the reset is at most
        // the last change (its instance reads on from the stream's end), and a new snapshot holds it.
        const after = w.rec.events.slice(w.rec.events.findIndex((e) => e.event === 'presence:resync') + 1);
        assert.ok(after.every((e) => e.data?.status === 'busy'), w.rec.describe());
        assert.equal((await w.queryOne('busy')).status, 'busy');
        await sleep(300);
        assert.equal(w.rec.count('presence:resync'), 1, 'one reset, not one per batch');
    }));

    test('behind, but nothing it had to read was trimmed: no reset', T, env.wrap(async () => {
        const w = await behind(60);
        assert.equal(w.rec.count('presence:resync'), 0, w.rec.describe());
        assert.equal(w.rec.count('presence:update', { userId: 'busy' }), 61, 'every change arrived');
    }));
});
