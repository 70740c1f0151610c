// The call success matrix: two SDK clients in one Chromium page (fake camera
// and microphone) against a real server place calls in five situations and
// count how many succeed — media flowing both ways within 10 s of the accept,
// still flowing after the disruption, and the call not ended by anything but
// the hang-up:
//   direct        peer-to-peer
//   relay         both sides force the server's media relay
//   socket_drop   the caller's socket is dropped mid-call (it reconnects
//                 within the server's grace period; the callee sees
//                 "reconnecting…" and then the peer back)
//   ice_setup     every ICE candidate is dropped before addIceCandidate:
//                 peer-to-peer cannot connect, the call falls back to the relay
//   ice_midcall   the caller's connection reports ICE "failed" mid-call (the
//                 state is injected; the ICE restart and renegotiation
//                 through call:signal that follow are real)
// CALL_MATRIX_RUNS (default 1) repeats the matrix; the result (per scenario
// and overall) is printed and written to test-results/call-matrix.json.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PASSWORD, startServer, uniqueEmail } from '../support/server.mjs';
import { ARTIFACTS, openBrowser } from './support.mjs';

const RUNS = Number(process.env.CALL_MATRIX_RUNS || 1);
const SCENARIOS = ['direct', 'relay', 'socket_drop', 'ice_setup', 'ice_midcall'];
const TARGET = 0.95;

let server;
let user;
before(async () => {
  server = await startServer({
    SKILLSHARE_CALL_RELAY_ALLOW_PRIVATE: 'true', // the page's candidates are this host's private addresses
    SKILLSHARE_CALL_INVITE_LIMIT: '1000/minute',
    SKILLSHARE_CALL_STATS_LIMIT: '1000/minute',
  });
  user = await openBrowser('matrix');
});
after(async () => {
  await user?.close();
  await server?.stop();
});

async function metric(name) {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  let total = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith(`${name} `) || line.startsWith(`${name}{`)) total += Number(line.split(' ').pop());
  }
  return total;
}

