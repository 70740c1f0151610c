// The web app's error boundary (an uncaught error or unhandled rejection
// shows a recoverable message and is reported to the server) and its
// accessibility: keyboard-only sign-in and navigation with visible focus,
// axe-core on every view with no serious or critical violation.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { startServer, uniqueEmail, PASSWORD, waitFor } from '../support/server.mjs';
import { openBrowser } from './support.mjs';
import { signUp, publishListing, requestListing, acceptRequest } from './app-steps.mjs';

// evaluated through the devtools protocol: the app's CSP (script-src 'self') stays on
const AXE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

let server;
let ada;
let bob;
let bobEmail;
const LISTING = 'Sourdough baking';

before(async () => {
  server = await startServer({ SKILLSHARE_LOG_LEVEL: 'WARNING' });
  ada = await openBrowser('ada-a11y');
  bob = await openBrowser('bob-a11y');
});

after(async () => {
  await ada?.close();
  await bob?.close();
  await server?.stop();
});

/** axe-core's serious and critical violations on the page as it is. */
async function seriousViolations(page) {
  await page.evaluate(AXE);
  const result = await page.evaluate(async () => window.axe.run(document, { resultTypes: ['violations'] }));
  return result.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.id} (${v.impact}): ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(', ')}`);
}

/** Presses Tab until the focused element matches, as a keyboard user would. */
async function tabTo(page, selector, maxTabs = 40) {
  for (let i = 0; i < maxTabs; i += 1) {
    await page.keyboard.press('Tab');
    if (await page.evaluate((s) => document.activeElement && document.activeElement.matches(s), selector)) return;
  }
  throw new Error(`Tab never reached ${selector}`);
}

/** The focused element's outline, which must be visible. */
function focusOutline(page) {
  return page.evaluate(() => {
    const style = getComputedStyle(document.activeElement);
    return { style: style.outlineStyle, width: parseFloat(style.outlineWidth) };
  });
}

describe('error boundary and accessibility', () => {
  test('signing up and in works with the keyboard alone, focus always visible', async () => {
    await signUp(ada, server.url, 'Ada');
    await publishListing(ada, server.url, LISTING);
    bobEmail = uniqueEmail('bob');
    const { page } = bob;
    await page.goto(`${server.url}/`);
    await page.waitForSelector('#view-auth:not([hidden])');
    await tabTo(page, '#signup-form [name=display_name]');
    await page.keyboard.type('Bob');
    await page.keyboard.press('Tab');
    await page.keyboard.type(bobEmail);
    await page.keyboard.press('Tab');
    await page.keyboard.type(PASSWORD);
    await page.keyboard.press('Tab');
    assert.ok(await page.evaluate(() => document.activeElement.matches('#signup-form button[type=submit]')));
    const outline = await focusOutline(page);
    assert.ok(outline.style !== 'none' && outline.width >= 2, `focus is visible: ${JSON.stringify(outline)}`);
    await page.keyboard.press('Enter');
    await page.waitForSelector('#view-profile:not([hidden])');
    await page.waitForSelector('#conn-state.connected');
  });

  test('a learner finds, requests and chats with the keyboard alone', async () => {
    const { page } = bob;
    await tabTo(page, '#nav a[data-view=browse]');
    await page.keyboard.press('Enter');
    await page.waitForSelector('#view-browse:not([hidden])');
    await tabTo(page, '#search-form [name=q]');
    await page.keyboard.type('sourdough');
    await page.keyboard.press('Enter');
    await page.waitForSelector('#listings[aria-busy=false]');
    await tabTo(page, '#listings li button.request-toggle');
    await page.keyboard.press('Enter');
    assert.ok(await page.evaluate(() => document.activeElement.matches('.request-box input')), 'focus moves to the message');
    await page.keyboard.type('Hello!');
    await page.keyboard.press('Tab');
    await page.keyboard.press('Enter');
    await page.locator('#listings li', { hasText: LISTING }).getByText('Request sent').waitFor();
    await acceptRequest(ada, server.url, LISTING);
    await tabTo(page, '#nav a[data-view=chat]');
    await page.keyboard.press('Enter');
    await page.locator('#rooms li', { hasText: 'Ada' }).waitFor();
    await tabTo(page, '#rooms a');
    const outline = await focusOutline(page);
    assert.ok(outline.style !== 'none' && outline.width >= 2, `focus is visible on the room: ${JSON.stringify(outline)}`);
    await page.keyboard.press('Enter');
    await page.waitForSelector('#chat-room:not([hidden])');
    await tabTo(page, '#composer [name=body]');
    await page.keyboard.type('Typed without a mouse');
    await page.keyboard.press('Enter');
    await page.locator('#messages li.mine:not(.pending)', { hasText: 'Typed without a mouse' }).waitFor();
  });

  for (const view of ['browse', 'requests', 'matches', 'chat', 'profile', 'auth']) {
    test(`axe-core finds no serious or critical violation in ${view}`, async () => {
      const { page } = ada;
      if (view === 'auth') {
        await page.click('#signout');
        await page.waitForSelector('#view-auth:not([hidden])');
      } else {
        await page.goto(`${server.url}/#/${view}`);
        await page.waitForSelector(`#view-${view}:not([hidden])`);
        if (view === 'chat') {
          await page.locator('#rooms li', { hasText: 'Bob' }).click();
          await page.waitForSelector('#messages li');
        }
      }
      await page.waitForLoadState('networkidle');
      assert.deepEqual(await seriousViolations(page), []);
    });
  }

  test('axe-core on a public profile', async () => {
    const { page } = bob;
    await page.goto(`${server.url}/#/browse`);
    await page.locator('#listings li', { hasText: LISTING }).getByRole('link', { name: 'Ada' }).click();
    await page.locator('#user-listings li').first().waitFor();
    assert.deepEqual(await seriousViolations(page), []);
  });

  test('an uncaught error shows a recoverable message and reaches the server', async () => {
    const { page } = bob;
    bob.problems.length = 0;
    await page.evaluate(() => setTimeout(() => { throw new Error('boom from the test'); }));
    await page.waitForSelector('#app-error:not([hidden])');
    assert.match(await page.textContent('#app-error'), /Something went wrong/);
    await waitFor(() => server.logs().includes('boom from the test'), { what: 'the report in the server log', timeoutMs: 10_000 });
    await page.click('#app-error-dismiss');
    await page.waitForSelector('#app-error', { state: 'hidden' });
    await page.click('#nav a[data-view=requests]');
    await page.waitForSelector('#view-requests:not([hidden])');

    await page.evaluate(() => { Promise.reject(new Error('a rejection nobody handled')); });
    await page.waitForSelector('#app-error:not([hidden])');
    await waitFor(() => server.logs().includes('a rejection nobody handled'), { what: 'the rejection in the server log', timeoutMs: 10_000 });
    assert.ok(await page.isVisible('#app-error-reload'), 'a way out: reload');
    assert.match(server.logs(), /unhandledrejection: Error: a rejection nobody handled/);
  });
});
