// Calls through a real coturn (started by tests/e2e/test_turn.py from the
// kit's config/turnserver.conf, with the node's TURN secret): two SDK
// clients in one Chromium page against a real server. TURN-only calls over
// UDP and TCP, credentials expiring mid-call, wrong and stale credentials
// (`turn_failed`), and the fallback order direct -> TURN -> server relay
// with the path reported in call:stats and the server's metrics.
import { after, afterEach, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { PASSWORD, startServer, uniqueEmail } from '../support/server.mjs';
import { openBrowser } from './support.mjs';

const TURN_PORT = process.env.SKILLSHARE_TEST_TURN_PORT;
const TURN_SECRET = process.env.SKILLSHARE_TEST_TURN_SECRET;
/** How long after its credentials expired the first call must still carry media. */
const AFTER_EXPIRY_S = 8;
/** Credentials the node hands out expire this soon, so a call outlives them. */
const TURN_TTL_S = 12;
/** The SDK falls back to the server's relay when ICE has not connected by then. */
const P2P_TIMEOUT_MS = 4_000;
const FLOW_WINDOW_MS = 2_000;

let server;
let user;

before(async () => {
  assert.ok(TURN_PORT && TURN_SECRET,
    'run through tests/e2e/test_turn.py, which starts coturn');
  server = await startServer({
    SKILLSHARE_TURN_URLS: `turn:127.0.0.1:${TURN_PORT}?transport=udp,turn:127.0.0.1:${TURN_PORT}?transport=tcp`,
    SKILLSHARE_TURN_SECRET: TURN_SECRET,
    SKILLSHARE_TURN_TTL: String(TURN_TTL_S),
    // the server relay (last fallback) contacts this host's private addresses
    SKILLSHARE_CALL_RELAY_ALLOW_PRIVATE: 'true',
  });
  user = await openBrowser('turn');
  const { page } = user;
  await page.goto(`${server.url}/static/app.css`); // same origin, no app running
  await page.addScriptTag({ url: '/static/skillshare-sdk.js' });
  await page.evaluate(pageHelpers);
  await page.evaluate(({ emails, password, p2pTimeoutMs }) => window.T.signIn(emails, password, { p2pTimeoutMs }),
    { emails: [uniqueEmail('turn-a'), uniqueEmail('turn-b')], password: PASSWORD, p2pTimeoutMs: P2P_TIMEOUT_MS });
});

afterEach(async () => {
  // A failed test must not leave its call up for the next one (users are busy in one call).
  await user?.page.evaluate(() => window.T?.cleanUp());
});

after(async () => {
  await user?.close();
  await server?.stop();
});

/** Runs in the page: two signed-in clients and what the tests do with them. */
function pageHelpers() {
  const { SkillShareClient } = window.SkillShare;
  const isTurn = (s) => [s.urls].flat().some((u) => /^turns?:/.test(u));
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const T = {
    a: null,
    b: null,
    async signIn(emails, password, options) {
      const [a, b] = emails.map(() => new SkillShareClient({ refreshMode: 'body', ...options }));
      await a.auth.register({ email: emails[0], password, display_name: 'Turn A' });
      await b.auth.register({ email: emails[1], password, display_name: 'Turn B' });
      await Promise.all([a.connect(), b.connect()]);
      Object.assign(T, { a, b });
    },
    /** TURN entries reduced to the URLs with `?transport=<transport>` (a network blocking the other). */
    only(transport) {
      return (call) => {
        call.iceServers = call.iceServers.map((s) => (isTurn(s)
          ? { ...s, urls: [s.urls].flat().filter((u) => u.endsWith(`transport=${transport}`)) } : s));
      };
    },
    /** TURN credentials replaced: `wrong` password, or a `stale` username signed with the secret. */
    credential(kind, secret) {
      return async (call) => {
        const turn = call.iceServers.find(isTurn);
        const userId = turn.username.split(':')[1];
        if (kind === 'wrong') {
          turn.credential = 'd3Jvbmctc2VjcmV0LXdyb25nLXNlY3JldA==';
          return;
        }
        turn.username = `${Math.floor(Date.now() / 1000) - 60}:${userId}`;
        const key = await crypto.subtle.importKey('raw', new TextEncoder().encode(secret),
          { name: 'HMAC', hash: 'SHA-1' }, false, ['sign']);
        const mac = await crypto.subtle.sign('HMAC', key, new TextEncoder().encode(turn.username));
        turn.credential = btoa(String.fromCharCode(...new Uint8Array(mac)));
      };
    },
    /** A network where the peers' direct (host/srflx) candidates cannot reach each other. */
    blockDirect(on) {
      class NoDirect extends RTCPeerConnection {
        addIceCandidate(c) {
          return c && c.candidate && !/ typ relay( |$)/.test(c.candidate) ? Promise.resolve() : super.addIceCandidate(c);
        }
      }
      for (const c of [T.a, T.b]) c.calls.RTCPeerConnection = on ? NoDirect : RTCPeerConnection;
    },
    /** A calls B; `edit*` change a call's ICE servers before its media starts. */
    async call({ policy = 'all', editA, editB } = {}) {
      const media = () => navigator.mediaDevices.getUserMedia({ video: true, audio: true });
      const incoming = new Promise((r) => T.b.once('call', r));
      const callA = await T.a.calls.invite(T.b.user.id, { localStream: await media(), iceTransportPolicy: policy });
      await editA?.(callA);
      const callB = await incoming;
      await editB?.(callB);
      const outcome = (c) => new Promise((resolve) => {
        c.once('connected', (ev) => resolve({ connected: ev }));
        c.once('error', (err) => resolve({ error: { code: err.code, message: err.message, details: err.details } }));
        c.once('ended', (ev) => resolve({ ended: ev }));
      });
      const outcomes = Promise.all([callA, callB].map(outcome));
      T.ended = [null, null];
      [callA, callB].forEach((c, i) => c.once('ended', (ev) => { T.ended[i] = ev; }));
      await callB.accept({ localStream: await media(), iceTransportPolicy: policy });
      T.current = [callA, callB];
      for (const c of T.current) {
        // Chromium decodes remote video only while something renders it.
        const v = document.createElement('video');
        v.muted = true;
        v.srcObject = c.remoteStream;
        document.body.append(v);
        c.once('ended', () => v.remove());
        c.on('remotestream', (s) => { v.srcObject = s; });
      }
      return { outcomes: await outcomes, expiry: [callA, callB].map((c) => T.expiry(c.iceServers)) };
    },
    expiry(servers) {
      const turn = (servers || []).find(isTurn);
      return turn ? Number(turn.username.split(':')[0]) : null;
    },
    async framesDecoded(c) {
      let n = 0;
      (await c.getStats()).forEach((s) => { if (s.type === 'inbound-rtp' && s.kind === 'video') n += s.framesDecoded || 0; });
      return n;
    },
    /** Frames decoded on each side at the start and end of `ms` (once the first frames arrived). */
    async flow(ms, firstFrameWaitMs = 15_000) {
      const deadline = Date.now() + firstFrameWaitMs;
      let before = await Promise.all(T.current.map(T.framesDecoded));
      while (before.some((n) => n === 0) && Date.now() < deadline) {
        await sleep(200);
        before = await Promise.all(T.current.map(T.framesDecoded));
      }
      await sleep(ms);
      const after = await Promise.all(T.current.map(T.framesDecoded));
      return { before, after };
    },
    /** The selected candidate pair of each side's peer connection. */
    async pairs() {
      return Promise.all(T.current.map(async (c) => {
        const stats = await c.getStats();
        let pair = null;
        stats.forEach((s) => { if (s.type === 'transport' && s.selectedCandidatePairId) pair = stats.get(s.selectedCandidatePairId); });
        if (!pair) return null;
        const local = stats.get(pair.localCandidateId);
        const remote = stats.get(pair.remoteCandidateId);
        return {
          local: { type: local.candidateType, relayProtocol: local.relayProtocol ?? null },
          remote: { type: remote.candidateType },
        };
      }));
    },
    async cleanUp() {
      T.blockDirect(false);
      const open = (T.current || []).filter((c) => c.state !== 'ended');
      await Promise.all(open.map((c) => c.end().catch(() => {})));
      T.current = [];
    },
    async hangUp() {
      const [callA, callB] = T.current;
      const ended = new Promise((r) => (callB.state === 'ended' ? r() : callB.once('ended', r)));
      await callA.end();
      await ended;
    },
    sleep,
  };
  window.T = T;
}

const run = (fn, arg) => user.page.evaluate(fn, arg);

function assertFlowsBothWays(flow, what) {
  for (const [i, side] of ['caller', 'callee'].entries()) {
    assert.ok(flow.before[i] > 0 && flow.after[i] > flow.before[i],
      `${what}: the ${side} decodes video ${flow.before[i]} -> ${flow.after[i]}`);
  }
}

function assertTurnPairs(pairs, relayProtocol) {
  for (const pair of pairs) {
    assert.deepEqual(pair, { local: { type: 'relay', relayProtocol }, remote: { type: 'relay' } });
  }
}

async function metrics() {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  const value = (name, path) => {
    const m = text.match(new RegExp(`^${name}\\{path="${path}"\\} ([0-9.e+]+)$`, 'm'));
    return m ? Number(m[1]) : 0;
  };
  const out = {};
  for (const path of ['p2p', 'turn', 'relay']) {
    out[path] = { connected: value('skillshare_calls_connected_total', path), failed: value('skillshare_calls_failed_total', path) };
  }
  return out;
}

async function turnOnlyCall(transport) {
  const result = await run(async (t) => T.call({ policy: 'relay', editA: T.only(t), editB: T.only(t) }), transport);
  assert.deepEqual(result.outcomes.map((o) => o.connected?.path), ['turn', 'turn'], JSON.stringify(result.outcomes));
  const flow = await run((ms) => T.flow(ms), FLOW_WINDOW_MS);
  const pairs = await run(() => T.pairs());
  await run(() => T.hangUp());
  assertFlowsBothWays(flow, `TURN over ${transport}`);
  assertTurnPairs(pairs, transport);
}

test('a TURN-only call over UDP carries video both ways through coturn', { timeout: 60_000 }, async () => {
  await turnOnlyCall('udp');
});

test('a TURN-only call over TCP carries video both ways through coturn', { timeout: 60_000 }, async () => {
  await turnOnlyCall('tcp');
});

test('credentials expiring mid-call keep the media; the next call gets fresh ones', { timeout: 120_000 }, async () => {
  const first = await run(() => T.call({ policy: 'relay', editA: T.only('udp'), editB: T.only('udp') }));
  assert.deepEqual(first.outcomes.map((o) => o.connected?.path), ['turn', 'turn'], JSON.stringify(first.outcomes));
  const expiry = Math.max(...first.expiry);
  // Chromium's allocations last coturn's default 600 s (it asks for no
  // lifetime), so this shows the media outliving the credentials; periodic
  // refreshes with expired credentials are tested at protocol level
  // (tests/e2e/test_turn.py), and the hang-up's REFRESH is in coturn's log.
  const waitMs = (expiry + AFTER_EXPIRY_S) * 1000 - Date.now();
  assert.ok(Date.now() < expiry * 1000, `the call connected before its credentials expired (at ${expiry})`);
  await run((ms) => T.sleep(ms), waitMs);
  const late = await run((ms) => T.flow(ms), FLOW_WINDOW_MS);
  const latePairs = await run(() => T.pairs());
  await run(() => T.hangUp());
  assertFlowsBothWays(late, 'after the credentials expired');
  assertTurnPairs(latePairs, 'udp');

  const fresh = await run(async () => T.expiry((await T.a.calls.api.iceServers()).ice_servers));
  const now = Date.now() / 1000;
  assert.ok(fresh > now && fresh > expiry, `GET /calls/ice-servers gives fresh credentials (${fresh} at ${now})`);
  const second = await run(() => T.call({ policy: 'relay', editA: T.only('udp'), editB: T.only('udp') }));
  assert.deepEqual(second.outcomes.map((o) => o.connected?.path), ['turn', 'turn'], JSON.stringify(second.outcomes));
  assert.ok(second.expiry.every((e) => e > now), `the new call's credentials ${second.expiry} are fresh`);
  const flow = await run((ms) => T.flow(ms), FLOW_WINDOW_MS);
  await run(() => T.hangUp());
  assertFlowsBothWays(flow, 'the call after expiry');
});

for (const kind of ['wrong', 'stale']) {
  test(`a ${kind} TURN credential fails the TURN-only call with turn_failed`, { timeout: 60_000 }, async () => {
    const before = await metrics();
    const result = await run(async ({ k, secret }) => {
      const out = await T.call({ policy: 'relay', editA: T.credential(k, secret) });
      const [callA] = T.current;
      // `error` comes first, then the caller hangs up with that reason.
      if (callA.state !== 'ended') await new Promise((r) => callA.once('ended', r));
      return { ...out, endedA: T.ended[0], states: T.current.map((c) => c.state) };
    }, { k: kind, secret: TURN_SECRET });
    const [a, b] = result.outcomes;
    assert.equal(a.error?.code, 'turn_failed', JSON.stringify(a));
    assert.match(a.error.message, /^No TURN relay candidate \(turn:127\.0\.0\.1:\d+\?transport=(udp|tcp): 401 /);
    assert.ok(a.error.details.errors.length >= 1 && a.error.details.errors.every((e) => e.error_code === 401),
      JSON.stringify(a.error.details));
    assert.deepEqual(b, { ended: { reason: 'turn_failed', by: await run(() => T.a.user.id) } });
    assert.equal(result.endedA.reason, 'turn_failed');
    assert.deepEqual(result.states, ['ended', 'ended']);
    const after = await metrics();
    assert.equal(after.turn.failed - before.turn.failed, 1, 'the caller reported the failed TURN path');
  });
}

test('fallback order: direct, then TURN, then the server relay; each path in call:stats and metrics', { timeout: 120_000 }, async () => {
  const before = await metrics();
  const paths = [];
  const direct = await run(() => T.call());
  paths.push(direct.outcomes.map((o) => o.connected?.path));
  const directPairs = await run(() => T.pairs());
  await run(() => T.hangUp());

  await run(() => T.blockDirect(true));
  try {
    const turn = await run(() => T.call());
    paths.push(turn.outcomes.map((o) => o.connected?.path));
    const turnPairs = await run(() => T.pairs());
    const turnFlow = await run((ms) => T.flow(ms), FLOW_WINDOW_MS);
    await run(() => T.hangUp());
    assertTurnPairs(turnPairs, 'udp');
    assertFlowsBothWays(turnFlow, 'the TURN fallback');

    const relay = await run(async (secret) => T.call({
      editA: T.credential('wrong', secret), editB: T.credential('wrong', secret),
    }), TURN_SECRET);
    paths.push(relay.outcomes.map((o) => o.connected?.path));
    const relayFlow = await run((ms) => T.flow(ms), FLOW_WINDOW_MS);
    await run(() => T.hangUp());
    assertFlowsBothWays(relayFlow, 'the server relay fallback');
  } finally {
    await run(() => T.blockDirect(false));
  }
  assert.deepEqual(paths, [['p2p', 'p2p'], ['turn', 'turn'], ['relay', 'relay']]);
  for (const pair of directPairs) assert.equal(pair.local.type, 'host');
  const after = await metrics();
  for (const path of ['p2p', 'turn', 'relay']) {
    assert.equal(after[path].connected - before[path].connected, 2, `call:stats connected ${path} counted for both`);
    assert.equal(after[path].failed - before[path].failed, 0, `no failed ${path}`);
  }
});
