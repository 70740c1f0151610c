// The SDK's Call in Chromium without the server's call signalling: two Calls
// in one page whose call:* events are routed by an in-page stand-in for the
// server. Checks offer/answer/candidate handling, the connected event,
// call:stats, and that remote video really decodes frames.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from '../support/server.mjs';
import { openBrowser } from './support.mjs';

let server;
let user;
before(async () => {
  server = await startServer();
  user = await openBrowser('loopback');
});
after(async () => {
  await user?.close();
  await server?.stop();
});

test('two SDK Calls connect peer-to-peer and decode each other\'s video', { timeout: 60_000 }, async () => {
  const { page } = user;
  await page.goto(`${server.url}/`);
  const result = await page.evaluate(async () => {
    const { Call, ApiError } = window.SkillShare;
    const sent = [];
    const stats = [];
    /** A fake manager whose realtime routes call:* emits to the other Call. */
    function manager(self) {
      return {
        options: { p2pTimeoutMs: 0, relayFallback: false },
        RTCPeerConnection: window.RTCPeerConnection,
        api: { iceServers: async () => ({ ice_servers: [] }) },
        _forget() {},
        rt: {
          emit() {},
          async request(event, payload) {
            sent.push(event);
            const peer = self.peer;
            if (event === 'call:accept') setTimeout(() => peer._onAccepted({ call_id: payload.call_id, by: 'b' }), 0);
            else if (event === 'call:signal') setTimeout(() => peer._onSignal({ call_id: payload.call_id, from: self.id, data: payload.data }), 0);
            else if (event === 'call:stats') stats.push(payload);
            else if (event === 'call:end') setTimeout(() => peer._onEnded({ by: self.id }, 'ended'), 0);
            else if (event !== 'call:reject') throw new ApiError('bad_request', event);
            return { ok: true };
          },
        },
      };
    }
    const sa = {};
    const sb = {};
    const streamA = await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
    const streamB = await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
    const a = new Call({ manager: manager(sa), id: 'c1', peerId: 'b', direction: 'outgoing', media: { audio: true, video: true }, iceServers: [] });
    const b = new Call({ manager: manager(sb), id: 'c1', peerId: 'a', direction: 'incoming', media: { audio: true, video: true } });
    Object.assign(sa, { id: 'a', peer: b });
    Object.assign(sb, { id: 'b', peer: a });
    a.setLocalStream(streamA);
    const connected = Promise.all([a, b].map((c) => new Promise((r) => c.once('connected', r))));
    await b.accept({ localStream: streamB });
    const [ca, cb] = await connected;
    // Chromium decodes remote video only while something renders it.
    const videos = [a, b].map((call) => {
      const v = document.createElement('video');
      v.muted = true;
      v.srcObject = call.remoteStream;
      document.body.append(v);
      return v;
    });
    await Promise.all(videos.map((v) => v.play()));
    const video = videos[1];
    const frames = async (call) => {
      let n = 0;
      (await call.getStats()).forEach((s) => { if (s.type === 'inbound-rtp' && s.kind === 'video') n += s.framesDecoded || 0; });
      return n;
    };
    const f1 = [await frames(a), await frames(b)];
    await new Promise((r) => setTimeout(r, 1500));
    const f2 = [await frames(a), await frames(b)];
    const width = video.videoWidth;
    const ended = new Promise((r) => b.once('ended', r));
    await a.end();
    const endedB = await ended;
    return { ca, cb, f1, f2, width, stats, sent, states: [a.state, b.state], endedB };
  });
  assert.equal(result.ca.path, 'p2p');
  assert.equal(result.cb.path, 'p2p');
  assert.ok(result.f2[0] > result.f1[0], `caller decodes frames ${result.f1[0]} -> ${result.f2[0]}`);
  assert.ok(result.f2[1] > result.f1[1], `callee decodes frames ${result.f1[1]} -> ${result.f2[1]}`);
  assert.ok(result.width > 0, 'remote video has a size');
  assert.equal(result.stats.length, 2);
  for (const s of result.stats) {
    assert.equal(s.connected, true);
    assert.equal(s.path, 'p2p');
    assert.ok(Number.isInteger(s.setup_ms) && s.setup_ms >= 0);
  }
  assert.ok(result.sent.includes('call:signal'));
  assert.deepEqual(result.states, ['ended', 'ended']);
  assert.equal(result.endedB.by, 'a');
});
