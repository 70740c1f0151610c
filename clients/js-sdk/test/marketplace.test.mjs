// Marketplace through the SDK: listings, search, requests, accept -> room,
// matches, pagination.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { SkillShareClient } from '../src/index.js';
import { PASSWORD, startServer, uniqueEmail } from './support/server.mjs';

let server;
const clients = [];
before(async () => { server = await startServer(); });
after(async () => { for (const c of clients) c.close(); await server?.stop(); });

async function signedIn(name, profile = {}) {
  const client = new SkillShareClient({ baseUrl: server.url });
  clients.push(client);
  await client.auth.register({ email: uniqueEmail(name), password: PASSWORD, display_name: name });
  if (Object.keys(profile).length) await client.users.updateMe(profile);
  return client;
}

describe('marketplace', () => {
  test('create, search, request, accept opens a room both can use', async () => {
    const teacher = await signedIn('Teacher');
    const learner = await signedIn('Learner');
    const listing = await teacher.skills.create({
      title: 'Sourdough bread from scratch', description: 'Starter, folding, baking.',
      category: 'cooking', tags: ['bread', 'baking'], level: 'beginner', mode: 'online',
    });
    assert.equal(listing.owner.id, teacher.user.id);
    const found = await learner.skills.list({ q: 'sourdough' });
    assert.ok(found.items.some((l) => l.id === listing.id), 'search finds it');
    const request = await learner.skills.request(listing.id, 'Teach me please');
    assert.equal(request.status, 'pending');
    const incoming = await teacher.requests.list({ role: 'incoming', status: 'pending' });
    assert.ok(incoming.items.some((r) => r.id === request.id));
    const accepted = await teacher.requests.accept(request.id);
    assert.equal(accepted.status, 'accepted');
    assert.ok(accepted.room_id, 'accepting opens a direct room');
    const rooms = await learner.rooms.list();
    assert.ok(rooms.items.some((r) => r.id === accepted.room_id));
    const again = await learner.rooms.direct(teacher.user.id);
    assert.equal(again.id, accepted.room_id, 'one direct room per pair');
  });

  test('only the owner may edit a listing (forbidden)', async () => {
    const owner = await signedIn('Owner');
    const other = await signedIn('Other');
    const listing = await owner.skills.create({ title: 'Chess openings', category: 'other' });
    await assert.rejects(other.skills.update(listing.id, { title: 'Mine now' }), (err) => err.code === 'forbidden' && err.status === 403);
    const updated = await owner.skills.update(listing.id, { title: 'Chess openings for club players' });
    assert.equal(updated.title, 'Chess openings for club players');
  });

  test('paginate walks listings by cursor without repeats', async () => {
    const owner = await signedIn('Prolific');
    const ids = [];
    for (let i = 0; i < 5; i += 1) ids.push((await owner.skills.create({ title: `Lesson number ${i}`, category: 'music' })).id);
    const seen = [];
    for await (const l of owner.paginate((q) => owner.skills.list(q), { owner: owner.user.id, limit: 2 })) seen.push(l.id);
    assert.deepEqual([...seen].sort(), [...ids].sort());
  });

  test('matches pair offered with wanted skills', async () => {
    const a = await signedIn('Ana', { skills_offered: [{ name: 'Spanish', level: 'expert' }], skills_wanted: [{ name: 'Rust', level: 'beginner' }] });
    const b = await signedIn('Ben', { skills_offered: [{ name: 'Rust', level: 'advanced' }], skills_wanted: [{ name: 'Spanish', level: 'beginner' }] });
    const matches = await a.matches.list();
    const m = matches.items.find((x) => x.user.id === b.user.id);
    assert.ok(m, 'Ben is a match for Ana');
    assert.ok(m.score > 0);
    assert.ok(m.reason);
  });
});
