// The bundled web app in two real Chromium profiles against a real server:
// sign up, publish a listing, request it, accept, chat both ways with typing
// and unread counts, then a video call whose remote video decodes frames.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, uniqueEmail, PASSWORD } from '../support/server.mjs';
import { openBrowser } from './support.mjs';

let server;
let ada;
let bob;
const LISTING = 'Watercolour painting basics';

before(async () => {
  server = await startServer();
  ada = await openBrowser('ada');
  bob = await openBrowser('bob');
});

after(async () => {
  await ada?.close();
  await bob?.close();
  await server?.stop();
});

/** Browser-side problems a working app does not have (a missing favicon is fine). */
const unexpected = (problem) => !/ \/favicon\.ico$/.test(problem);

async function signUp(user, name) {
  const { page } = user;
  await page.goto(`${server.url}/`);
  await page.fill('#signup-form [name=display_name]', name);
  await page.fill('#signup-form [name=email]', uniqueEmail(name.toLowerCase()));
  await page.fill('#signup-form [name=password]', PASSWORD);
  await page.click('#signup-form button[type=submit]');
  await page.waitForSelector('#view-profile:not([hidden])');
  await page.waitForSelector('#conn-state.connected', { timeout: 10_000 });
  assert.equal(await page.textContent('#me-name'), name);
}

/** Frames decoded by the remote <video> over an interval. */
async function remoteVideoProgress(page, intervalMs = 1500) {
  const sample = () => page.evaluate(async () => {
    const v = document.getElementById('remote-video');
    let framesDecoded = 0;
    const call = window.skillshareApp.call;
    if (call) {
      (await call.getStats()).forEach((s) => {
        if (s.type === 'inbound-rtp' && s.kind === 'video') framesDecoded += s.framesDecoded || 0;
      });
    }
    return { width: v.videoWidth, time: v.currentTime, framesDecoded, path: call && call.path };
  });
  const first = await sample();
  await page.waitForTimeout(intervalMs);
  return { first, second: await sample() };
}

