// A call through the server's media relay (call:relay): two SDK clients in
// one Chromium page against a real server, both forcing the relay path.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { PASSWORD, startServer, uniqueEmail } from '../support/server.mjs';
import { openBrowser } from './support.mjs';

let server;
let user;
before(async () => {
  // the page's candidates are this host's addresses, in private ranges here
  server = await startServer({ SKILLSHARE_CALL_RELAY_ALLOW_PRIVATE: 'true' });
  user = await openBrowser('relay');
});
after(async () => {
  await user?.close();
  await server?.stop();
});

test('a relayed call carries video both ways and reports path "relay"', { timeout: 90_000 }, async () => {
  const { page } = user;
  await page.goto(`${server.url}/static/app.css`); // same origin, no app running
  await page.addScriptTag({ url: '/static/skillshare-sdk.js' });
  const result = await page.evaluate(async ({ emails, password }) => {
    const { SkillShareClient } = window.SkillShare;
    const a = new SkillShareClient({ refreshMode: 'body' });
    const b = new SkillShareClient({ refreshMode: 'body' });
    await a.auth.register({ email: emails[0], password, display_name: 'Caller' });
    await b.auth.register({ email: emails[1], password, display_name: 'Callee' });
    await Promise.all([a.connect(), b.connect()]);
    const media = () => navigator.mediaDevices.getUserMedia({ video: true, audio: true });
    const incoming = new Promise((r) => b.once('call', r));
    const callA = await a.calls.invite(b.user.id, { localStream: await media(), forceRelay: true });
    const callB = await incoming;
    const connected = Promise.all([callA, callB].map((c) => new Promise((r) => c.once('connected', r))));
    await callB.accept({ localStream: await media(), forceRelay: true });
    const paths = await connected;
    const videos = [callA, callB].map((c) => {
      const v = document.createElement('video');
      v.muted = true;
      v.srcObject = c.remoteStream;
      document.body.append(v);
      return v;
    });
    const frames = async (c) => {
      let n = 0;
      (await c.getStats()).forEach((s) => { if (s.type === 'inbound-rtp' && s.kind === 'video') n += s.framesDecoded || 0; });
      return n;
    };
    await new Promise((r) => setTimeout(r, 2500));
    const f1 = [await frames(callA), await frames(callB)];
    await new Promise((r) => setTimeout(r, 1500));
    const f2 = [await frames(callA), await frames(callB)];
    const widths = videos.map((v) => v.videoWidth);
    await callA.end();
    return { paths, f1, f2, widths };
  }, { emails: [uniqueEmail('caller'), uniqueEmail('callee')], password: PASSWORD });
  assert.deepEqual(result.paths.map((p) => p.path), ['relay', 'relay']);
  assert.ok(result.f2[0] > result.f1[0], `caller decodes relayed frames ${result.f1[0]} -> ${result.f2[0]}`);
  assert.ok(result.f2[1] > result.f1[1], `callee decodes relayed frames ${result.f1[1]} -> ${result.f2[1]}`);
  assert.ok(result.widths.every((w) => w > 0), `video sizes ${result.widths}`);
});
