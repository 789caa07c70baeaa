// What a client may read (docs/security.md, "Read scope"): invisible users keep their lastSeen
// and their rooms to themselves; with auth = jwt the token's rooms claim bounds which rooms'
// members a socket can read, and a refreshed, narrower token takes the socket out of the rooms it
// no longer allows; anonymous_reads = off keeps anonymous sockets from every read.
import { describe, test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { PresenceEnv, STORES, sleep } from './lib/presence.mjs';

const T = { timeout: 30000 };

for (const store of STORES) {
    describe(`invisible users (${store})`, () => {
        const env = new PresenceEnv(store);
        before(() => env.setup());
        afterEach(() => env.cleanup());
        after(() => env.teardown());

        // An invisible user's lastSeen kept moving with every command, and their room joins
        // and leaves reached everyone in the room: both gave them away.
        test('lastSeen stays at the moment they turned invisible; their room changes reach only themselves', T, env.wrap(async () => {
            const d = await env.daemon();
            const alice = await env.client(d, { userId: 'alice' });
            const bob = await env.client(d, { userId: 'bob' });
            await bob.ok('presence:room:join', { room: 'r' });
            await alice.ok('presence:status', { status: 'invisible' });
            const frozen = (await alice.queryOne('alice')).lastSeen;
            await sleep(30); // let the clock move on
            await alice.ok('presence:heartbeat', {});
            await alice.ok('presence:room:join', { room: 'r' });
            await alice.ok('presence:room:leave', { room: 'r' });
            await alice.ok('presence:room:join', { room: 'r' });
            await alice.ok('presence:status', { status: 'invisible' });
            assert.equal((await alice.queryOne('alice')).lastSeen, frozen, 'her own view: frozen');
            const seenByBob = await bob.queryOne('alice');
            assert.equal(seenByBob.online, false);
            assert.equal(seenByBob.lastSeen, frozen, 'what others see: frozen');
            // Events of one store arrive in order: once carol's join is here, alice's would be.
            const carol = await env.client(d, { userId: 'carol' });
            await carol.ok('presence:room:join', { room: 'r' });
            await bob.rec.waitFor('presence:room:join', { userId: 'carol' });
            bob.rec.assertNone('presence:room:join', { userId: 'alice' });
            bob.rec.assertNone('presence:room:leave', { userId: 'alice' });
            await alice.rec.waitFor('presence:room:join', { userId: 'alice', room: 'r' });
            // Visible again: lastSeen moves on, and she comes online and into her room for the
            // others, so that their view of the room agrees with it.
            await alice.ok('presence:status', { status: 'away' });
            assert.ok((await bob.queryOne('alice')).lastSeen > frozen, 'lastSeen moves once visible');
            await bob.rec.waitFor('presence:room:join', { userId: 'alice', room: 'r' });
            const [online, join] = [bob.rec.list('presence:online', { userId: 'alice' }).at(-1), bob.rec.list('presence:room:join', { userId: 'alice' }).at(-1)];
            assert.ok(bob.rec.events.indexOf(online) < bob.rec.events.indexOf(join), 'online, then the room join');
            // Invisible again: she leaves the room, then goes offline, for them.
            await alice.ok('presence:status', { status: 'invisible' });
            const offline = await bob.rec.waitCount('presence:offline', { userId: 'alice' }, 2);
            const leave = bob.rec.list('presence:room:leave', { userId: 'alice', room: 'r' });
            assert.equal(leave.length, 1, 'one room leave');
            assert.ok(bob.rec.events.indexOf(leave[0]) < bob.rec.events.indexOf(offline), 'the room leave, then the offline');
        }));
    });
}

describe('read scope with auth = jwt', () => {
    const env = new PresenceEnv('memory');
    const secret = crypto.randomBytes(32).toString('hex');
    const token = (sub, rooms) => {
        const enc = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
        const claims = { sub, exp: Math.floor(Date.now() / 1000) + 600, ...(rooms ? { rooms } : {}) };
        const body = `${enc({ alg: 'HS256', typ: 'JWT' })}.${enc(claims)}`;
        return `${body}.${crypto.createHmac('sha256', secret).update(body).digest('base64url')}`;
    };
    before(() => env.setup());
    afterEach(() => env.cleanup());
    after(() => env.teardown());

    // The rooms claim limited joins only: any socket could list the members of any room.
    test("the rooms claim bounds presence:room:query as it bounds joins", T, env.wrap(async () => {
        const d = await env.daemon({ auth: 'jwt', jwt_secret: secret });
        const alice = await env.client(d, { auth: { token: token('alice', ['r1', 'p*']) }, label: 'alice' });
        await alice.ok('presence:room:query', { room: 'r1' });
        await alice.ok('presence:room:query', { room: 'p-anything' });
        await alice.fails('presence:room:query', { room: 'r2' }, 'forbidden');
        await alice.fails('presence:room:join', { room: 'r2' }, 'forbidden');
    }));

    // A refresh with fewer rooms left the socket in the rooms it may no longer join.
    test('presence:refresh with a narrower claim leaves the rooms it no longer allows', T, env.wrap(async () => {
        const d = await env.daemon({ auth: 'jwt', jwt_secret: secret });
        const alice = await env.client(d, { auth: { token: token('alice', ['r1', 'p*']) }, label: 'alice' });
        const bob = await env.client(d, { auth: { token: token('bob') }, label: 'bob' });
        await bob.ok('presence:room:join', { room: 'p1' });
        await alice.ok('presence:room:join', { room: 'r1' });
        await alice.ok('presence:room:join', { room: 'p1' });
        await bob.rec.waitFor('presence:room:join', { userId: 'alice', room: 'p1' });
        await alice.ok('presence:refresh', { token: token('alice', ['r1']) });
        await bob.rec.waitFor('presence:room:leave', { userId: 'alice', room: 'p1' });
        assert.deepEqual((await bob.roomQuery('p1')).ids, ['bob']);
        assert.deepEqual((await alice.roomQuery('r1')).ids, ['alice'], 'still in the rooms the token allows');
        await alice.fails('presence:room:join', { room: 'p1' }, 'forbidden');
    }));
});

describe('anonymous_reads = off', () => {
    const env = new PresenceEnv('memory');
    before(() => env.setup());
    afterEach(() => env.cleanup());
    after(() => env.teardown());

    test('anonymous sockets can neither query nor hear presence events', T, env.wrap(async () => {
        const d = await env.daemon({ anonymous_reads: 'off' });
        const anon = await env.client(d, {});
        const observer = await env.client(d, { userId: 'observer' });
        await anon.fails('presence:query', { userIds: ['observer'] }, 'not_identified');
        await anon.fails('presence:room:query', { room: 'r' }, 'not_identified');
        await anon.fails('presence:subscribe', { userIds: ['observer'] }, 'not_identified');
        await anon.fails('presence:sync', { room: 'r' }, 'not_identified');
        await anon.fails('presence:sync', { userIds: ['observer'] }, 'not_identified');
        const alice = await env.client(d, { userId: 'alice' });
        await alice.ok('presence:status', { status: 'away' });
        await observer.rec.waitFor('presence:update', { userId: 'alice' });
        // A broadcast is queued to every recipient at once: an answer the anonymous socket asks
        // for now comes after anything that was sent to it.
        await anon.fails('presence:query', { userIds: ['alice'] }, 'not_identified');
        anon.rec.assertNone(null, null, 'an anonymous socket hears nothing');
        // Once identified it reads like anyone.
        await anon.ok('presence:identify', { userId: 'late' });
        assert.equal((await anon.queryOne('alice')).online, true);
        alice.disconnect();
        await anon.rec.waitFor('presence:offline', { userId: 'alice' });
    }));
});
