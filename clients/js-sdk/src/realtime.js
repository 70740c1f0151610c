/**
 * The Socket.IO connection (CONTRACT §4): explicit state, token hand-over on
 * refresh, every emit a promise of its ack.
 * @module realtime
 */
import { io } from 'socket.io-client';
import { ApiError } from './errors.js';
import { Emitter } from './emitter.js';

/** Connection states. */
export const ConnectionState = Object.freeze({
  Disconnected: 'disconnected',
  Connecting: 'connecting',
  Connected: 'connected',
});

/** connect_error codes after which reconnecting cannot help. */
const FATAL_CONNECT_CODES = new Set(['unauthorized', 'token_revoked']);
/** `session:ended` reason / connect_error code of a node shutting down (rolling deploy). */
const NODE_DRAINING = 'node_draining';

/**
 * @typedef {object} RealtimeEvents
 * @property {{state: string, previous: string, reason?: string}} state
 * @property {{resumed: boolean}} connected   every (re)connection; resumed = not the first
 * @property {ApiError} error                 a connection refused by the server, or a failed background task
 */

/** @extends {Emitter<RealtimeEvents>} */
export class Realtime extends Emitter {
  /**
   * @param {{options: import('./options.js').ClientOptions, session: import('./session.js').Session}} deps
   */
  constructor({ options, session }) {
    super();
    this._options = options;
    this._session = session;
    /** @type {string} */
    this.state = ConnectionState.Disconnected;
    /** @type {import('socket.io-client').Socket|null} */
    this.socket = null;
    this._connectedOnce = false;
    this._draining = false;
    /** @type {ReturnType<typeof setTimeout>|null} */
    this._moveTimer = null;
    /** @type {Array<[string, (...args: any[]) => void]>} */
    this._handlers = [];
  }

  /**
   * Registers a handler for a server→client event; kept across reconnections.
   * @param {string} event @param {(payload: any) => void} handler
   */
  handle(event, handler) {
    this._handlers.push([event, handler]);
    this.socket?.on(event, handler);
  }

  /** @param {string} state @param {string} [reason] */
  _setState(state, reason) {
    if (state === this.state) return;
    const previous = this.state;
    this.state = state;
    this.emit('state', { state, previous, reason });
  }

  /**
   * Connects (or returns at once when already connected). Resolves on the
   * first successful connection; rejects with an ApiError if the server
   * refuses the token.
   * @returns {Promise<void>}
   */
  connect() {
    if (this.state === ConnectionState.Connected) return Promise.resolve();
    if (!this.socket) this._createSocket();
    const socket = /** @type {import('socket.io-client').Socket} */ (this.socket);
    const done = new Promise((resolve, reject) => {
      const offs = [
        this.once('connected', () => { offs.forEach((f) => f()); resolve(undefined); }),
        this.once('error', (err) => { offs.forEach((f) => f()); reject(err); }),
        this.on('state', ({ state }) => {
          if (state === ConnectionState.Disconnected) {
            offs.forEach((f) => f());
            reject(new ApiError('not_connected', 'Disconnected before connecting.'));
          }
        }),
      ];
    });
    if (!socket.connected && !socket.active) {
      this._setState(ConnectionState.Connecting);
      socket.connect();
    }
    return done;
  }

  _createSocket() {
    const o = this._options;
    const socket = io(o.baseUrl || undefined, {
      autoConnect: false,
      transports: o.transports,
      reconnectionDelay: o.minReconnectDelayMs,
      reconnectionDelayMax: o.maxReconnectDelayMs,
      withCredentials: o.refreshMode === 'cookie',
      auth: (cb) => {
        this._session.freshAccessToken().then(
          (token) => cb({ token }),
          () => cb({ token: this._session.accessToken || '' }),
        );
      },
    });
    this.socket = socket;
    socket.on('connect', () => {
      const resumed = this._connectedOnce;
      this._connectedOnce = true;
      this._setState(ConnectionState.Connected);
      this.emit('connected', { resumed });
    });
    socket.on('session:ended', (payload) => {
      if (payload?.reason === NODE_DRAINING) this._draining = true;
    });
    socket.on('disconnect', (reason) => {
      if (reason === 'io client disconnect') {
        this._setState(ConnectionState.Disconnected, reason);
      } else if (reason === 'io server disconnect' && this._draining) {
        // The node is shutting down: the session is fine, go to another node.
        this._draining = false;
        this._setState(ConnectionState.Connecting, NODE_DRAINING);
        this._moveToAnotherNode();
      } else if (reason === 'io server disconnect') {
        // The server closed us (token expired or session revoked): reconnect
        // only if a refresh gives us a valid token again.
        this._setState(ConnectionState.Connecting, reason);
        this._reconnectAfterRefresh();
      } else {
        this._setState(ConnectionState.Connecting, reason);
      }
    });
    socket.on('connect_error', (err) => {
      const code = /** @type {any} */ (err).data?.code;
      if (code === 'token_expired') {
        this._reconnectAfterRefresh();
      } else if (code === NODE_DRAINING) {
        this._setState(ConnectionState.Connecting, NODE_DRAINING);
        this._moveToAnotherNode();
      } else if (FATAL_CONNECT_CODES.has(code)) {
        this._fail(new ApiError(code, err.message || code));
      } else if (!socket.active) {
        this._fail(new ApiError('unauthorized', err.message || 'Connection refused.'));
      } else {
        this._setState(ConnectionState.Connecting, err.message);
      }
    });
    socket.on('session:expiring', () => {
      this._session.refresh().catch((err) => this.emit('error', err));
    });
    for (const [event, handler] of this._handlers) socket.on(event, handler);
  }