describe('web app', () => {
  test('two users sign up', async () => {
    await signUp(ada, 'Ada');
    await signUp(bob, 'Bob');
    assert.deepEqual(ada.problems.filter(unexpected), []);
    assert.deepEqual(bob.problems.filter(unexpected), []);
  });

  test('Ada edits her profile and publishes a listing', async () => {
    const { page } = ada;
    await page.fill('#offered-name', 'Watercolour');
    await page.selectOption('#offered-level', 'expert');
    await page.click('#offered-add');
    await page.fill('#profile-form [name=bio]', 'Painter and teacher.');
    await page.click('#profile-form button[type=submit]');
    await page.waitForSelector('#banner:not([hidden])');
    assert.match(await page.textContent('#banner-text'), /Profile saved/);
    await page.goto(`${server.url}/#/browse`);
    await page.click('#new-listing-toggle');
    await page.fill('#listing-form [name=title]', LISTING);
    await page.selectOption('#listing-form [name=category]', 'design');
    await page.fill('#listing-form [name=tags]', 'art, painting');
    await page.fill('#listing-form [name=description]', 'Brushes, washes and colour mixing.');
    await page.click('#listing-form button[type=submit]');
    await page.waitForSelector(`#listings li:has-text("${LISTING}")`);
  });

  test('Bob finds it by search and asks to learn', async () => {
    const { page } = bob;
    await page.goto(`${server.url}/#/browse`);
    await page.fill('#search-form [name=q]', 'watercolour');
    await page.click('#search-form button[type=submit]');
    await page.waitForSelector('#listings[aria-busy=false]'); // the search's answer, not the first page's
    const card = page.locator('#listings li', { hasText: LISTING });
    await card.waitFor();
    await card.getByRole('button', { name: 'Request to learn' }).click();
    await card.locator('input').fill('I would love to learn washes.');
    await card.getByRole('button', { name: 'Send' }).click();
    await card.getByText('Request sent').waitFor();
    await page.goto(`${server.url}/#/requests`);
    await page.locator('#requests-outgoing li', { hasText: LISTING }).getByText('pending').waitFor();
  });

  test('Ada accepts the request and lands in the chat room', async () => {
    const { page } = ada;
    await page.goto(`${server.url}/#/requests`);
    const item = page.locator('#requests-incoming li', { hasText: LISTING });
    await item.getByText('I would love to learn washes.').waitFor();
    await item.getByRole('button', { name: 'Accept' }).click();
    await page.waitForURL(/#\/chat\/.+/);
    await page.waitForSelector('#chat-room:not([hidden])');
    assert.equal(await page.textContent('#chat-title'), 'Bob');
  });

  test('they chat both ways, with typing, presence and unread counts', async () => {
    await ada.page.fill('#composer [name=body]', 'Hello Bob, welcome!');
    await ada.page.click('#composer button[type=submit]');
    await ada.page.locator('#messages li.mine:not(.pending)', { hasText: 'Hello Bob, welcome!' }).waitFor();

    // Bob sees the room with one unread message before opening it.
    await bob.page.goto(`${server.url}/#/chat`);
    const roomItem = bob.page.locator('#rooms li', { hasText: 'Ada' });
    await roomItem.waitFor();
    assert.equal((await roomItem.locator('.unread').textContent()).trim(), '1');
    await roomItem.click();
    await bob.page.locator('#messages li', { hasText: 'Hello Bob, welcome!' }).waitFor();
    await bob.page.waitForFunction(() => document.getElementById('chat-presence').textContent === 'online');

    await bob.page.type('#composer [name=body]', 'Thanks Ada');
    await ada.page.waitForFunction(() => /Bob is typing/.test(document.getElementById('typing').textContent));
    await bob.page.click('#composer button[type=submit]');
    await ada.page.locator('#messages li:not(.mine)', { hasText: 'Thanks Ada' }).waitFor();
    await bob.page.locator('#messages li.mine:not(.pending)', { hasText: 'Thanks Ada' }).waitFor();
    assert.equal(await ada.page.textContent('#typing'), '', 'typing cleared by the message');

    const adaSeqs = await ada.page.$$eval('#messages li', (els) => els.map((e) => Number(e.dataset.seq)));
    assert.deepEqual(adaSeqs, [1, 2], 'each message once, in order');
    await ada.screenshot('chat-ada.png');
    await bob.screenshot('chat-bob.png');
    assert.deepEqual(ada.problems.filter(unexpected), []);
    assert.deepEqual(bob.problems.filter(unexpected), []);
  });

  test('a video call connects and the remote video decodes frames on both sides', async () => {
    if (await ada.page.isVisible('#banner')) await ada.page.click('#banner-close');
    await ada.page.click('#call-start');
    // The app shows the call view while ringing, or a banner if the invite failed.
    await ada.page.waitForFunction(() => window.skillshareApp.call || !document.getElementById('banner').hidden);
    assert.ok(await ada.page.evaluate(() => Boolean(window.skillshareApp.call)),
      `the call could not start: ${await ada.page.textContent('#banner-text')}`);
    await ada.page.waitForSelector('#call-view:not([hidden])');
    await bob.page.waitForSelector('#incoming-call:not([hidden])', { timeout: 10_000 });
    assert.match(await bob.page.textContent('#incoming-text'), /Ada is calling you/);
    await bob.page.click('#incoming-accept');
    for (const user of [ada, bob]) {
      await user.page.waitForFunction(() => {
        const v = document.getElementById('remote-video');
        return v.videoWidth > 0 && v.currentTime > 0;
      }, null, { timeout: 20_000 });
      const { first, second } = await remoteVideoProgress(user.page);
      assert.ok(second.width > 0, 'remote video has a size');
      assert.ok(second.time > first.time, `remote video plays (${first.time} -> ${second.time})`);
      assert.ok(second.framesDecoded > first.framesDecoded, `frames decoded (${first.framesDecoded} -> ${second.framesDecoded})`);
      assert.ok(['p2p', 'turn', 'relay'].includes(second.path));
    }
    await ada.screenshot('call-ada.png');
    await bob.page.click('#call-hangup');
    await ada.page.waitForSelector('#call-view', { state: 'hidden', timeout: 10_000 });
  });
});
