// presenced --conformance=engineio: every Engine.IO message is echoed back as it came, text or
// binary, over WebSocket and long-polling. (The official Engine.IO test suite covers the rest.)
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { startDaemon } from './lib/daemon.mjs';
import { ClientPool, http, pollingHandshake, openEngineWs, sleep } from './lib/client.mjs';

/** Polls cond() every 10 ms until it holds; rejects after ms. */
async function waitUntilTrue(cond, ms, what) {
    const end = Date.now() + ms;
    while (!cond()) {
        if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
        await sleep(10);
    }
}

const T = { timeout: 15000 };
const P = '/engine.io/';
const pool = new ClientPool();
let daemon;

before(async () => {
    daemon = await startDaemon({ mode: 'engineio' });
});
afterEach(() => pool.closeAll());
after(async () => {
    pool.closeAll();
    await daemon?.stop();
});

test('handshake values (path /engine.io/, ping 300/200)', T, async () => {
    await daemon.wrap(async () => {
        const { sid, handshake } = await pollingHandshake(daemon.url, P);
        assert.equal(typeof sid, 'string');
        assert.deepEqual(handshake.upgrades, ['websocket']);
        assert.equal(handshake.pingInterval, 300);
        assert.equal(handshake.pingTimeout, 200);
        assert.equal(handshake.maxPayload, 1000000);
    })();
});

test('WebSocket: text and binary messages are echoed unchanged', T, async () => {
    await daemon.wrap(async () => {
        const { raw } = await openEngineWs(pool, daemon.wsUrl, P);
        for (const text of ['hello', '', 'héllo ✓ 😀', 'x'.repeat(100000), '{"not":"parsed"}']) {
            raw.send('4' + text);
            assert.equal(await raw.next(), '4' + text);
        }
        for (const bytes of [Buffer.from([0, 1, 2, 255]), Buffer.alloc(0), randomBytes(100000)]) {
            raw.send(bytes, { binary: true });
            const back = await raw.next();
            assert.ok(Buffer.isBuffer(back), 'binary frame back');
            assert.deepEqual(back, bytes);
        }
        // Still open across several heartbeats (pings answered by the helper).
        const pings = raw.pings;
        await waitUntilTrue(() => raw.pings >= pings + 3, 5000, 'three more pings');
        raw.send('4after');
        assert.equal(await raw.next(), '4after');
    })();
});

/** GETs until `count` non-ping packets arrived; answers pings with a "3" POST. */
async function pollPackets(url, count) {
    const packets = [];
    while (packets.length < count) {
        const res = await http(url);
        assert.equal(res.status, 200, `poll: ${res.text}`);
        for (const p of res.text.split('\x1e')) {
            if (p === '2') {
                const pong = await http(url, { method: 'POST', body: '3', headers: { 'Content-Type': 'text/plain;charset=UTF-8' } });
                assert.equal(pong.status, 200);
            } else {
                packets.push(p);
            }
        }
    }
    return packets;
}

test('long-polling: text and binary (base64) messages are echoed unchanged', T, async () => {
    await daemon.wrap(async () => {
        const { sid } = await pollingHandshake(daemon.url, P);
        const url = `${daemon.url}${P}?EIO=4&transport=polling&sid=${sid}`;
        const big = randomBytes(3000);
        const sent = ['4hello', '4héllo ✓ 😀', 'bAQID/w==', '4', 'b' + big.toString('base64')];
        const res = await http(url, { method: 'POST', body: sent.join('\x1e'), headers: { 'Content-Type': 'text/plain;charset=UTF-8' } });
        assert.equal(res.status, 200);
        assert.equal(res.text, 'ok');
        const got = await pollPackets(url, sent.length);
        assert.deepEqual(got, sent);
        assert.deepEqual(Buffer.from(got[4].slice(1), 'base64'), big);
    })();
});

test('long-polling session upgraded to WebSocket keeps echoing', T, async () => {
    await daemon.wrap(async () => {
        const { sid } = await pollingHandshake(daemon.url, P);
        const raw = pool.raw(`${daemon.wsUrl}${P}?EIO=4&transport=websocket&sid=${sid}`);
        await raw.opened;
        raw.send('2probe');
        assert.equal(await raw.next(), '3probe');
        raw.send('5');
        raw.send('4upgraded');
        assert.equal(await raw.next(), '4upgraded');
        raw.send(Buffer.from([4, 2]), { binary: true });
        assert.deepEqual(await raw.next(), Buffer.from([4, 2]));
    })();
});
