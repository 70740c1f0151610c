// Realtime through the SDK against a real server (CONTRACT §4): connection
// state and auth, chat send/receive, idempotent retries, resume with
// room:sync, typing/read, presence, token hand-over with auth:refresh.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { SkillShareClient, ApiError } from '../src/index.js';
import { PASSWORD, startServer, uniqueEmail, waitFor } from './support/server.mjs';

const ACCESS_TOKEN_TTL_S = 10;
const SERVER_LEEWAY_S = 5;
let server;
const clients = [];

before(async () => {
  server = await startServer({
    SKILLSHARE_ACCESS_TOKEN_TTL: String(ACCESS_TOKEN_TTL_S),
    SKILLSHARE_REGISTER_LIMIT: '100/hour', // more than 30 people in this file
  });
});
after(async () => {
  for (const c of clients) c.close();
  await server?.stop();
});

async function signedIn(name) {
  const client = new SkillShareClient({ baseUrl: server.url, sendRetryDelayMs: 200, ackTimeoutMs: 5000 });
  clients.push(client);
  await client.auth.register({ email: uniqueEmail(name), password: PASSWORD, display_name: name });
  return client;
}

/** Two connected users sharing a direct room, both joined. */
async function pair() {
  const a = await signedIn('alice');
  const b = await signedIn('bob');
  const room = await a.rooms.direct(b.user.id);
  assert.ok(room.id, 'POST /rooms returns the room');
  await Promise.all([a.connect(), b.connect()]);
  await a.chat.join(room.id);
  await b.chat.join(room.id);
  return { a, b, room };
}

/** Collects the `message` events of one room. */
function inbox(client, roomId) {
  const list = [];
  client.on('message', (m) => { if (m.room_id === roomId) list.push(m); });
  return list;
}

describe('connection', () => {
  test('connects with the access token and reports its states', async () => {
    const client = await signedIn('conn');
    const states = [];
    client.on('state', (e) => states.push(e.state));
    await client.connect();
    assert.equal(client.state, 'connected');
    assert.deepEqual(states, ['connecting', 'connected']);
    client.disconnect();
    assert.equal(client.state, 'disconnected');
  });

  test('a bad token is refused with connect_error code unauthorized', async () => {
    const client = await signedIn('bad');
    client.session.accessToken = 'not-a-jwt';
    client.session.expiresAt = Date.now() + 3_600_000;
    client.on('error', () => {});
    await assert.rejects(client.connect(), (err) => err instanceof ApiError && err.code === 'unauthorized');
    assert.equal(client.state, 'disconnected');
  });

  test('emits resolve acks and reject with ApiError on {ok: false}', async () => {
    const client = await signedIn('acks');
    await client.connect();
    await assert.rejects(client.chat.join('000000000000000000000000'),
      (err) => err instanceof ApiError && ['not_found', 'forbidden'].includes(err.code));
    await assert.rejects(client.realtime.request('presence:set', { status: 'sleeping' }),
      (err) => err.code === 'validation_error');
  });

  test('stays connected across access token expiry (refresh + auth:refresh)', async () => {
    const { a, b, room } = await pair();
    const states = [];
    a.on('state', (e) => states.push(e.state));
    const got = inbox(b, room.id);
    await new Promise((r) => setTimeout(r, (ACCESS_TOKEN_TTL_S + SERVER_LEEWAY_S + 2) * 1000));
    assert.deepEqual(states, [], 'no disconnect happened');
    await a.chat.send(room.id, 'still here');
    await waitFor(() => got.some((m) => m.body === 'still here'), { what: 'message after expiry' });
  });

  test('logout-all elsewhere closes this session\'s socket and signs it out', async () => {
    const client = await signedIn('bye');
    await client.connect();
    const other = new SkillShareClient({ baseUrl: server.url });
    clients.push(other);
    await other.auth.login({ email: client.user.email, password: PASSWORD });
    const signedOut = new Promise((r) => client.once('signedout', r));
    client.on('error', () => {});
    await other.auth.logoutAll();
    await signedOut;
    await waitFor(() => client.state === 'disconnected', { what: 'disconnected' });
    assert.equal(client.session.signedIn, false);
  });
});

