/**
 * REST resources, one small class per area of CONTRACT §3. Every method
 * returns the parsed response body or rejects with an ApiError.
 * @module api
 */

/**
 * @typedef {{items: any[], next_cursor: string|null}} Page
 * @typedef {{limit?: number, cursor?: string|null}} PageQuery
 */

const enc = encodeURIComponent;

/**
 * Walks every page of a cursor-paginated list.
 * @param {(query: PageQuery) => Promise<Page>} fetchPage
 * @param {PageQuery} [query]
 * @returns {AsyncGenerator<any>}
 */
export async function* paginate(fetchPage, query = {}) {
  let cursor = query.cursor ?? null;
  do {
    const page = await fetchPage({ ...query, cursor });
    yield* page.items;
    cursor = page.next_cursor;
  } while (cursor);
}

export class AuthApi {
  /** @param {import('./http.js').Http} http @param {import('./session.js').Session} session @param {{onSignedIn: () => void, onSignedOut: (reason: string) => void}} hooks */
  constructor(http, session, hooks) {
    this._http = http;
    this._session = session;
    this._hooks = hooks;
  }

  /** @param {{email: string, password: string, display_name: string}} data @returns {Promise<object>} the user */
  async register(data) {
    const body = await this._http.post('/auth/register', data, { auth: false });
    this._session.apply(body, 'register');
    this._hooks.onSignedIn();
    return body.user;
  }

  /** @param {{email: string, password: string}} data @returns {Promise<object>} the user */
  async login(data) {
    const body = await this._http.post('/auth/login', data, { auth: false });
    this._session.apply(body, 'login');
    this._hooks.onSignedIn();
    return body.user;
  }

  /**
   * Restores a session without a password: from the refresh cookie (browsers,
   * `refreshMode: "cookie"`) or the stored refresh token. Resolves the user,
   * or null when there is no session to restore.
   * @returns {Promise<object|null>}
   */
  async resume() {
    if (!this._session.canRefresh) return null;
    try {
      await this._session.refresh();
    } catch (err) {
      if (err?.status === 401) return null;
      throw err;
    }
    if (!this._session.user) this._session.user = await this._http.get('/users/me');
    this._hooks.onSignedIn();
    return this._session.user;
  }

  /** Forces a token refresh now (it also happens automatically). */
  refresh() {
    return this._session.refresh();
  }

  /** Revokes this session on the server and forgets the tokens. */
  async logout() {
    try {
      if (this._session.signedIn) await this._http.post('/auth/logout');
    } finally {
      this._session.clear();
      this._hooks.onSignedOut('logout');
    }
  }

  async logoutAll() {
    try {
      await this._http.post('/auth/logout-all');
    } finally {
      this._session.clear();
      this._hooks.onSignedOut('logout');
    }
  }

  sessions() { return this._http.get('/auth/sessions'); }
  /** @param {string} id */ revokeSession(id) { return this._http.delete(`/auth/sessions/${enc(id)}`); }
  /** @param {string} token */ verifyEmail(token) { return this._http.post('/auth/verify-email', { token }, { auth: false }); }
  resendVerification() { return this._http.post('/auth/verify-email/resend'); }
  /** @param {string} email */ forgotPassword(email) { return this._http.post('/auth/password/forgot', { email }, { auth: false }); }
  /** @param {string} token @param {string} newPassword */
  resetPassword(token, newPassword) { return this._http.post('/auth/password/reset', { token, new_password: newPassword }, { auth: false }); }
  /** @param {string} currentPassword @param {string} newPassword */
  changePassword(currentPassword, newPassword) {
    return this._http.post('/auth/password/change', { current_password: currentPassword, new_password: newPassword });
  }
  /** A first password for an account that signs in only with providers. @param {string} newPassword */
  setPassword(newPassword) { return this._http.post('/auth/password/set', { new_password: newPassword }); }

