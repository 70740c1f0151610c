/**
 * Delivery reports: counts what this client got live and what it had to
 * fetch with `room:sync` (after a hole in the live stream, after a
 * reconnect), and sends the counts to the server now and then with
 * `delivery:report` (docs/realtime.md, "Delivery, counted"). Sampled: a
 * client reports with probability `deliveryReportSampleRate`;
 * `deliveryReports: false` turns it off.
 * @module delivery
 */

/** Per report, at most this many rooms and seqs per room (the server's limits). */
const MAX_ROOMS = 20;
const MAX_SEQS = 500;

export class DeliveryReporter {
  /**
   * @param {{options: import('./options.js').ClientOptions, realtime: any, random?: () => number}} deps
   */
  constructor({ options, realtime, random = Math.random }) {
    this._rt = realtime;
    /** Whether this client reports at all (opt-out and sampling). */
    this.enabled = Boolean(options.deliveryReports) && random() < options.deliveryReportSampleRate;
    this._live = 0;
    this._afterReconnect = 0;
    /** @type {Map<string, {seqs: number[], unrecovered: number[]}>} */
    this._gaps = new Map();
    /** @type {ReturnType<typeof setInterval>|null} */
    this._timer = null;
    const every = options.deliveryReportIntervalMs;
    if (this.enabled && every > 0) {
      this._timer = setInterval(() => { this.flush().catch(() => {}); }, every);
      /** @type {any} */ (this._timer).unref?.();
    }
  }

  live() {
    if (this.enabled) this._live += 1;
  }

  afterReconnect() {
    if (this.enabled) this._afterReconnect += 1;
  }

  /** A seq fetched by sync after a hole in the live stream. @param {string} roomId @param {number} seq */
  gap(roomId, seq) {
    if (this.enabled) this._room(roomId)?.seqs.push(seq);
  }

  /** A seq that a sync did not bring although a later message arrived. @param {string} roomId @param {number} seq */
  unrecovered(roomId, seq) {
    if (this.enabled) this._room(roomId)?.unrecovered.push(seq);
  }

  /** @param {string} roomId */
  _room(roomId) {
    let room = this._gaps.get(roomId);
    if (!room && this._gaps.size < MAX_ROOMS) {
      room = { seqs: [], unrecovered: [] };
      this._gaps.set(roomId, room);
    }
    if (room && room.seqs.length + room.unrecovered.length >= MAX_SEQS) return undefined;
    return room;
  }

  /** Sends what was counted since the last report (nothing when there is nothing, or not connected). */
  async flush() {
    if (!this.enabled || (this._live === 0 && this._afterReconnect === 0 && this._gaps.size === 0)) return;
    if (this._rt.state !== 'connected') return;
    const payload = {
      live: this._live,
      after_reconnect: this._afterReconnect,
      gaps: [...this._gaps].map(([room_id, g]) => ({ room_id, seqs: g.seqs, unrecovered: g.unrecovered })),
    };
    this._live = 0;
    this._afterReconnect = 0;
    this._gaps = new Map();
    await this._rt.request('delivery:report', payload, { waitForConnection: false });
  }

  stop() {
    if (this._timer) clearInterval(this._timer);
    this._timer = null;
  }
}
