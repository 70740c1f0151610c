/**
 * The signed-in session: access token (kept fresh), refresh token, user.
 * @module session
 */
import { ApiError } from './errors.js';

/**
 * @typedef {object} AuthBody the body of register/login/refresh
 * @property {object} user
 * @property {string} access_token
 * @property {string} refresh_token
 * @property {string} token_type
 * @property {number} expires_in seconds
 */

/** Reads a cookie in browsers ("" elsewhere). @param {string} name */
function readCookie(name) {
  if (typeof document === 'undefined' || !document.cookie) return '';
  for (const part of document.cookie.split(';')) {
    const [k, ...v] = part.trim().split('=');
    if (k === name) return decodeURIComponent(v.join('='));
  }
  return '';
}

/**
 * Owns the tokens. Refreshes the access token before it expires (timer) and
 * on demand (`token_expired`), one refresh at a time: a refresh token works
 * once, so two concurrent refreshes would revoke the session.
 */
export class Session {
  /**
   * @param {{options: import('./options.js').ClientOptions, post: (path: string, body: any, init?: object) => Promise<any>, onChange: (reason: string) => void, onEnded: (err: ApiError) => void}} deps
   */
  constructor({ options, post, onChange, onEnded }) {
    this._options = options;
    this._post = post;
    this._onChange = onChange;
    this._onEnded = onEnded;
    /** @type {string|null} */ this.accessToken = null;
    /** @type {string|null} */ this.refreshToken = null;
    /** @type {number} epoch ms */ this.expiresAt = 0;
    /** @type {object|null} */ this.user = null;
    /** @type {Promise<void>|null} */ this._refreshing = null;
    /** @type {ReturnType<typeof setTimeout>|null} */ this._timer = null;
    this._lifetimeMs = 0;
    if (options.refreshMode === 'body' && options.storage) {
      this.refreshToken = options.storage.getItem(options.storageKey);
    }
  }

  get signedIn() {
    return this.accessToken !== null;
  }

  /** @param {AuthBody} body @param {string} reason */
  apply(body, reason) {
    this.accessToken = body.access_token;
    this.refreshToken = body.refresh_token ?? null;
    this.user = body.user ?? this.user;
    this._lifetimeMs = Math.max(1, Number(body.expires_in) || 0) * 1000;
    this.expiresAt = Date.now() + this._lifetimeMs;
    const { storage, storageKey, refreshMode } = this._options;
    if (storage && refreshMode === 'body' && this.refreshToken) storage.setItem(storageKey, this.refreshToken);
    this._schedule();
    this._onChange(reason);
  }

  clear() {
    this.accessToken = null;
    this.refreshToken = null;
    this.user = null;
    this.expiresAt = 0;
    if (this._timer) clearTimeout(this._timer);
    this._timer = null;
    const { storage, storageKey } = this._options;
    if (storage) storage.removeItem(storageKey);
  }

  /** Milliseconds before expiry at which we refresh. */
  get _skewMs() {
    return Math.min(this._options.refreshSkewMs, this._lifetimeMs / 4);
  }

  /** True when the access token is expired or about to be. */
  get stale() {
    return this.accessToken !== null && Date.now() >= this.expiresAt - this._skewMs;
  }

  _schedule() {
    if (this._timer) clearTimeout(this._timer);
    const delay = Math.max(0, this.expiresAt - this._skewMs - Date.now());
    this._timer = setTimeout(() => {
      this.refresh().catch(() => { /* reported through onEnded / next request */ });
    }, delay);
    if (typeof this._timer === 'object' && this._timer && 'unref' in this._timer) this._timer.unref();
  }

  /** Whether a refresh is possible at all (a token in memory, or cookie mode). */
  get canRefresh() {
    if (this._options.refreshMode === 'cookie') {
      // The readable CSRF cookie travels with the httpOnly refresh cookie.
      return typeof document === 'undefined' || readCookie('ss_csrf') !== '';
    }
    return this.refreshToken !== null;
  }

  /**
   * Gets a new token pair. Concurrent callers share one request.
   * @returns {Promise<void>}
   */
  refresh() {
    if (!this._refreshing) {
      this._refreshing = this._withLock(() => this._doRefresh()).finally(() => {
        this._refreshing = null;
      });
    }
    return this._refreshing;
  }

  async _doRefresh() {
    if (!this.canRefresh) throw new ApiError('not_signed_in', 'No refresh token: sign in first.');
    const cookieMode = this._options.refreshMode === 'cookie';
    try {
      const body = cookieMode
        ? await this._post('/auth/refresh', {}, { headers: { 'X-CSRF-Token': readCookie('ss_csrf') }, auth: false })
        : await this._post('/auth/refresh', { refresh_token: this.refreshToken }, { auth: false });
      this.apply(body, 'refresh');
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) {
        const wasSignedIn = this.signedIn;
        this.clear();
        if (wasSignedIn) this._onEnded(err);
      }
      throw err;
    }
  }

  /**
   * Browsers in cookie mode share one refresh cookie between tabs: serialise
   * refreshes across tabs with the Web Locks API when there is one.
   * @template T @param {() => Promise<T>} fn @returns {Promise<T>}
   */
  _withLock(fn) {
    const locks = typeof navigator !== 'undefined' ? navigator.locks : undefined;
    if (this._options.refreshMode === 'cookie' && locks?.request) {
      return locks.request('skillshare-token-refresh', fn);
    }
    return fn();
  }

  /** A usable access token, refreshing first when it is about to expire. */
  async freshAccessToken() {
    if (this.accessToken === null) throw new ApiError('not_signed_in', 'Sign in first.');
    if (this.stale) await this.refresh();
    return /** @type {string} */ (this.accessToken);
  }

  dispose() {
    if (this._timer) clearTimeout(this._timer);
    this._timer = null;
  }
}