describe('chat', () => {
  test('a message reaches the other member, and the sender once', async () => {
    const { a, b, room } = await pair();
    const aGot = inbox(a, room.id);
    const bGot = inbox(b, room.id);
    const sent = await a.chat.send(room.id, 'hello bob');
    assert.equal(sent.body, 'hello bob');
    assert.equal(sent.room_id, room.id);
    assert.equal(sent.sender_id, a.user.id);
    assert.equal(typeof sent.seq, 'number');
    await waitFor(() => bGot.length === 1, { what: 'bob receives' });
    assert.equal(bGot[0].id, sent.id);
    assert.equal(bGot[0].seq, sent.seq);
    assert.equal(aGot.length, 1);
    const reply = await b.chat.send(room.id, 'hi alice');
    assert.equal(reply.seq, sent.seq + 1, 'seq is per room, no gaps');
    await waitFor(() => aGot.length === 2, { what: 'alice receives' });
    assert.deepEqual(aGot.map((m) => m.body), ['hello bob', 'hi alice']);
  });

  test('message:send is idempotent on client_id', async () => {
    const { a, b, room } = await pair();
    const bGot = inbox(b, room.id);
    const clientId = randomUUID();
    const first = await a.chat.send(room.id, 'once', { clientId });
    const again = await a.chat.send(room.id, 'once', { clientId });
    assert.equal(again.id, first.id);
    assert.equal(again.seq, first.seq);
    await a.chat.send(room.id, 'marker');
    await waitFor(() => bGot.some((m) => m.body === 'marker'), { what: 'marker' });
    assert.equal(bGot.filter((m) => m.body === 'once').length, 1, 'not broadcast twice');
  });

  test('after a disconnect, room:sync delivers what was missed, once and in order', async () => {
    const { a, b, room } = await pair();
    const bGot = inbox(b, room.id);
    await a.chat.send(room.id, 'm0');
    await waitFor(() => bGot.length === 1, { what: 'm0' });
    b.disconnect();
    for (let i = 1; i <= 5; i += 1) await a.chat.send(room.id, `m${i}`);
    const synced = new Promise((r) => b.once('synced', r));
    await b.connect();
    assert.equal((await synced).count, 5);
    await a.chat.send(room.id, 'm6');
    await waitFor(() => bGot.length === 7, { what: 'all seven' });
    assert.deepEqual(bGot.map((m) => m.body), ['m0', 'm1', 'm2', 'm3', 'm4', 'm5', 'm6']);
    const seqs = bGot.map((m) => m.seq);
    for (let i = 1; i < seqs.length; i += 1) assert.equal(seqs[i], seqs[i - 1] + 1);
  });

  test('a send interrupted by a dropped connection is retried and delivered once', async () => {
    const { a, b, room } = await pair();
    const bGot = inbox(b, room.id);
    const sending = a.chat.send(room.id, 'through the drop');
    a.realtime.socket.io.engine.close(); // the transport dies under the send
    const sent = await sending;
    assert.equal(a.state, 'connected');
    await a.chat.send(room.id, 'after');
    await waitFor(() => bGot.some((m) => m.body === 'after'), { what: 'after' });
    assert.equal(bGot.filter((m) => m.body === 'through the drop').length, 1);
    assert.equal(bGot.find((m) => m.body === 'through the drop').id, sent.id);
  });

  test('a client joining with afterSeq catches up on history', async () => {
    const { a, b, room } = await pair();
    const first = await a.chat.send(room.id, 'h1');
    await a.chat.send(room.id, 'h2');
    const c = new SkillShareClient({ baseUrl: server.url });
    clients.push(c);
    await c.auth.login({ email: b.user.email, password: PASSWORD });
    const got = inbox(c, room.id);
    await c.connect();
    await c.chat.join(room.id, { afterSeq: first.seq - 1 });
    assert.deepEqual(got.map((m) => m.body), ['h1', 'h2']);
    const history = await c.rooms.messages(room.id, { after_seq: 0, limit: 10 });
    assert.ok(history.items.some((m) => m.id === first.id), 'REST history has it too');
  });

  test('typing and read reach the other member', async () => {
    const { a, b, room } = await pair();
    const typing = new Promise((r) => b.on('typing', (t) => { if (t.room_id === room.id) r(t); }));
    await a.chat.typing(room.id, true);
    const t = await typing;
    assert.equal(t.user_id, a.user.id);
    assert.equal(t.typing, true);
    const m = await b.chat.send(room.id, 'read me');
    const read = new Promise((r) => b.on('read', (e) => { if (e.room_id === room.id && e.user_id === a.user.id) r(e); }));
    await a.chat.read(room.id, m.seq);
    assert.equal((await read).seq, m.seq);
  });

  test('invalid sends are rejected with the contract codes', async () => {
    const { a, room } = await pair();
    await assert.rejects(a.chat.send(room.id, ''), (err) => err.code === 'validation_error');
    await assert.rejects(a.chat.send(room.id, 'x'.repeat(4001)), (err) => ['validation_error', 'payload_too_large'].includes(err.code));
    const outsider = await signedIn('outsider');
    await outsider.connect();
    await assert.rejects(outsider.chat.send(room.id, 'let me in'), (err) => ['forbidden', 'not_found'].includes(err.code));
  });

  test('rooms list shows the last message and unread count', async () => {
    const { a, b, room } = await pair();
    await a.chat.send(room.id, 'unread 1');
    await a.chat.send(room.id, 'unread 2');
    const rooms = await b.rooms.list();
    const mine = rooms.items.find((r) => r.id === room.id);
    assert.ok(mine, 'the room is listed');
    assert.equal(mine.unread_count ?? mine.unread, 2);
    assert.equal(mine.last_message.body, 'unread 2');
  });
});

