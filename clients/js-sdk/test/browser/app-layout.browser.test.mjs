// The web app's layout on a 390×844 phone and at desktop size: long
// unbroken words in chat wrap, every view fits the phone without sideways
// scrolling, the controls people need stay on screen. Screenshots of each
// view land in test-results/browser/.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from '../support/server.mjs';
import { openBrowser } from './support.mjs';
import {
  PHONE, signUp, publishListing, requestListing, acceptRequest, sendMessage,
  sidewaysOverflow, assertOnScreen, checkView,
} from './app-steps.mjs';

let server;
let ada; // on a phone
let bob; // at desktop size, then on a phone
const LISTING = 'Ink drawing for beginners';
const LONG_WORD = 'a'.repeat(3000);
const LONG_URL = `https://example.com/${'path-segment/'.repeat(200)}end`;
const DESKTOP = { width: 1200, height: 800 };

before(async () => {
  server = await startServer();
  ada = await openBrowser('ada-phone', { viewport: PHONE });
  bob = await openBrowser('bob-desktop', { viewport: DESKTOP });
});

after(async () => {
  await ada?.close();
  await bob?.close();
  await server?.stop();
});

const NAV = ['browse', 'requests', 'matches', 'chat', 'profile'].map((v) => `#nav a[data-view=${v}]`);

describe('web app layout', () => {
  test('the sign-in page fits a phone', async () => {
    await ada.page.goto(`${server.url}/`);
    await ada.page.waitForSelector('#view-auth:not([hidden])');
    await checkView(ada, 'phone-auth');
    await assertOnScreen(ada.page, ['#signin-form button[type=submit]'], 'on the phone');
  });

  test('two people meet: a listing, a request, a chat', async () => {
    await signUp(ada, server.url, 'Ada');
    await signUp(bob, server.url, 'Bob');
    await publishListing(ada, server.url, LISTING);
    await requestListing(bob, server.url, LISTING);
    await acceptRequest(ada, server.url, LISTING);
    await bob.page.goto(`${server.url}/#/chat`);
    await bob.page.locator('#rooms li', { hasText: 'Ada' }).click();
    await bob.page.waitForSelector('#chat-room:not([hidden])');
  });

  test('a long unbroken word and URL wrap in chat; Send and Video call stay on screen', async () => {
    await sendMessage(bob, LONG_WORD);
    await sendMessage(bob, LONG_URL);
    await ada.page.locator('#messages li', { hasText: 'path-segment' }).waitFor();
    for (const [user, where] of [[bob, 'at desktop size'], [ada, 'on the phone']]) {
      assert.ok(await sidewaysOverflow(user.page) <= 0, `no sideways scrolling ${where}`);
      const widest = await user.page.$$eval('#messages li', (els) => Math.max(...els.map((e) => e.scrollWidth - e.clientWidth)));
      assert.ok(widest <= 0, `every message fits its bubble ${where} (overflow ${widest}px)`);
      await assertOnScreen(user.page, ['#composer button[type=submit]', '#call-start', '#composer [name=body]'], where);
    }
    await checkView(bob, 'desktop-chat-long-word');
    await checkView(ada, 'phone-chat-long-word');
    await bob.page.setViewportSize(PHONE);
    assert.ok(await sidewaysOverflow(bob.page) <= 0, 'no sideways scrolling on the phone');
    await assertOnScreen(bob.page, ['#composer button[type=submit]', '#call-start'], 'on the phone');
  });

  for (const view of ['browse', 'requests', 'matches', 'chat', 'profile']) {
    test(`the ${view} view fits the phone: nav, Sign out and its controls on screen`, async () => {
      const { page } = ada;
      await page.goto(`${server.url}/#/${view}`);
      await page.waitForSelector(`#view-${view}:not([hidden])`);
      await page.waitForLoadState('networkidle');
      await assertOnScreen(page, [...NAV, '#signout', '#conn-state'], `in ${view}`);
      if (view === 'browse') {
        await assertOnScreen(page, ['#search-form [name=q]', '#search-form button[type=submit]'], 'in browse');
        const width = (await page.locator('#search-form [name=q]').boundingBox()).width;
        assert.ok(width >= 200, `the search box is usable (${width}px wide)`);
      }
      if (view === 'chat') {
        await page.locator('#rooms li', { hasText: 'Bob' }).click();
        await page.waitForSelector('#chat-room:not([hidden])');
        await assertOnScreen(page, ['#composer button[type=submit]', '#call-start'], 'in a conversation');
      }
      await checkView(ada, `phone-${view}`);
    });
  }

  test('a public profile fits the phone', async () => {
    const { page } = ada;
    await page.goto(`${server.url}/#/browse`);
    await page.locator('#listings li', { hasText: LISTING }).getByRole('link', { name: 'Ada' }).click();
    await page.locator('#user-listings li', { hasText: LISTING }).waitFor();
    await assertOnScreen(page, [...NAV, '#signout'], 'on a profile');
    await checkView(ada, 'phone-user-profile');
  });

  test('on the phone the incoming call offers Accept and Decline, the caller can hang up', async () => {
    await ada.page.goto(`${server.url}/#/chat`);
    await ada.page.locator('#rooms li', { hasText: 'Bob' }).click();
    await ada.page.waitForFunction(() => document.getElementById('chat-presence').textContent === 'online');
    await ada.page.click('#call-start');
    await ada.page.waitForSelector('#call-view:not([hidden])');
    await assertOnScreen(ada.page, ['#call-hangup'], 'while calling on the phone');
    await bob.page.waitForSelector('#incoming-call:not([hidden])', { timeout: 10_000 });
    await assertOnScreen(bob.page, ['#incoming-accept', '#incoming-reject'], 'in the incoming call on the phone');
    await checkView(bob, 'phone-incoming-call');
    await checkView(ada, 'phone-calling');
    await bob.page.click('#incoming-reject');
    await ada.page.waitForSelector('#call-view', { state: 'hidden', timeout: 10_000 });
  });

  test('on the phone the one who answered can hang up', async () => {
    if (await ada.page.isVisible('#banner')) await ada.page.click('#banner-close');
    await ada.page.click('#call-start');
    await bob.page.waitForSelector('#incoming-call:not([hidden])', { timeout: 10_000 });
    await bob.page.click('#incoming-accept');
    await bob.page.waitForSelector('#call-view:not([hidden])');
    await assertOnScreen(bob.page, ['#call-hangup'], 'in an answered call on the phone');
    await checkView(bob, 'phone-in-call');
    await bob.page.click('#call-hangup');
    await ada.page.waitForSelector('#call-view', { state: 'hidden', timeout: 10_000 });
  });
});
