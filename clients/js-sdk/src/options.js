/**
 * Client options: every option has a named default, and what a caller passes
 * is merged over them.
 * @module options
 */

/**
 * @typedef {object} ClientOptions
 * @property {string} baseUrl server origin, e.g. "https://skillshare.example"; "" = same origin (browsers)
 * @property {string} apiPrefix REST base path
 * @property {'body'|'cookie'} refreshMode "body" keeps the refresh token in memory and sends it in the
 *   request body; "cookie" (browsers) relies on the httpOnly `ss_refresh` cookie + `X-CSRF-Token`
 * @property {number} refreshSkewMs refresh the access token this long before it expires (capped at a
 *   quarter of its lifetime)
 * @property {number} requestTimeoutMs REST request timeout
 * @property {number} ackTimeoutMs how long to wait for a Socket.IO ack
 * @property {number} minReconnectDelayMs Socket.IO reconnection: first delay
 * @property {number} maxReconnectDelayMs Socket.IO reconnection: delay cap
 * @property {number} drainReconnectWindowMs a node shutting down (`session:ended` / connect refused with
 *   `node_draining`): reconnect after a random delay within this window, so its clients spread over the others
 * @property {number} sendRetryDelayMs delay between retries of an unacknowledged chat message
 * @property {number} sendTimeoutMs give up on a chat message (reject its promise) after this long
 * @property {number} syncPageSize `room:sync` page size
 * @property {number} p2pTimeoutMs a call that has not connected peer-to-peer by then falls back to the relay
 * @property {boolean} relayFallback whether calls may fall back to the server's media relay
 * @property {number} iceRestartTimeoutMs a call whose media was lost and not back after an ICE restart by
 *   then moves to the relay (when `relayFallback`), and after as long again ends with `media_lost`
 * @property {number} callStatsIntervalMs how often a connected call reports `call:stats` (kind "interval"); 0 = never
 * @property {'all'|'relay'} iceTransportPolicy calls' ICE policy: "all" tries direct, then TURN (and then
 *   the server's relay); "relay" uses TURN only (a call whose TURN allocation fails ends with `turn_failed`)
 * @property {boolean} deliveryReports send `delivery:report` (counts of live and synced messages); opt out with false
 * @property {number} deliveryReportSampleRate share of clients that report (0..1), decided once per client
 * @property {number} deliveryReportIntervalMs how often a reporting client sends its counts (0 = only on flush())
 * @property {string[]} transports Socket.IO transports
 * @property {typeof fetch|null} fetch fetch implementation (default: globalThis.fetch)
 * @property {{getItem(k:string):string|null, setItem(k:string,v:string):void, removeItem(k:string):void}|null} storage
 *   where to keep the refresh token across restarts in "body" mode (default: nowhere)
 * @property {string} storageKey key used in `storage`
 */

/** @type {Readonly<ClientOptions>} */
export const DEFAULT_OPTIONS = Object.freeze({
  baseUrl: '',
  apiPrefix: '/api/v1',
  refreshMode: 'body',
  refreshSkewMs: 60_000,
  requestTimeoutMs: 15_000,
  ackTimeoutMs: 10_000,
  minReconnectDelayMs: 500,
  maxReconnectDelayMs: 20_000,
  drainReconnectWindowMs: 1_000,
  sendRetryDelayMs: 1_000,
  sendTimeoutMs: 60_000,
  syncPageSize: 100,
  p2pTimeoutMs: 10_000,
  relayFallback: true,
  iceRestartTimeoutMs: 15_000,
  callStatsIntervalMs: 30_000,
  iceTransportPolicy: 'all',
  deliveryReports: true,
  deliveryReportSampleRate: 0.1,
  deliveryReportIntervalMs: 60_000,
  transports: ['websocket'],
  fetch: null,
  storage: null,
  storageKey: 'skillshare.refresh_token',
});

/**
 * @param {Partial<ClientOptions>} [options]
 * @returns {ClientOptions}
 */
export function mergeOptions(options = {}) {
  const merged = { ...DEFAULT_OPTIONS };
  for (const [key, value] of Object.entries(options)) {
    if (!(key in DEFAULT_OPTIONS)) throw new TypeError(`SkillShareClient: unknown option "${key}"`);
    if (value !== undefined) merged[key] = value;
  }
  merged.baseUrl = String(merged.baseUrl).replace(/\/+$/, '');
  if (merged.refreshMode !== 'body' && merged.refreshMode !== 'cookie') {
    throw new TypeError('SkillShareClient: refreshMode must be "body" or "cookie"');
  }
  if (merged.iceTransportPolicy !== 'all' && merged.iceTransportPolicy !== 'relay') {
    throw new TypeError('SkillShareClient: iceTransportPolicy must be "all" or "relay"');
  }
  return merged;
}