test(`call matrix (${RUNS} run(s) of ${SCENARIOS.length} scenarios) succeeds at least ${TARGET * 100}%`, { timeout: 120_000 * RUNS + 60_000 }, async () => {
  const { page } = user;
  await page.goto(`${server.url}/static/app.css`); // same origin, no app running
  await page.addScriptTag({ url: '/static/skillshare-sdk.js' });
  await page.evaluate(async ({ emails, password }) => {
    const { SkillShareClient } = window.SkillShare;
    const options = { refreshMode: 'body', p2pTimeoutMs: 3_000, iceRestartTimeoutMs: 8_000, callStatsIntervalMs: 1_000 };
    const a = new SkillShareClient(options);
    const b = new SkillShareClient(options);
    await a.auth.register({ email: emails[0], password, display_name: 'Caller' });
    await b.auth.register({ email: emails[1], password, display_name: 'Callee' });
    await Promise.all([a.connect(), b.connect()]);
    const RealPC = window.RTCPeerConnection;
    /** A peer connection whose failures the test can inject. */
    class InjectablePC extends RealPC {
      constructor(...args) {
        super(...args);
        this.dropCandidates = window.__dropCandidates === true;
        this.injectedFailure = false;
      }
      addIceCandidate(candidate) {
        return this.dropCandidates ? Promise.resolve() : super.addIceCandidate(candidate);
      }
      get iceConnectionState() { return this.injectedFailure ? 'failed' : super.iceConnectionState; }
      get connectionState() { return this.injectedFailure ? 'failed' : super.connectionState; }
      injectFailure() {
        this.injectedFailure = true;
        this.dispatchEvent(new Event('iceconnectionstatechange'));
        this.dispatchEvent(new Event('connectionstatechange'));
      }
      createOffer(opts) {
        if (opts?.iceRestart) this.injectedFailure = false; // the "network" is back for the restart
        return super.createOffer(opts);
      }
    }
    a.calls.RTCPeerConnection = InjectablePC;
    b.calls.RTCPeerConnection = InjectablePC;
    const media = () => navigator.mediaDevices.getUserMedia({ video: true, audio: true });
    const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
    const frames = async (c) => {
      let n = 0;
      (await c.getStats()).forEach((s) => { if (s.type === 'inbound-rtp' && s.kind === 'video') n += s.framesDecoded || 0; });
      return n;
    };
    const within = (promise, ms, what) => Promise.race([
      promise, sleep(ms).then(() => { throw new Error(`${what} not within ${ms} ms`); }),
    ]);
    const render = (c) => {
      const v = document.createElement('video');
      v.muted = true;
      v.srcObject = c.remoteStream;
      document.body.append(v);
      v.play().catch(() => {});
      return v;
    };
    /** Media flows both ways: decoded frames grow on each side. */
    async function flowing(calls) {
      for (let i = 0; i < 40; i += 1) {
        const before = await Promise.all(calls.map(frames));
        await sleep(500);
        const afterwards = await Promise.all(calls.map(frames));
        if (afterwards.every((n, k) => n > before[k])) return true;
      }
      return false;
    }

    window.__placeCall = async (scenario) => {
      const events = [];
      window.__dropCandidates = scenario === 'ice_setup';
      const force = scenario === 'relay';
      const incoming = new Promise((r) => b.once('call', r));
      const callA = await a.calls.invite(b.user.id, { localStream: await media(), forceRelay: force });
      const callB = await incoming;
      const unexpectedEnd = [];
      for (const [name, c] of [['caller', callA], ['callee', callB]]) {
        c.on('ended', (e) => unexpectedEnd.push(`${name}: ${e.reason}`));
        for (const ev of ['reconnecting', 'recovered', 'peer']) c.on(ev, (e) => events.push(`${name} ${ev} ${JSON.stringify(e)}`));
      }
      const connected = Promise.all([callA, callB].map((c) => new Promise((r) => c.once('connected', r))));
      const acceptedAt = performance.now();
      await callB.accept({ localStream: await media(), forceRelay: force });
      const paths = (await within(connected, 10_000, 'media connected')).map((p) => p.path);
      const setupMs = Math.round(performance.now() - acceptedAt);
      if ((scenario === 'relay' || scenario === 'ice_setup') && paths.some((p) => p !== 'relay')) {
        throw new Error(`paths ${paths} (expected the relay)`);
      }
      const videos = [callA, callB].map(render);
      if (!(await flowing([callA, callB]))) throw new Error('no media after set-up');
      if (scenario === 'socket_drop') {
        const back = new Promise((r) => callB.on('peer', (e) => { if (e.state === 'connected') r(); }));
        a.realtime.socket.io.engine.close();
        await within(back, 15_000, 'the callee seeing the caller back');
        if (!events.some((e) => e.startsWith('callee peer {"state":"reconnecting"}'))) throw new Error('no "reconnecting…" on the callee');
      } else if (scenario === 'ice_midcall') {
        const recovered = new Promise((r) => callA.once('recovered', r));
        callA.peerConnection.injectFailure();
        if (callA.state !== 'reconnecting') throw new Error(`caller state ${callA.state} after the ICE failure`);
        await within(recovered, 15_000, 'recovery after the ICE failure');
      }
      if (!(await flowing([callA, callB]))) throw new Error('no media after the disruption');
      if (unexpectedEnd.length) throw new Error(`ended early: ${unexpectedEnd.join(', ')}`);
      const endedB = new Promise((r) => callB.once('ended', r));
      await callA.end();
      await within(endedB, 5_000, 'call:ended at the callee');
      for (const v of videos) v.remove();
      return { paths, setupMs, events };
    };
  }, { emails: [uniqueEmail('matrix-a'), uniqueEmail('matrix-b')], password: PASSWORD });

  const results = [];
  for (let run = 0; run < RUNS; run += 1) {
    for (const scenario of SCENARIOS) {
      try {
        const detail = await page.evaluate((s) => window.__placeCall(s), scenario);
        results.push({ run, scenario, ok: true, ...detail });
      } catch (err) {
        results.push({ run, scenario, ok: false, error: String(err.message || err).split('\n')[0] });
        // leave no call behind for the next one
        await page.evaluate(async () => { await new Promise((r) => setTimeout(r, 1_000)); }).catch(() => {});
      }
    }
  }
  const ok = results.filter((r) => r.ok).length;
  const perScenario = Object.fromEntries(SCENARIOS.map((s) => {
    const mine = results.filter((r) => r.scenario === s);
    return [s, `${mine.filter((r) => r.ok).length}/${mine.length}`];
  }));
  const summary = {
    runs: RUNS, calls: results.length, succeeded: ok, success_rate: ok / results.length, per_scenario: perScenario,
    server: {
      outcomes_success: await metric('skillshare_call_outcomes_total{outcome="success"}'),
      media_reports: await metric('skillshare_call_media_reports_total'),
      media_recovered: await metric('skillshare_call_reconnects_total{kind="media",outcome="recovered"}'),
      socket_resumed: await metric('skillshare_call_reconnects_total{kind="socket",outcome="resumed"}'),
    },
    failures: results.filter((r) => !r.ok),
    paths: results.filter((r) => r.ok).map((r) => `${r.scenario}:${r.paths.join('/')}:${r.setupMs}ms`),
  };
  mkdirSync(ARTIFACTS, { recursive: true });
  writeFileSync(join(ARTIFACTS, '..', 'call-matrix.json'), JSON.stringify(summary, null, 2));
  console.log(`call matrix: ${ok}/${results.length} calls succeeded (${(100 * ok / results.length).toFixed(1)}%) ${JSON.stringify(perScenario)}`);
  console.log(JSON.stringify(summary));
  assert.ok(ok / results.length >= TARGET, `success rate ${ok}/${results.length}: ${JSON.stringify(summary.failures)}`);
  assert.ok(summary.server.media_reports > 0, 'periodic call:stats reached the server');
  assert.ok(summary.server.socket_resumed >= 1 || perScenario.socket_drop.startsWith('0/'), 'a socket resumed its call');
});
