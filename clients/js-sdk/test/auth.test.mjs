// Accounts through the SDK against a real server: register/login, error
// mapping, automatic token refresh (timer and on token_expired), refresh
// reuse detection, logout.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { SkillShareClient, ApiError, ErrorCodes } from '../src/index.js';
import { PASSWORD, startServer, uniqueEmail } from './support/server.mjs';

const ACCESS_TOKEN_TTL_S = 10;
/** The server accepts a token this long past its expiry (clock skew). */
const SERVER_LEEWAY_S = 5;
let server;

before(async () => {
  server = await startServer({ SKILLSHARE_ACCESS_TOKEN_TTL: String(ACCESS_TOKEN_TTL_S) });
});
after(async () => { await server?.stop(); });

const newClient = (opts = {}) => new SkillShareClient({ baseUrl: server.url, ...opts });

describe('accounts', () => {
  test('register signs in and returns the private user', async () => {
    const client = newClient();
    const email = uniqueEmail('ada');
    const user = await client.auth.register({ email, password: PASSWORD, display_name: 'Ada' });
    assert.equal(user.email, email);
    assert.equal(user.display_name, 'Ada');
    assert.equal(client.user.id, user.id);
    const me = await client.users.me();
    assert.equal(me.id, user.id);
    const pub = await client.users.get(user.id);
    assert.equal(pub.display_name, 'Ada');
    assert.equal(pub.email, undefined, 'a public profile never carries the email');
    client.close();
  });

  test('profile edits round-trip (skills offered / wanted)', async () => {
    const client = newClient();
    await client.auth.register({ email: uniqueEmail('prof'), password: PASSWORD, display_name: 'Prof' });
    const updated = await client.users.updateMe({
      bio: 'I teach Python', skills_offered: [{ name: 'Python', level: 'expert' }],
      skills_wanted: [{ name: 'Guitar', level: 'beginner' }],
    });
    assert.equal(updated.bio, 'I teach Python');
    assert.deepEqual(updated.skills_offered, [{ name: 'Python', level: 'expert' }]);
    assert.deepEqual((await client.users.me()).skills_wanted, [{ name: 'Guitar', level: 'beginner' }]);
    client.close();
  });

  test('login after register; wrong password maps to invalid_credentials', async () => {
    const email = uniqueEmail('bob');
    const a = newClient();
    await a.auth.register({ email, password: PASSWORD, display_name: 'Bob' });
    const b = newClient();
    const user = await b.auth.login({ email: email.toUpperCase(), password: PASSWORD });
    assert.equal(user.id, a.user.id, 'emails compare case-insensitively');
    const c = newClient();
    await assert.rejects(c.auth.login({ email, password: 'wrong password!!' }), (err) => {
      assert.ok(err instanceof ApiError);
      assert.equal(err.code, 'invalid_credentials');
      assert.equal(err.status, 401);
      assert.ok(err.requestId, 'the request id is carried');
      return true;
    });
    a.close(); b.close(); c.close();
  });

  test('duplicate email is email_taken (409); bad input is validation_error with field details', async () => {
    const email = uniqueEmail('dup');
    const a = newClient();
    await a.auth.register({ email, password: PASSWORD, display_name: 'Dup' });
    await assert.rejects(newClient().auth.register({ email, password: PASSWORD, display_name: 'Dup2' }),
      (err) => err instanceof ApiError && err.code === 'email_taken' && err.status === 409);
    await assert.rejects(newClient().auth.register({ email: 'not-an-email', password: PASSWORD, display_name: 'X' }),
      (err) => {
        assert.equal(err.code, 'validation_error');
        assert.equal(err.status, 400);
        assert.ok(Array.isArray(err.details) && err.details.some((d) => d.field === 'email'), JSON.stringify(err.details));
        return true;
      });
    a.close();
  });

  test('calls before signing in fail with not_signed_in; a bad token maps to unauthorized', async () => {
    const client = newClient();
    await assert.rejects(client.users.me(), (err) => err.code === 'not_signed_in' && err.status === 0);
    const res = await fetch(`${server.url}/api/v1/users/me`, { headers: { Authorization: 'Bearer nope' } });
    const err = await ApiError.fromResponse(res);
    assert.equal(err.status, 401);
    assert.ok(['unauthorized', 'token_revoked', 'token_expired'].includes(err.code));
    assert.equal(ErrorCodes[err.code], 401);
  });

  test('unknown resources map to not_found', async () => {
    const client = newClient();
    await client.auth.register({ email: uniqueEmail('nf'), password: PASSWORD, display_name: 'NF' });
    await assert.rejects(client.users.get('000000000000000000000000'),
      (err) => err.code === 'not_found' && err.status === 404);
    client.close();
  });

  test('access tokens are refreshed before expiry, and again on token_expired', async () => {
    // A: the timer refreshes shortly before expiry.
    const a = newClient();
    await a.auth.register({ email: uniqueEmail('ttl'), password: PASSWORD, display_name: 'TTL' });
    const refreshes = [];
    a.on('tokens', (e) => refreshes.push(e.reason));
    const firstToken = a.session.accessToken;

    // B: its timer is off and it believes its token is good: the server's
    // token_expired must trigger a refresh and a transparent retry.
    const b = newClient();
    await b.auth.register({ email: uniqueEmail('ttl2'), password: PASSWORD, display_name: 'TTL2' });
    b.session.dispose();
    b.session.expiresAt = Date.now() + 3_600_000;
    const bToken = b.session.accessToken;

    await new Promise((r) => setTimeout(r, (ACCESS_TOKEN_TTL_S + SERVER_LEEWAY_S + 1.5) * 1000));
    assert.ok(refreshes.includes('refresh'), 'A refreshed by itself');
    assert.notEqual(a.session.accessToken, firstToken);
    assert.equal((await a.users.me()).id, a.user.id);

    const raw = await fetch(`${server.url}/api/v1/users/me`, { headers: { Authorization: `Bearer ${bToken}` } });
    assert.equal((await ApiError.fromResponse(raw)).code, 'token_expired', 'B\'s old token really expired');
    assert.equal((await b.users.me()).id, b.user.id, 'B recovered through a refresh');
    assert.notEqual(b.session.accessToken, bToken);
    a.close(); b.close();
  });

  test('concurrent calls on a stale token share one refresh (a refresh token works once)', async () => {
    const client = newClient();
    await client.auth.register({ email: uniqueEmail('conc'), password: PASSWORD, display_name: 'Conc' });
    client.session.expiresAt = Date.now(); // stale now
    let refreshes = 0;
    client.on('tokens', (e) => { if (e.reason === 'refresh') refreshes += 1; });
    const results = await Promise.all([client.users.me(), client.users.me(), client.users.me()]);
    assert.equal(results.length, 3);
    assert.equal(refreshes, 1);
    client.close();
  });

  test('reusing a refresh token revokes the session (token_revoked) and the SDK signs out', async () => {
    const client = newClient();
    await client.auth.register({ email: uniqueEmail('reuse'), password: PASSWORD, display_name: 'Reuse' });
    const stolen = client.session.refreshToken;
    await client.auth.refresh(); // uses `stolen` once
    const res = await fetch(`${server.url}/api/v1/auth/refresh`, {
      method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ refresh_token: stolen }),
    });
    assert.equal((await ApiError.fromResponse(res)).code, 'token_revoked');
    const signedOut = new Promise((r) => client.once('signedout', r));
    client.on('error', () => {});
    await assert.rejects(client.auth.refresh(), (err) => err.status === 401);
    assert.ok(['token_revoked', 'unauthorized'].includes((await signedOut).reason));
    assert.equal(client.session.signedIn, false);
  });

  test('logout revokes the session at once', async () => {
    const client = newClient();
    await client.auth.register({ email: uniqueEmail('out'), password: PASSWORD, display_name: 'Out' });
    const token = client.session.accessToken;
    const signedOut = new Promise((r) => client.once('signedout', r));
    await client.auth.logout();
    assert.equal((await signedOut).reason, 'logout');
    assert.equal(client.session.signedIn, false);
    const res = await fetch(`${server.url}/api/v1/users/me`, { headers: { Authorization: `Bearer ${token}` } });
    assert.equal(res.status, 401);
    assert.equal((await ApiError.fromResponse(res)).code, 'token_revoked');
  });

  test('a stored refresh token resumes the session in a new client', async () => {
    const store = new Map();
    const storage = { getItem: (k) => store.get(k) ?? null, setItem: (k, v) => store.set(k, v), removeItem: (k) => store.delete(k) };
    const a = newClient({ storage });
    const user = await a.auth.register({ email: uniqueEmail('res'), password: PASSWORD, display_name: 'Res' });
    a.session.dispose();
    const b = newClient({ storage });
    const resumed = await b.auth.resume();
    assert.equal(resumed.id, user.id);
    assert.equal((await b.users.me()).id, user.id);
    assert.equal(await newClient().auth.resume(), null, 'nothing to resume without a token');
    b.close();
  });
});