describe('presence', () => {
  test('subscribers see online, then offline within 2 s of a clean disconnect', async () => {
    const a = await signedIn('pa');
    const b = await signedIn('pb');
    await a.rooms.direct(b.user.id); // a relation: b may see a's presence
    await b.connect();
    const before = await b.presence.subscribe([a.user.id]);
    assert.equal(before[a.user.id].status, 'offline');
    const updates = [];
    b.on('presence', (p) => { if (p.user_id === a.user.id) updates.push(p.status); });
    await a.connect();
    await waitFor(() => updates.includes('online'), { timeoutMs: 3000, what: 'online' });
    await a.presence.set('away');
    await waitFor(() => updates.includes('away'), { timeoutMs: 3000, what: 'away' });
    a.disconnect();
    await waitFor(() => updates.at(-1) === 'offline', { timeoutMs: 3000, what: 'offline' });
    assert.equal(b.presence.statusOf(a.user.id), 'offline');
  });
});

describe('consent', () => {
  test('a stranger is hidden; a block refuses messages; unblock restores them', async () => {
    const a = await signedIn('ca');
    const b = await signedIn('cb');
    const stranger = await signedIn('cs');
    await Promise.all([a.connect(), b.connect(), stranger.connect()]);
    const seen = await stranger.presence.subscribe([a.user.id]);
    assert.equal(seen[a.user.id], undefined);
    assert.ok(stranger.presence.hidden.has(a.user.id));

    const room = await a.rooms.direct(b.user.id);
    await b.rooms.direct(a.user.id);
    const blocked = await b.users.block(a.user.id);
    assert.equal(blocked.user_id, a.user.id);
    const list = await b.users.blocks();
    assert.deepEqual(list.items.map((x) => x.user_id), [a.user.id]);
    await assert.rejects(a.chat.send(room.id, 'hello?'), (err) => err.code === 'blocked' && err.status === 403);
    await b.users.unblock(a.user.id);
    const sent = await a.chat.send(room.id, 'hello again');
    assert.equal(sent.body, 'hello again');
  });

  test('a member leaves a group; the others are told', async () => {
    const a = await signedIn('ga');
    const b = await signedIn('gb');
    await b.rooms.direct(a.user.id); // b lets a add them to groups
    const room = await a.rooms.group('study', [b.user.id]);
    await a.connect();
    const left = [];
    a.on('member_left', (e) => left.push(e));
    await b.rooms.leave(room.id);
    await waitFor(() => left.length === 1, { timeoutMs: 3000, what: 'member_left' });
    assert.deepEqual(left[0], { room_id: room.id, user_id: b.user.id });
    await assert.rejects(b.rooms.messages(room.id), (err) => err.code === 'forbidden');
    const stranger = await signedIn('gs');
    await assert.rejects(a.rooms.addMembers(room.id, [stranger.user.id]), (err) => err.code === 'not_a_contact');
  });
});
