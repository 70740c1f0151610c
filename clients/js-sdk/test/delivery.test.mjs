// Delivery reports (delivery:report): live messages counted, seqs fetched by
// sync after a hole reported by room, messages synced after a reconnect
// counted, holes no sync filled reported as unrecovered; sampled, opt-out.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Chat } from '../src/chat.js';
import { DeliveryReporter } from '../src/delivery.js';
import { DEFAULT_OPTIONS } from '../src/options.js';
import { FakeRealtime, msg } from './support/fake-realtime.mjs';

const reporting = { ...DEFAULT_OPTIONS, deliveryReportSampleRate: 1, deliveryReportIntervalMs: 0 };
const settle = () => new Promise((r) => setTimeout(r, 60));

test('live messages, a filled hole and a reconnect catch-up are reported', async () => {
  const server = new Map([['r1', [msg(1)]]]);
  const rt = new FakeRealtime(server);
  const chat = new Chat({ options: reporting, realtime: rt });
  await chat.join('r1'); // last_seq 1
  server.set('r1', [1, 2, 3, 4, 5].map((s) => msg(s)));
  rt.push('message', msg(2)); // live
  rt.push('message', msg(5)); // live, after a hole: 3 and 4 come by sync
  await settle();
  server.set('r1', [1, 2, 3, 4, 5, 6, 7].map((s) => msg(s)));
  rt.emit('connected', { resumed: true }); // 6 and 7 were sent while we were away
  await settle();
  await chat.delivery.flush();
  assert.deepEqual(rt.reports, [{ live: 2, after_reconnect: 2, gaps: [{ room_id: 'r1', seqs: [3, 4], unrecovered: [] }] }]);
  await chat.delivery.flush(); // nothing new: nothing sent
  assert.equal(rt.reports.length, 1);
});

test('a hole no sync fills is reported as unrecovered', async () => {
  const server = new Map([['r1', [msg(1)]]]);
  const rt = new FakeRealtime(server);
  const chat = new Chat({ options: reporting, realtime: rt });
  await chat.join('r1');
  server.set('r1', [msg(1), msg(4)]); // 2 and 3 are not there to sync
  rt.push('message', msg(4));
  await settle();
  await chat.delivery.flush();
  assert.deepEqual(rt.reports[0].gaps, [{ room_id: 'r1', seqs: [], unrecovered: [2, 3] }]);
});

test('reports are sampled and can be turned off', async () => {
  const rt = new FakeRealtime(new Map());
  const off = new DeliveryReporter({ options: { ...reporting, deliveryReports: false }, realtime: rt });
  const unsampled = new DeliveryReporter({ options: { ...reporting, deliveryReportSampleRate: 0.1 }, realtime: rt, random: () => 0.5 });
  const sampled = new DeliveryReporter({ options: { ...reporting, deliveryReportSampleRate: 0.1 }, realtime: rt, random: () => 0.05 });
  for (const r of [off, unsampled, sampled]) {
    r.live();
    await r.flush();
  }
  assert.deepEqual([off.enabled, unsampled.enabled, sampled.enabled], [false, false, true]);
  assert.deepEqual(rt.reports, [{ live: 1, after_reconnect: 0, gaps: [] }]);
  assert.equal(DEFAULT_OPTIONS.deliveryReports, true);
});
