// Live updates in the web app: requests and conversations appear without a
// reload, messages sent while one was offline appear after reconnecting,
// only what is on screen in a visible tab is marked read, the header and the
// other person's presence tell the truth about one's own connection, and
// drafts survive a reload.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, waitFor } from '../support/server.mjs';
import { openBrowser } from './support.mjs';
import { signUp, publishListing, requestListing, sendMessage } from './app-steps.mjs';

let server;
let ada; // teaches
let bob; // learns
const FIRST = 'Origami cranes';
const SECOND = 'Origami boxes';

before(async () => {
  server = await startServer();
  ada = await openBrowser('ada-live');
  bob = await openBrowser('bob-live');
});

after(async () => {
  await ada?.close();
  await bob?.close();
  await server?.stop();
});

/** Navigates inside the app (no reload): clicks the nav link. */
async function nav(user, view) {
  await user.page.click(`#nav a[data-view=${view}]`);
  await user.page.waitForSelector(`#view-${view}:not([hidden])`);
}

/** The unread count the server keeps for the user's only room. */
function serverUnread(user) {
  return user.page.evaluate(async () => (await window.skillshareApp.client.rooms.list()).items[0].unread_count);
}

/** Makes the tab hidden or visible the way a browser does (visibilityState + visibilitychange). */
function setTabVisible(user, visible) {
  return user.page.evaluate((v) => {
    Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => (v ? 'visible' : 'hidden') });
    Object.defineProperty(document, 'hidden', { configurable: true, get: () => !v });
    document.dispatchEvent(new Event('visibilitychange'));
  }, visible);
}

describe('live updates', () => {
  test('a new request appears on the teacher\'s open Requests page', async () => {
    await signUp(ada, server.url, 'Ada');
    await signUp(bob, server.url, 'Bob');
    await publishListing(ada, server.url, FIRST);
    await publishListing(ada, server.url, SECOND);
    await nav(ada, 'requests');
    await requestListing(bob, server.url, FIRST, 'Cranes please');
    await ada.page.locator('#requests-incoming li', { hasText: 'Cranes please' }).waitFor({ timeout: 10_000 });
    await requestListing(bob, server.url, SECOND, 'Boxes too');
    await ada.page.locator('#requests-incoming li', { hasText: 'Boxes too' }).waitFor({ timeout: 10_000 });
  });

  test('the learner\'s chat list gets the conversation the moment the teacher accepts', async () => {
    await nav(bob, 'chat');
    assert.equal(await bob.page.locator('#rooms li').count(), 0);
    await ada.page.locator('#requests-incoming li', { hasText: 'Cranes please' }).getByRole('button', { name: 'Accept' }).click();
    await ada.page.waitForURL(/#\/chat\/.+/);
    await bob.page.locator('#rooms li', { hasText: 'Ada' }).waitFor({ timeout: 10_000 });
  });

  test('the learner\'s Requests page shows the acceptance without a reload', async () => {
    await nav(bob, 'requests');
    const item = bob.page.locator('#requests-outgoing li', { hasText: SECOND });
    await item.getByText('pending').waitFor();
    await nav(ada, 'requests');
    await ada.page.locator('#requests-incoming li', { hasText: 'Boxes too' }).getByRole('button', { name: 'Accept' }).click();
    await item.getByText('accepted').waitFor({ timeout: 10_000 });
  });

  test('while one\'s connection is down the header says so and the other person is not shown online', async () => {
    await nav(ada, 'chat');
    await ada.page.locator('#rooms li', { hasText: 'Bob' }).click();
    await nav(bob, 'chat');
    await bob.page.locator('#rooms li', { hasText: 'Ada' }).click();
    await ada.page.waitForFunction(() => document.getElementById('chat-presence').textContent === 'online');
    assert.equal(await ada.page.textContent('#conn-state'), 'live');
    await ada.page.evaluate(() => window.skillshareApp.client.disconnect());
    await ada.page.waitForFunction(() => document.getElementById('conn-state').textContent === 'offline');
    assert.notEqual(await ada.page.textContent('#chat-presence'), 'online');
    assert.ok(await ada.page.isDisabled('#call-start'), 'no call while offline');
  });

  test('messages sent while one was offline appear after reconnecting, in order', async () => {
    await sendMessage(bob, 'Sent while you were away (1)');
    await sendMessage(bob, 'Sent while you were away (2)');
    await ada.page.evaluate(() => window.skillshareApp.client.connect());
    await ada.page.waitForFunction(() => document.getElementById('conn-state').textContent === 'live');
    await ada.page.locator('#messages li', { hasText: 'Sent while you were away (2)' }).waitFor({ timeout: 10_000 });
    const texts = await ada.page.$$eval('#messages li', (els) => els.map((e) => e.firstChild.textContent));
    assert.deepEqual(texts.filter((t) => /away/.test(t)), ['Sent while you were away (1)', 'Sent while you were away (2)']);
    await ada.page.waitForFunction(() => document.getElementById('chat-presence').textContent === 'online');
  });

  test('messages that arrive in another view stay unread, also after a reload', async () => {
    // both earlier messages stored and read (the list's count is over stored messages)
    await waitFor(async () => {
      const [room] = await ada.page.evaluate(async () => (await window.skillshareApp.client.rooms.list()).items);
      return room.last_message && room.last_message.seq === 2 && room.read_seq === 2 && room.unread_count === 0;
    }, { what: 'Ada has read both messages', timeoutMs: 10_000 });
    await nav(ada, 'browse');
    await sendMessage(bob, 'Are you there?');
    await ada.page.waitForFunction(() => document.getElementById('nav-unread').textContent === '1');
    await ada.page.reload();
    await ada.page.waitForSelector('#conn-state.connected');
    const rooms = await ada.page.evaluate(async () => (await window.skillshareApp.client.rooms.list()).items);
    assert.equal(rooms[0].unread_count, 1, `one unread message: ${JSON.stringify(rooms)}`);
    await ada.page.waitForFunction(() => document.getElementById('nav-unread').textContent === '1');
  });

  test('in a hidden tab nothing is marked read; on return what is on screen is', async () => {
    await ada.page.goto(`${server.url}/#/chat`);
    await ada.page.locator('#rooms li', { hasText: 'Bob' }).click();
    await ada.page.locator('#messages li', { hasText: 'Are you there?' }).waitFor();
    await waitFor(async () => await serverUnread(ada) === 0, { what: 'the room read', timeoutMs: 10_000 });
    await setTabVisible(ada, false);
    await sendMessage(bob, 'Hello, hidden tab');
    await ada.page.locator('#messages li', { hasText: 'Hello, hidden tab' }).waitFor();
    await ada.page.waitForTimeout(1000); // a read would have been sent by now
    assert.equal(await serverUnread(ada), 1, 'not read while the tab is hidden');
    await setTabVisible(ada, true);
    await waitFor(async () => await serverUnread(ada) === 0, { what: 'read on return', timeoutMs: 10_000 });
  });

  test('a draft survives a reload', async () => {
    await ada.page.fill('#composer [name=body]', 'Half a thought');
    await ada.page.reload();
    await ada.page.waitForSelector('#chat-room:not([hidden])');
    await ada.page.waitForFunction(() => document.querySelector('#composer [name=body]').value === 'Half a thought');
    await sendMessage(ada, 'Half a thought');
    await ada.page.reload();
    await ada.page.waitForSelector('#chat-room:not([hidden])');
    assert.equal(await ada.page.inputValue('#composer [name=body]'), '', 'a sent draft is gone');
  });
});
