/**
 * Chat over the realtime connection: idempotent sends with automatic retry,
 * per-room `seq` tracking and `room:sync` on reconnect, so a listener sees
 * every message of a room exactly once, in `seq` order.
 * @module chat
 */
import { ApiError } from './errors.js';
import { Emitter } from './emitter.js';
import { DeliveryReporter } from './delivery.js';

/**
 * @typedef {object} Message
 * @property {string} id
 * @property {string} room_id
 * @property {number} seq
 * @property {string} sender_id
 * @property {string} body
 * @property {string} client_id
 * @property {string} created_at
 * @property {boolean} deleted  a tombstone: the sender's account was purged (body "", sender_id the deleted-user id)
 */

/**
 * @typedef {object} ChatEvents
 * @property {Message} message            each message exactly once per room, in seq order (own ones too, once acked)
 * @property {{room_id: string, user_id: string, typing: boolean}} typing
 * @property {{room_id: string, user_id: string, seq: number}} read
 * @property {{room_id: string, count: number}} synced  after a reconnect catch-up of a room
 * @property {{room_id: string, user_id: string}} member_left  someone left a group room
 * @property {{room_id: string, user_ids: string[], by: string}} member_added  people were added to a group room
 */

/** @returns {string} */
function uuid() {
  if (globalThis.crypto?.randomUUID) return globalThis.crypto.randomUUID();
  const b = globalThis.crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** Ack errors after which resending the same message cannot succeed. */
const PERMANENT_SEND_ERRORS = new Set([
  'validation_error', 'bad_request', 'forbidden', 'not_found', 'payload_too_large', 'unauthorized',
  'token_revoked', 'email_not_verified', 'blocked',
]);

/** @extends {Emitter<ChatEvents>} */
export class Chat extends Emitter {
  /**
   * @param {{options: import('./options.js').ClientOptions, realtime: import('./realtime.js').Realtime}} deps
   */
  constructor({ options, realtime }) {
    super();
    this._options = options;
    this._rt = realtime;
    /** @type {Map<string, number>} room id -> last seq delivered */
    this._lastSeq = new Map();
    /** @type {Set<string>} rooms joined with room:join (re-joined after reconnect) */
    this._joined = new Set();
    /** @type {Map<string, Promise<void>>} per-room sync in flight */
    this._syncing = new Map();
    /** @type {Map<string, {room_id: string, client_id: string, body: string}>} unacked sends by client_id */
    this.pending = new Map();
    /** Counts live and synced messages for `delivery:report` (sampled; `deliveryReports: false` = off). */
    this.delivery = new DeliveryReporter({ options, realtime });
    /** @type {Map<string, number>} room id -> the live seq whose gap a sync is filling */
    this._gapTrigger = new Map();
    realtime.handle('message', (m) => this._ingest(m));
    realtime.handle('typing', (t) => this.emit('typing', t));
    realtime.handle('read', (r) => this.emit('read', r));
    realtime.handle('room:member_left', (e) => this.emit('member_left', e));
    realtime.handle('room:member_added', (e) => this.emit('member_added', e));
    realtime.on('connected', ({ resumed }) => { if (resumed) this._resume(); });
  }

  /**
   * The last seq delivered for a room (undefined when none yet).
   * @param {string} roomId
   */
  lastSeq(roomId) {
    return this._lastSeq.get(roomId);
  }

  /**
   * Joins a room. With `afterSeq`, messages after it are fetched (`room:sync`)
   * and delivered as `message` events; without it, delivery starts with the
   * room's next message.
   * @param {string} roomId @param {{afterSeq?: number}} [opts]
   * @returns {Promise<{room: object, last_seq: number}>}
   */
  async join(roomId, opts = {}) {
    const ack = await this._rt.request('room:join', { room_id: roomId });
    this._joined.add(roomId);
    if (opts.afterSeq !== undefined) {
      const known = this._lastSeq.get(roomId);
      if (known === undefined || known < opts.afterSeq) this._lastSeq.set(roomId, opts.afterSeq);
      await this.sync(roomId);
    } else if (!this._lastSeq.has(roomId) || /** @type {number} */ (this._lastSeq.get(roomId)) < ack.last_seq) {
      this._lastSeq.set(roomId, ack.last_seq);
    }
    return ack;
  }

  /** @param {string} roomId */
  async leave(roomId) {
    this._joined.delete(roomId);
    await this._rt.request('room:leave', { room_id: roomId });
  }

  /**
   * Sends a message. Resolves the stored message once acknowledged; resends
   * it (same client_id, so never duplicated) across timeouts and reconnects
   * until `sendTimeoutMs`.
   * @param {string} roomId @param {string} body
   * @param {{clientId?: string}} [opts]
   * @returns {Promise<Message>}
   */
  async send(roomId, body, opts = {}) {
    const item = { room_id: roomId, client_id: opts.clientId || uuid(), body };
    this.pending.set(item.client_id, item);
    const deadline = Date.now() + this._options.sendTimeoutMs;
    try {
      for (;;) {
        const left = deadline - Date.now();
        if (left <= 0) throw new ApiError('timeout', 'The message could not be delivered in time.');
        try {
          const ack = await this._rt.request('message:send', item, {
            timeoutMs: Math.min(left, this._options.ackTimeoutMs),
          });
          this._ingest(ack.message);
          return ack.message;
        } catch (err) {
          if (!(err instanceof ApiError) || PERMANENT_SEND_ERRORS.has(err.code)) throw err;
          if (this._rt.state === 'disconnected' && err.code === 'not_connected' && !this._rt.socket) throw err;
          const wait = err.code === 'rate_limited' && err.retryAfter
            ? err.retryAfter * 1000 : this._options.sendRetryDelayMs;
          await new Promise((r) => setTimeout(r, Math.min(wait, Math.max(0, deadline - Date.now()))));
        }
      }
    } finally {
      this.pending.delete(item.client_id);
    }
  }

  /** @param {string} roomId @param {number} seq */
  read(roomId, seq) {
    return this._rt.request('message:read', { room_id: roomId, seq });
  }

  /** @param {string} roomId @param {boolean} typing */
  typing(roomId, typing) {
    return this._rt.request('typing', { room_id: roomId, typing: Boolean(typing) });
  }

  /**
   * Fetches and delivers every message after the room's last seq
   * (`room:sync`, paging while `has_more`). One sync per room at a time.
   * @param {string} roomId
   */
  sync(roomId, why = 'asked') {
    const running = this._syncing.get(roomId);
    if (running) return running;
    const task = this._syncLoop(roomId, why).finally(() => this._syncing.delete(roomId));
    this._syncing.set(roomId, task);
    return task;
  }

  /** @param {string} roomId @param {string} why "gap", "reconnect" or "asked" (counted for delivery reports) */
  async _syncLoop(roomId, why) {
    let count = 0;
    for (;;) {
      const after = this._lastSeq.get(roomId) ?? 0;
      const ack = await this._rt.request('room:sync', {
        room_id: roomId, after_seq: after, limit: this._options.syncPageSize,
      });
      for (const m of ack.messages) {
        if (!this._deliver(m)) continue;
        count += 1;
        if (why === 'gap') {
          if (m.seq === this._gapTrigger.get(roomId)) this.delivery.live(); // it did arrive live
          else this.delivery.gap(roomId, m.seq);
        }
        else if (why === 'reconnect') this.delivery.afterReconnect();
      }
      if (!ack.has_more || ack.messages.length === 0) break;
    }
    this._gapTrigger.delete(roomId);
    this.emit('synced', { room_id: roomId, count });
  }

  /**
   * Delivers a live message in order: waits for a running sync of its room,
   * and fills a gap (seq beyond last + 1) with a sync first.
   * @param {Message} m @param {boolean} [retried]
   */
  _ingest(m, retried = false) {
    if (!m || typeof m.seq !== 'number') return;
    const running = this._syncing.get(m.room_id);
    if (running) {
      running.then(() => this._ingest(m, retried), () => {});
      return;
    }
    const known = this._lastSeq.get(m.room_id);
    if (known !== undefined && m.seq > known + 1) {
      if (!this._syncing.has(m.room_id)) this._gapTrigger.set(m.room_id, m.seq);
      this.sync(m.room_id, 'gap').then(
        () => { if (!retried) this._ingest(m, true); },
        (err) => this._rt.emit('error', err),
      );
      return;
    }
    if (this._deliver(m)) this.delivery.live();
  }

  /** @param {Message} m @returns {boolean} whether it was new */
  _deliver(m) {
    const known = this._lastSeq.get(m.room_id);
    if (known !== undefined && m.seq <= known) return false;
    // a hole a sync could not fill (the retried live message is delivered past it)
    for (let seq = (known ?? m.seq) + 1; seq < m.seq && seq <= (known ?? 0) + 50; seq += 1) this.delivery.unrecovered(m.room_id, seq);
    this._lastSeq.set(m.room_id, m.seq);
    this.emit('message', m);
    return true;
  }

  /** After a reconnect: re-join joined rooms and catch up every tracked room. */
  async _resume() {
    const rooms = new Set([...this._joined, ...this._lastSeq.keys()]);
    await Promise.all([...rooms].map(async (roomId) => {
      try {
        if (this._joined.has(roomId)) await this._rt.request('room:join', { room_id: roomId });
        await this.sync(roomId, 'reconnect');
      } catch (err) {
        this._rt.emit('error', /** @type {any} */ (err));
      }
    }));
  }
}
