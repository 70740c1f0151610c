/**
 * REST transport: JSON over fetch, bearer auth, one retry after refreshing
 * an expired access token, errors as {@link ApiError}.
 * @module http
 */
import { ApiError } from './errors.js';

/**
 * @typedef {object} RequestInit2
 * @property {Record<string, any>} [query] query parameters (undefined/null/"" are dropped)
 * @property {any} [body] JSON body
 * @property {boolean} [auth] send the bearer token (default true)
 * @property {Record<string,string>} [headers]
 * @property {AbortSignal} [signal]
 */

export class Http {
  /**
   * @param {{options: import('./options.js').ClientOptions, session: () => import('./session.js').Session}} deps
   */
  constructor({ options, session }) {
    this._options = options;
    this._session = session;
    this._fetch = options.fetch || globalThis.fetch.bind(globalThis);
  }

  /** @param {string} path @param {Record<string, any>} [query] */
  url(path, query) {
    let url = `${this._options.baseUrl}${this._options.apiPrefix}${path}`;
    if (query) {
      const params = new URLSearchParams();
      for (const [k, v] of Object.entries(query)) {
        if (v === undefined || v === null || v === '') continue;
        params.append(k, String(v));
      }
      const qs = params.toString();
      if (qs) url += `?${qs}`;
    }
    return url;
  }

  /**
   * @param {string} method
   * @param {string} path path under the API prefix, e.g. "/users/me"
   * @param {RequestInit2} [init]
   * @returns {Promise<any>} the parsed JSON body (null for 204)
   */
  async request(method, path, init = {}) {
    const auth = init.auth !== false;
    try {
      return await this._once(method, path, init, auth);
    } catch (err) {
      const session = this._session();
      if (auth && err instanceof ApiError && err.code === 'token_expired' && session.canRefresh) {
        await session.refresh();
        return this._once(method, path, init, auth);
      }
      throw err;
    }
  }

  /** @param {string} method @param {string} path @param {RequestInit2} init @param {boolean} auth */
  async _once(method, path, init, auth) {
    const headers = { Accept: 'application/json', ...(init.headers || {}) };
    if (init.body !== undefined) headers['Content-Type'] = 'application/json';
    if (auth) headers.Authorization = `Bearer ${await this._session().freshAccessToken()}`;
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), this._options.requestTimeoutMs);
    const onAbort = () => controller.abort();
    init.signal?.addEventListener('abort', onAbort, { once: true });
    let response;
    try {
      response = await this._fetch(this.url(path, init.query), {
        method,
        headers,
        body: init.body !== undefined ? JSON.stringify(init.body) : undefined,
        credentials: this._options.refreshMode === 'cookie' ? 'include' : 'same-origin',
        signal: controller.signal,
      });
    } catch (err) {
      if (init.signal?.aborted) throw new ApiError('aborted', 'The request was aborted.', { cause: err });
      if (controller.signal.aborted) throw new ApiError('timeout', `${method} ${path} timed out.`, { cause: err });
      throw new ApiError('network_error', `Network error on ${method} ${path}.`, { cause: err });
    } finally {
      clearTimeout(timer);
      init.signal?.removeEventListener('abort', onAbort);
    }
    if (!response.ok) throw await ApiError.fromResponse(response);
    if (response.status === 204) return null;
    const text = await response.text();
    return text ? JSON.parse(text) : null;
  }

  /** @param {string} path @param {RequestInit2} [init] */ get(path, init) { return this.request('GET', path, init); }
  /** @param {string} path @param {any} [body] @param {RequestInit2} [init] */ post(path, body, init) { return this.request('POST', path, { ...init, body: body ?? {} }); }
  /** @param {string} path @param {any} body @param {RequestInit2} [init] */ patch(path, body, init) { return this.request('PATCH', path, { ...init, body }); }
  /** @param {string} path @param {RequestInit2} [init] */ delete(path, init) { return this.request('DELETE', path, init); }
}
