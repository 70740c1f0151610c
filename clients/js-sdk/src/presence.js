/**
 * Presence: subscribe to users' status and set your own. Subscriptions and
 * your status are restored after a reconnect.
 * @module presence
 */
import { Emitter } from './emitter.js';

/** @typedef {'online'|'away'|'dnd'|'offline'} PresenceStatus */
/** @typedef {{user_id: string, status: PresenceStatus, last_seen: string|null}} PresenceUpdate */

/** Most user ids one `presence:subscribe` may carry. */
export const MAX_PRESENCE_SUBSCRIBE = 500;

/** @extends {Emitter<{presence: PresenceUpdate}>} */
export class Presence extends Emitter {
  /** @param {{realtime: import('./realtime.js').Realtime}} deps */
  constructor({ realtime }) {
    super();
    this._rt = realtime;
    /** @type {Map<string, PresenceUpdate>} last known status per user */
    this.statuses = new Map();
    /** @type {Set<string>} */
    this._subscribed = new Set();
    /** @type {Set<string>} users whose presence the server does not show you (not a contact, private) */
    this.hidden = new Set();
    /** @type {PresenceStatus|null} */
    this._own = null;
    realtime.handle('presence', (/** @type {PresenceUpdate} */ p) => {
      this.hidden.delete(p.user_id);
      this.statuses.set(p.user_id, p);
      this.emit('presence', p);
    });
    realtime.on('connected', ({ resumed }) => { if (resumed) this._restore(); });
  }

  /**
   * Subscribes to users' presence; resolves the current status of those you
   * may see (contacts, or people whose presence is public). The others are
   * left out and listed in `hidden`; their updates start by themselves if
   * that changes (then they leave `hidden`).
   * @param {string[]} userIds
   * @returns {Promise<Record<string, {status: PresenceStatus, last_seen: string|null}>>}
   */
  async subscribe(userIds) {
    const result = {};
    for (let i = 0; i < userIds.length; i += MAX_PRESENCE_SUBSCRIBE) {
      const chunk = userIds.slice(i, i + MAX_PRESENCE_SUBSCRIBE);
      const ack = await this._rt.request('presence:subscribe', { user_ids: chunk });
      for (const id of chunk) this._subscribed.add(id);
      for (const id of ack.hidden || []) this.hidden.add(id);
      for (const [id, p] of Object.entries(ack.presence || {})) {
        this.statuses.set(id, { user_id: id, ...p });
        result[id] = p;
      }
    }
    return result;
  }

  /** @param {PresenceStatus} status */
  async set(status) {
    await this._rt.request('presence:set', { status });
    this._own = status;
  }

  /** @param {string} userId @returns {PresenceStatus} */
  statusOf(userId) {
    return this.statuses.get(userId)?.status ?? 'offline';
  }

  async _restore() {
    try {
      if (this._subscribed.size) {
        const ids = [...this._subscribed];
        for (const [id, p] of Object.entries(await this.subscribe(ids))) {
          this.emit('presence', { user_id: id, ...p });
        }
      }
      if (this._own && this._own !== 'online') await this.set(this._own);
    } catch (err) {
      this._rt.emit('error', /** @type {any} */ (err));
    }
  }
}