  // Sign-in providers (OpenID Connect, GitHub): docs/accounts.md
  /** @returns {Promise<{items: {name: string, display_name: string}[]}>} */
  providers() { return this._http.get('/auth/oidc/providers', { auth: false }); }
  /** Where the browser goes to sign in with a provider (a full-page navigation). @param {string} name */
  providerSignInUrl(name) { return this._http.url(`/auth/oidc/${enc(name)}/start`); }
  /** Starts linking a provider to the signed-in account; open the answer's authorization_url in this tab. @param {string} name */
  linkProvider(name) { return this._http.post(`/auth/oidc/${enc(name)}/link`); }
  /** 409 last_sign_in_method when it is the account's only way in. @param {string} name */
  unlinkProvider(name) { return this._http.delete(`/auth/oidc/${enc(name)}/link`); }
}

export class UsersApi {
  /** @param {import('./http.js').Http} http */
  constructor(http) { this._http = http; }
  me() { return this._http.get('/users/me'); }
  /** @param {{display_name?: string, bio?: string, timezone?: string, languages?: string[], skills_offered?: {name: string, level: string}[], skills_wanted?: {name: string, level: string}[]}} patch */
  updateMe(patch) { return this._http.patch('/users/me', patch); }
  deleteMe() { return this._http.delete('/users/me'); }
  exportMe() { return this._http.get('/users/me/export'); }
  /** @param {string} id */ get(id) { return this._http.get(`/users/${enc(id)}`); }
  /**
   * Blocks a user: no messages in your direct room, calls, skill requests,
   * new rooms or group additions between you, and no presence either way.
   * Resolves `{user_id, display_name, created_at}`. @param {string} id
   */
  block(id) { return this._http.post(`/users/${enc(id)}/block`); }
  /** Unblocks (no error when not blocked). @param {string} id */
  unblock(id) { return this._http.delete(`/users/${enc(id)}/block`); }
  /** The people you blocked, newest first. @param {PageQuery} [query] @returns {Promise<Page>} */
  blocks(query = {}) { return this._http.get('/users/me/blocks', { query }); }
}

export class SkillsApi {
  /** @param {import('./http.js').Http} http */
  constructor(http) { this._http = http; }
  /** @param {{q?: string, category?: string, tag?: string, owner?: string} & PageQuery} [query] @returns {Promise<Page>} */
  list(query = {}) { return this._http.get('/skills', { query }); }
  /** @param {{title: string, description?: string, category?: string, tags?: string[], level?: string, mode?: string}} data */
  create(data) { return this._http.post('/skills', data); }
  /** Listing categories `{items: [{id, name}]}` (server extra beyond the contract). */
  categories() { return this._http.get('/skills/categories', { auth: false }); }
  /** @param {string} id */ get(id) { return this._http.get(`/skills/${enc(id)}`); }
  /** @param {string} id @param {object} patch */ update(id, patch) { return this._http.patch(`/skills/${enc(id)}`, patch); }
  /** @param {string} id */ remove(id) { return this._http.delete(`/skills/${enc(id)}`); }
  /** Reviews of a listing, newest first. @param {string} id @param {PageQuery} [query] @returns {Promise<Page>} */
  reviews(id, query = {}) { return this._http.get(`/skills/${enc(id)}/reviews`, { query }); }
  /** Asks the listing's owner to teach the caller. @param {string} id @param {string} [message] */
  request(id, message = '') { return this._http.post(`/skills/${enc(id)}/requests`, { message }); }
}

