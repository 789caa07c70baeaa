// presenced takes over a Redis prefix that an older release wrote (docs/redis-schema.md,
// "Upgrading to the short record and stream forms"): stream entries in pres_event's JSON form
// reach clients as any other event, and a record with lastSeen written out is read as it says and
// written again in the short form (lastSeen left out while it equals since).
import { describe, test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { PresenceEnv } from './lib/presence.mjs';
import { presenceKey } from './lib/redis.mjs';
import { keyPrefixes, partitionOf } from './lib/topology.mjs';

const T = { timeout: 30000 };
const SID = 'AAAAAAAAAAAAAAAAAAAA';

describe('data an older release wrote (redis)', () => {
    const env = new PresenceEnv('redis');
    before(() => env.setup());
    afterEach(() => env.cleanup());
    after(() => env.teardown());

    // The key prefix that holds `user`'s record and events (one per partition on a cluster).
    const prefixOf = (user) => keyPrefixes(env.prefix)[partitionOf(user)];

    test('JSON stream entries reach subscribers', T, env.wrap(async () => {
        const d = await env.daemon();
        const watcher = await env.client(d, { userId: 'watcher' });
        await watcher.ok('presence:subscribe', { userIds: ['json-user'] });
        const events = `${prefixOf('json-user')}events`;
        const online = JSON.stringify({ t: 'online', u: 'json-user', s: SID, st: 'away' });
        const update = JSON.stringify({ t: 'update', u: 'json-user', st: 'busy', ps: 'away', m: { team: 'a\tb' } });
        const idOnline = await env.redis.command('XADD', events, '*', 'e', online);
        const idUpdate = await env.redis.command('XADD', events, '*', 'e', update);
        assert.match(idUpdate, /^\d+-\d+$/, `XADD answered ${idUpdate}`);
        // seq (the entry's id) is there when the event is told in order with a snapshot.
        const withoutSeq = ({ seq, ...rest }, id) => {
            assert.ok(seq === undefined || seq === id, `seq ${seq}, entry ${id}`);
            return rest;
        };
        const on = await watcher.rec.waitFor('presence:online', { userId: 'json-user' });
        assert.deepEqual(withoutSeq(on.data, idOnline), { userId: 'json-user', socketId: SID, status: 'away' });
        const up = await watcher.rec.waitFor('presence:update', { userId: 'json-user' });
        assert.deepEqual(withoutSeq(up.data, idUpdate), { userId: 'json-user', status: 'busy', prevStatus: 'away', metadata: { team: 'a\tb' } });
    }));

    test('a record with lastSeen written out is read, and rewritten short', T, env.wrap(async () => {
        const d = await env.daemon();
        const watcher = await env.client(d, { userId: 'watcher' });
        const key = presenceKey(prefixOf('old-user'), 'u', 'old-user');
        // An offline user as an older release kept them: since 0, lastSeen written.
        assert.equal(await env.redis.command('SET', key, '0:1700000000500:0:0::\n', 'EX', 3600), '+OK');
        const offline = await watcher.queryOne('old-user');
        assert.equal(offline.online, false, JSON.stringify(offline));
        assert.equal(offline.lastSeen, 1700000000500, JSON.stringify(offline));
        // The user comes online: the function reads that record and writes it again; lastSeen now
        // equals since, so it is left out.
        const before = Date.now();
        await env.client(d, { userId: 'old-user' });
        const online = await watcher.queryOne('old-user');
        assert.equal(online.online, true, JSON.stringify(online));
        assert.ok(online.lastSeen >= before - 1000 && online.lastSeen <= Date.now() + 1000, JSON.stringify(online));
        const rec = await env.redis.command('GET', key);
        assert.match(rec, /^(\d+)::1:0::\n[A-Za-z0-9_-]{20}\t[A-Za-z0-9_-]{12}\n$/, `the record: ${JSON.stringify(rec)}`);
        assert.equal(Number(rec.split(':')[0]), online.lastSeen, 'since is the lastSeen queries answer');
    }));
});