  /**
   * Reconnects after a random delay within `drainReconnectWindowMs` (the
   * load balancer picks a live node); if that attempt fails, Socket.IO's own
   * reconnection carries on with its jittered exponential backoff.
   */
  _moveToAnotherNode() {
    if (this._moveTimer) return;
    const delay = Math.random() * this._options.drainReconnectWindowMs;
    this._moveTimer = setTimeout(() => {
      this._moveTimer = null;
      if (this.socket && !this.socket.connected && this.state !== ConnectionState.Disconnected) {
        this.socket.connect();
      }
    }, delay);
  }

  _reconnectAfterRefresh() {
    if (!this._session.canRefresh) {
      this._fail(new ApiError('unauthorized', 'Signed out.'));
      return;
    }
    this._session.refresh().then(
      () => { if (this.socket && !this.socket.connected) this.socket.connect(); },
      (err) => this._fail(err instanceof ApiError ? err : new ApiError('unauthorized', String(err))),
    );
  }

  /** @param {ApiError} err */
  _fail(err) {
    this.socket?.disconnect();
    this.emit('error', err);
    this._setState(ConnectionState.Disconnected, err.code);
  }

  /** Hands the server a freshly refreshed access token (`auth:refresh`). */
  async sendToken() {
    if (this.state !== ConnectionState.Connected || !this._session.accessToken) return;
    await this.request('auth:refresh', { token: this._session.accessToken });
  }

  /**
   * Emits an event and resolves its ack (`{ok: true, ...}`), or rejects with
   * an ApiError (the ack's error, `timeout`, or `not_connected`).
   * @param {string} event @param {object} payload
   * @param {{timeoutMs?: number, waitForConnection?: boolean}} [opts]
   * @returns {Promise<any>}
   */
  async request(event, payload, opts = {}) {
    const timeoutMs = opts.timeoutMs ?? this._options.ackTimeoutMs;
    const started = Date.now();
    if (this.state !== ConnectionState.Connected) {
      if (opts.waitForConnection === false || this.state === ConnectionState.Disconnected) {
        throw new ApiError('not_connected', `Cannot send ${event}: not connected.`);
      }
      await this._waitConnected(timeoutMs);
    }
    const socket = /** @type {import('socket.io-client').Socket} */ (this.socket);
    const remaining = Math.max(1, timeoutMs - (Date.now() - started));
    return new Promise((resolve, reject) => {
      socket.timeout(remaining).emit(event, payload, (/** @type {any} */ err, /** @type {any} */ ack) => {
        if (err) reject(new ApiError('timeout', `No acknowledgement for ${event} within ${timeoutMs} ms.`));
        else if (ack && ack.ok) resolve(ack);
        else reject(ApiError.fromAck(ack));
      });
    });
  }

  /** @param {number} timeoutMs */
  _waitConnected(timeoutMs) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => { off(); reject(new ApiError('not_connected', 'Not connected.')); }, timeoutMs);
      const off = this.on('state', ({ state }) => {
        if (state === ConnectionState.Connected) { clearTimeout(timer); off(); resolve(undefined); }
        if (state === ConnectionState.Disconnected) { clearTimeout(timer); off(); reject(new ApiError('not_connected', 'Disconnected.')); }
      });
    });
  }

  /** Closes the connection; `connect()` opens it again. */
  disconnect() {
    if (this._moveTimer) {
      clearTimeout(this._moveTimer);
      this._moveTimer = null;
    }
    if (this.socket) {
      this.socket.disconnect();
      this.socket.removeAllListeners();
      this.socket = null;
    }
    this._setState(ConnectionState.Disconnected, 'io client disconnect');
  }
}