export class RequestsApi {
  /** @param {import('./http.js').Http} http */
  constructor(http) { this._http = http; }
  /** @param {{role?: 'incoming'|'outgoing', status?: string} & PageQuery} [query] @returns {Promise<Page>} */
  list(query = {}) { return this._http.get('/requests', { query }); }
  /** Accepts; the response carries `room_id` of the direct room opened. @param {string} id */
  accept(id) { return this._http.post(`/requests/${enc(id)}/accept`); }
  /** @param {string} id */ decline(id) { return this._http.post(`/requests/${enc(id)}/decline`); }
  /** @param {string} id */ cancel(id) { return this._http.post(`/requests/${enc(id)}/cancel`); }
  /** @param {string} id */ complete(id) { return this._http.post(`/requests/${enc(id)}/complete`); }
  /** @param {string} id @param {{rating: number, comment?: string}} review */
  review(id, review) { return this._http.post(`/requests/${enc(id)}/review`, review); }
}

/** Moderation and the audit log (admins only; 403 otherwise). */
export class AdminApi {
  /** @param {import('./http.js').Http} http */
  constructor(http) { this._http = http; }
  /** @param {string} id @param {string} [reason] */ hideListing(id, reason) { return this._http.post(`/admin/skills/${enc(id)}/hide`, reason ? { reason } : {}); }
  /** @param {string} id @param {string} [reason] */ unhideListing(id, reason) { return this._http.post(`/admin/skills/${enc(id)}/unhide`, reason ? { reason } : {}); }
  /** @param {string} id @param {string} [reason] */ ban(id, reason) { return this._http.post(`/admin/users/${enc(id)}/ban`, reason ? { reason } : {}); }
  /** @param {string} id @param {string} [reason] */ unban(id, reason) { return this._http.post(`/admin/users/${enc(id)}/unban`, reason ? { reason } : {}); }
  /** @param {string} id @param {'user'|'admin'} role */ setRole(id, role) { return this._http.post(`/admin/users/${enc(id)}/role`, { role }); }
  /** The account with exactly this address: `{items: [user]}` or `{items: []}`. @param {string} email */
  findUser(email) { return this._http.get('/admin/users', { query: { email } }); }
  /** @param {{action?: string, actor_id?: string} & PageQuery} [query] @returns {Promise<Page>} */
  audit(query = {}) { return this._http.get('/admin/audit', { query }); }
}

export class MatchesApi {
  /** @param {import('./http.js').Http} http */
  constructor(http) { this._http = http; }
  /** @param {PageQuery} [query] */ list(query = {}) { return this._http.get('/matches', { query }); }
}

export class RoomsApi {
  /** @param {import('./http.js').Http} http */
  constructor(http) { this._http = http; }
  /** The caller's rooms with last message and unread count. @param {PageQuery} [query] */
  list(query = {}) { return this._http.get('/rooms', { query }); }
  /** @param {string} userId */ direct(userId) { return this._http.post('/rooms', { type: 'direct', user_id: userId }); }
  /** @param {string} name @param {string[]} memberIds */
  group(name, memberIds) { return this._http.post('/rooms', { type: 'group', name, member_ids: memberIds }); }
  /**
   * Leaves a group room for good (REST; unlike `chat.leave`, which only stops
   * listening): no more messages or history. Others get `member_left`.
   * @param {string} roomId
   */
  leave(roomId) { return this._http.post(`/rooms/${enc(roomId)}/leave`); }
  /**
   * Adds people to a group room; each must have a relation with you
   * (`not_a_contact` otherwise). Resolves the room. @param {string} roomId @param {string[]} userIds
   */
  addMembers(roomId, userIds) { return this._http.post(`/rooms/${enc(roomId)}/members`, { user_ids: userIds }); }
  /** @param {string} roomId @param {{before_seq?: number, after_seq?: number, limit?: number}} [query] */
  messages(roomId, query = {}) { return this._http.get(`/rooms/${enc(roomId)}/messages`, { query }); }
}

export class CallsApi {
  /** @param {import('./http.js').Http} http */
  constructor(http) { this._http = http; }
  /** @returns {Promise<{ice_servers: {urls: string[], username?: string, credential?: string}[], ttl: number}>} */
  iceServers() { return this._http.get('/calls/ice-servers'); }
}
