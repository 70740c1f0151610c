// Chat ordering rules with a scripted transport: duplicates dropped, gaps
// filled by room:sync before later messages, resume after reconnect.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Chat } from '../src/chat.js';
import { Emitter } from '../src/emitter.js';
import { DEFAULT_OPTIONS } from '../src/options.js';

/** A stand-in for Realtime: server events are pushed by the test, requests answered from `store`. */
class FakeRealtime extends Emitter {
  constructor(store) {
    super();
    this.state = 'connected';
    this.store = store; // room id -> messages on the "server"
    this.handlers = new Map();
    this.requests = [];
  }
  handle(event, fn) { this.handlers.set(event, fn); }
  push(event, payload) { this.handlers.get(event)(payload); }
  async request(event, payload) {
    this.requests.push([event, payload]);
    await new Promise((r) => setTimeout(r, 5));
    const all = this.store.get(payload.room_id) || [];
    if (event === 'room:join') return { ok: true, room: { id: payload.room_id }, last_seq: all.length };
    if (event === 'room:sync') {
      const after = all.filter((m) => m.seq > payload.after_seq);
      return { ok: true, messages: after.slice(0, payload.limit), has_more: after.length > payload.limit };
    }
    throw new Error(`unexpected ${event}`);
  }
}

const msg = (seq, room = 'r1') => ({ id: `m${seq}`, room_id: room, seq, sender_id: 'u', body: `b${seq}`, client_id: `c${seq}`, created_at: '' });

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
