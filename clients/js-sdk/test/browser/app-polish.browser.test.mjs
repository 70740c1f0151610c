// Polish in the web app: a favicon (no console error on any page), human
// validation messages, "No results" for an empty search, "No answer" for
// the caller of a missed call.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, uniqueEmail, PASSWORD } from '../support/server.mjs';
import { openBrowser } from './support.mjs';
import { signUp, publishListing, requestListing, acceptRequest } from './app-steps.mjs';

let server;
let ada;
let bob;
const LISTING = 'Knitting socks';

before(async () => {
  server = await startServer({ SKILLSHARE_CALL_RING_TIMEOUT: '8' });
  ada = await openBrowser('ada-polish');
  bob = await openBrowser('bob-polish');
});

after(async () => {
  await ada?.close();
  await bob?.close();
  await server?.stop();
});

describe('polish', () => {
  test('every page has a favicon: no failed load, no console error', async () => {
    for (const path of ['/', '/verify-email?token=x', '/reset-password?token=x', '/docs']) {
      await ada.page.goto(`${server.url}${path}`);
      await ada.page.waitForLoadState('networkidle');
      const icon = await ada.page.evaluate(() => document.querySelector('link[rel~=icon]')?.href);
      assert.ok(icon, `${path} names its icon`);
      assert.equal((await fetch(icon)).status, 200, `${path}: the icon loads`);
    }
    assert.deepEqual(ada.problems, []);
  });

  test('validation messages are sentences about the form\'s fields', async () => {
    const { page } = ada;
    await page.goto(`${server.url}/`);
    await page.fill('#signup-form [name=display_name]', '   ');
    await page.fill('#signup-form [name=email]', uniqueEmail('blank'));
    await page.fill('#signup-form [name=password]', PASSWORD);
    await page.click('#signup-form button[type=submit]');
    const error = page.locator('#signup-form .form-error');
    await error.getByText('Name is required.').waitFor();
    assert.doesNotMatch(await error.textContent(), /display_name|String should/);
    ada.problems.length = 0; // the refused sign-up is a 400 on purpose
  });

  test('an empty search says "No results"', async () => {
    await signUp(ada, server.url, 'Ada');
    await publishListing(ada, server.url, LISTING);
    await ada.page.fill('#search-form [name=q]', 'underwater basket weaving');
    await ada.page.click('#search-form button[type=submit]');
    await ada.page.locator('#listings li', { hasText: 'No results' }).waitFor();
    assert.equal(await ada.page.locator('#listings li', { hasText: 'Be the first' }).count(), 0);
  });

  test('a contact who is already online shows "online" when the chat opens', async () => {
    await signUp(bob, server.url, 'Bob');
    await requestListing(bob, server.url, LISTING);
    await acceptRequest(ada, server.url, LISTING);
    await bob.page.goto(`${server.url}/#/chat`);
    await bob.page.waitForFunction(() => document.getElementById('conn-state').textContent === 'live');
    // Bob stays connected from here on: Ada's page learns his status only
    // from its own subscription's answer, never from an event.
    await ada.page.reload();
    await ada.page.waitForFunction(() => document.getElementById('chat-presence').textContent === 'online',
      null, { timeout: 10_000 });
  });

  test('an unanswered call tells the caller "No answer"', async () => {
    await ada.page.click('#call-start');
    await bob.page.waitForSelector('#incoming-call:not([hidden])', { timeout: 10_000 });
    await ada.page.waitForSelector('#call-view', { state: 'hidden', timeout: 30_000 });
    assert.equal(await ada.page.textContent('#banner-text'), 'No answer.');
    await bob.page.waitForSelector('#incoming-call', { state: 'hidden' });
    assert.equal(await bob.page.textContent('#banner-text'), 'Missed call.');
  });
});
