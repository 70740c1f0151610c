// Pieces that need no server: options, error mapping, pagination.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ApiError, DEFAULT_OPTIONS, ErrorCodes, SkillShareClient, paginate } from '../src/index.js';

test('options are merged over named defaults; unknown options are refused', () => {
  const client = new SkillShareClient({ baseUrl: 'http://h:1/', ackTimeoutMs: 5 });
  assert.equal(client.options.baseUrl, 'http://h:1');
  assert.equal(client.options.ackTimeoutMs, 5);
  assert.equal(client.options.sendTimeoutMs, DEFAULT_OPTIONS.sendTimeoutMs);
  assert.throws(() => new SkillShareClient({ baseURL: 'x' }), /unknown option "baseURL"/);
  assert.throws(() => new SkillShareClient({ refreshMode: 'local' }), /refreshMode/);
  client.close();
});

test('calls\' iceTransportPolicy is "all" by default, "relay" on request, nothing else', () => {
  assert.equal(DEFAULT_OPTIONS.iceTransportPolicy, 'all');
  const client = new SkillShareClient({ iceTransportPolicy: 'relay' });
  assert.equal(client.options.iceTransportPolicy, 'relay');
  client.close();
  assert.throws(() => new SkillShareClient({ iceTransportPolicy: 'turn' }), /iceTransportPolicy must be "all" or "relay"/);
  assert.equal(ErrorCodes.turn_failed, 0);
});

test('ApiError maps the envelope, Retry-After and non-envelope bodies', async () => {
  const body = { error: { code: 'rate_limited', message: 'slow down', details: { retry_after: 7 }, request_id: 'r1' } };
  const err = await ApiError.fromResponse(new Response(JSON.stringify(body), { status: 429, headers: { 'Retry-After': '7' } }));
  assert.equal(err.code, 'rate_limited');
  assert.equal(err.status, 429);
  assert.equal(err.retryAfter, 7);
  assert.equal(err.requestId, 'r1');
  assert.equal(err.retryable, true);
  const gateway = await ApiError.fromResponse(new Response('<html>bad gateway</html>', { status: 503 }));
  assert.equal(gateway.code, 'unavailable');
  const ack = ApiError.fromAck({ ok: false, error: { code: 'forbidden', message: 'no' } });
  assert.equal(ack.code, 'forbidden');
  assert.equal(ack.status, 403);
  assert.equal(ack.retryable, false);
  for (const code of ['validation_error', 'unauthorized', 'token_expired', 'token_revoked', 'forbidden',
    'email_not_verified', 'not_found', 'conflict', 'email_taken', 'payload_too_large', 'unsupported_media_type',
    'rate_limited', 'internal_error', 'unavailable']) {
    assert.ok(code in ErrorCodes, code);
  }
});

test('paginate walks every page by cursor', async () => {
  const pages = { '': { items: [1, 2], next_cursor: 'a' }, a: { items: [3], next_cursor: 'b' }, b: { items: [4], next_cursor: null } };
  const seen = [];
  for await (const item of paginate(async ({ cursor }) => pages[cursor ?? ''], { limit: 2 })) seen.push(item);
  assert.deepEqual(seen, [1, 2, 3, 4]);
});

test('network failures map to network_error', async () => {
  const client = new SkillShareClient({ baseUrl: 'http://127.0.0.1:9', requestTimeoutMs: 2000 });
  await assert.rejects(client.auth.login({ email: 'a@b.c', password: 'x' }), (err) => err.code === 'network_error' && err.status === 0);
  client.close();
});
