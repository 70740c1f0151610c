// Chat ordering rules with a scripted transport: duplicates dropped, gaps
// filled by room:sync before later messages, resume after reconnect.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Chat } from '../src/chat.js';
import { DEFAULT_OPTIONS } from '../src/options.js';
import { FakeRealtime, msg } from './support/fake-realtime.mjs';


test('duplicates are dropped and a gap is filled in order', async () => {
  const server = new Map([['r1', [1, 2, 3, 4, 5].map((s) => msg(s))]]);
  const rt = new FakeRealtime(server);
  const chat = new Chat({ options: DEFAULT_OPTIONS, realtime: rt });
  const got = [];
  chat.on('message', (m) => got.push(m.seq));
  server.set('r1', server.get('r1').slice(0, 1));
  await chat.join('r1'); // last_seq 1
  server.set('r1', [1, 2, 3, 4, 5].map((s) => msg(s)));
  rt.push('message', msg(2));
  rt.push('message', msg(2)); // duplicate
  rt.push('message', msg(5)); // gap: 3, 4 missing
  rt.push('message', msg(4)); // arrives while the sync runs
  await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(got, [2, 3, 4, 5]);
  assert.equal(chat.lastSeq('r1'), 5);
});

test('after a reconnect every tracked room is re-joined and synced, paging while has_more', async () => {
  const server = new Map([['r1', [msg(1)]]]);
  const rt = new FakeRealtime(server);
  const chat = new Chat({ options: { ...DEFAULT_OPTIONS, syncPageSize: 2 }, realtime: rt });
  const got = [];
  chat.on('message', (m) => got.push(m.seq));
  await chat.join('r1');
  server.set('r1', [1, 2, 3, 4, 5, 6, 7].map((s) => msg(s)));
  const synced = new Promise((r) => chat.once('synced', r));
  rt.emit('connected', { resumed: true });
  assert.deepEqual(await synced, { room_id: 'r1', count: 6 });
  assert.deepEqual(got, [2, 3, 4, 5, 6, 7]);
  const events = rt.requests.map(([e]) => e);
  assert.deepEqual(events, ['room:join', 'room:join', 'room:sync', 'room:sync', 'room:sync']);
});
