/**
 * Skill Share JavaScript SDK: one client over REST and Socket.IO.
 *
 * ```js
 * import { SkillShareClient } from '@skillshare/sdk';
 * const client = new SkillShareClient({ baseUrl: 'http://localhost:8080' });
 * await client.auth.login({ email, password });
 * await client.connect();
 * client.on('message', (m) => console.log(m.body));
 * await client.chat.send(roomId, 'hello');
 * ```
 * @module skillshare-sdk
 */
import { AdminApi, AuthApi, CallsApi, MatchesApi, RequestsApi, RoomsApi, SkillsApi, UsersApi, paginate } from './api.js';
import { Call, CallState, Calls } from './call.js';
import { Chat } from './chat.js';
import { Emitter } from './emitter.js';
import { ApiError, ErrorCodes, RETRYABLE_CODES } from './errors.js';
import { Http } from './http.js';
import { DEFAULT_OPTIONS, mergeOptions } from './options.js';
import { Presence } from './presence.js';
import { ConnectionState, Realtime } from './realtime.js';
import { Session } from './session.js';

export const VERSION = '0.1.0';

/**
 * @typedef {object} ClientEvents
 * @property {{state: string, previous: string, reason?: string}} state   realtime connection state changes
 * @property {{resumed: boolean}} connected
 * @property {ApiError} error               connection refused, background sync/refresh failures
 * @property {import('./chat.js').Message} message
 * @property {{room_id: string, user_id: string, typing: boolean}} typing
 * @property {{room_id: string, user_id: string, seq: number}} read
 * @property {{room_id: string, count: number}} synced
 * @property {{room_id: string, user_id: string}} member_left    someone left a group room (you, from another tab, too)
 * @property {{room_id: string, user_ids: string[], by: string}} member_added
 * @property {import('./presence.js').PresenceUpdate} presence
 * @property {Call} call                    an incoming call
 * @property {{reason: string}} tokens       the token pair changed (login, register, refresh)
 * @property {{reason: string}} signedout    logout, or the session ended (revoked / refresh refused)
 */

/**
 * The Skill Share client.
 * @extends {Emitter<ClientEvents>}
 */
export class SkillShareClient extends Emitter {
  /** @param {Partial<import('./options.js').ClientOptions>} [options] */
  constructor(options = {}) {
    super();
    /** @type {import('./options.js').ClientOptions} */
    this.options = mergeOptions(options);
    this.http = new Http({ options: this.options, session: () => this.session });
    this.session = new Session({
      options: this.options,
      post: (path, body, init) => this.http.post(path, body, init),
      onChange: (reason) => this._onTokens(reason),
      onEnded: (err) => this._onSessionEnded(err),
    });
    this.realtime = new Realtime({ options: this.options, session: this.session });
    this.auth = new AuthApi(this.http, this.session, {
      onSignedIn: () => {},
      onSignedOut: (reason) => { this.realtime.disconnect(); this.emit('signedout', { reason }); },
    });
    this.users = new UsersApi(this.http);
    this.skills = new SkillsApi(this.http);
    this.requests = new RequestsApi(this.http);
    this.matches = new MatchesApi(this.http);
    this.rooms = new RoomsApi(this.http);
    this.admin = new AdminApi(this.http);
    this.chat = new Chat({ options: this.options, realtime: this.realtime });
    this.presence = new Presence({ realtime: this.realtime });
    this.calls = new Calls({ options: this.options, realtime: this.realtime, api: new CallsApi(this.http) });
    this.paginate = paginate;

    this.realtime.on('state', (e) => this.emit('state', e));
    this.realtime.on('connected', (e) => this.emit('connected', e));
    this.realtime.on('error', (e) => this.emit('error', e));
    this.chat.on('message', (m) => this.emit('message', m));
    this.chat.on('typing', (t) => this.emit('typing', t));
    this.chat.on('read', (r) => this.emit('read', r));
    this.chat.on('synced', (s) => this.emit('synced', s));
    this.chat.on('member_left', (e) => this.emit('member_left', e));
    this.chat.on('member_added', (e) => this.emit('member_added', e));
    this.presence.on('presence', (p) => this.emit('presence', p));
    this.calls.on('incoming', (c) => this.emit('call', c));
    // a skill request changed: {event, request} (docs/marketplace.md)
    this.realtime.handle('request', (e) => this.emit('request', e));
  }

  /** The signed-in user (from register/login/resume), or null. */
  get user() {
    return this.session.user;
  }

  /** The realtime connection state: "disconnected" | "connecting" | "connected". */
  get state() {
    return this.realtime.state;
  }

  /** ICE servers for calls (REST). */
  iceServers() {
    return this.calls.api.iceServers();
  }

  /** Opens the realtime connection (sign in first). */
  connect() {
    if (!this.session.signedIn) return Promise.reject(new ApiError('not_signed_in', 'Sign in before connecting.'));
    return this.realtime.connect();
  }

  /** Closes the realtime connection. */
  disconnect() {
    this.realtime.disconnect();
  }

  /** Disconnects and stops every timer; the client is unusable afterwards. */
  close() {
    this.realtime.disconnect();
    this.session.dispose();
    this.removeAllListeners();
  }

  /** @param {string} reason */
  _onTokens(reason) {
    this.emit('tokens', { reason });
    if (reason === 'refresh') {
      this.realtime.sendToken().catch((err) => this.emit('error', err));
    }
  }

  /** @param {ApiError} err */
  _onSessionEnded(err) {
    this.realtime.disconnect();
    this.emit('error', err);
    this.emit('signedout', { reason: err.code });
  }
}

export {
  ApiError, ErrorCodes, RETRYABLE_CODES, ConnectionState, CallState, Call, DEFAULT_OPTIONS, paginate,
};
