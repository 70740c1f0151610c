// A stand-in for Realtime in the chat unit tests: server events are pushed
// by the test, requests answered from `store` (room id -> messages on the
// "server"); delivery reports are collected in `reports`.
import { Emitter } from '../../src/emitter.js';

export class FakeRealtime extends Emitter {
  constructor(store) {
    super();
    this.state = 'connected';
    this.store = store;
    this.handlers = new Map();
    this.requests = [];
    this.reports = [];
  }
  handle(event, fn) { this.handlers.set(event, fn); }
  push(event, payload) { this.handlers.get(event)(payload); }
  async request(event, payload) {
    if (event !== 'delivery:report') this.requests.push([event, payload]);
    await new Promise((r) => setTimeout(r, 5));
    if (event === 'delivery:report') { this.reports.push(payload); return { ok: true }; }
    const all = this.store.get(payload.room_id) || [];
    if (event === 'room:join') return { ok: true, room: { id: payload.room_id }, last_seq: all.length };
    if (event === 'room:sync') {
      const after = all.filter((m) => m.seq > payload.after_seq);
      return { ok: true, messages: after.slice(0, payload.limit), has_more: after.length > payload.limit };
    }
    throw new Error(`unexpected ${event}`);
  }
}

export const msg = (seq, room = 'r1') => ({ id: `m${seq}`, room_id: room, seq, sender_id: 'u', body: `b${seq}`, client_id: `c${seq}`, created_at: '' });
