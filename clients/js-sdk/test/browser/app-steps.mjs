// Steps a person takes in the web app, shared by the app's browser suites,
// and layout checks (what is on screen, what scrolls sideways).
import assert from 'node:assert/strict';
import { uniqueEmail, PASSWORD } from '../support/server.mjs';

export const PHONE = { width: 390, height: 844 };

/** Signs up through the form; resolves the email used. */
export async function signUp(user, baseUrl, name) {
  const { page } = user;
  const email = uniqueEmail(name.toLowerCase());
  await page.goto(`${baseUrl}/`);
  await page.fill('#signup-form [name=display_name]', name);
  await page.fill('#signup-form [name=email]', email);
  await page.fill('#signup-form [name=password]', PASSWORD);
  await page.click('#signup-form button[type=submit]');
  await page.waitForSelector('#view-profile:not([hidden])');
  await page.waitForSelector('#conn-state.connected', { timeout: 10_000 });
  return email;
}

/** Publishes a listing from the Browse view. */
export async function publishListing(user, baseUrl, title, { mode = 'online' } = {}) {
  const { page } = user;
  await page.goto(`${baseUrl}/#/browse`);
  await page.click('#new-listing-toggle');
  await page.fill('#listing-form [name=title]', title);
  await page.selectOption('#listing-form [name=category]', 'design');
  await page.selectOption('#listing-form [name=mode]', mode);
  await page.fill('#listing-form [name=description]', 'Brushes, washes and colour mixing.');
  await page.click('#listing-form button[type=submit]');
  await page.waitForSelector(`#listings li:has-text("${title}")`);
}

/** The learner asks for a listing found by search. */
export async function requestListing(user, baseUrl, title, message = 'Hello, I would like to learn.') {
  const { page } = user;
  await page.goto(`${baseUrl}/#/browse`);
  await page.fill('#search-form [name=q]', title);
  await page.click('#search-form button[type=submit]');
  await page.waitForSelector('#listings[aria-busy=false]');
  const card = page.locator('#listings li', { hasText: title }).first();
  await card.waitFor();
  await card.getByRole('button', { name: 'Request to learn' }).click();
  await card.locator('input').fill(message);
  await card.getByRole('button', { name: 'Send' }).click();
  await card.getByText('Request sent').waitFor();
}

/** The teacher accepts the request for `title` and lands in the chat room. */
export async function acceptRequest(user, baseUrl, title) {
  const { page } = user;
  await page.goto(`${baseUrl}/#/requests`);
  const item = page.locator('#requests-incoming li', { hasText: title });
  await item.getByRole('button', { name: 'Accept' }).click();
  await page.waitForURL(/#\/chat\/.+/);
  await page.waitForSelector('#chat-room:not([hidden])');
}

/** Sends a chat message in the open room and waits until the server has it. */
export async function sendMessage(user, text) {
  await user.page.fill('#composer [name=body]', text);
  await user.page.click('#composer button[type=submit]');
  await user.page.locator('#messages li.mine:not(.pending)', { hasText: text.slice(0, 40) }).waitFor();
}

/** How far the page scrolls sideways (0 when it fits the viewport). */
export function sidewaysOverflow(page) {
  return page.evaluate(() => Math.max(document.documentElement.scrollWidth, document.body.scrollWidth) - window.innerWidth);
}

/** Asserts that each selector's element is visible and wholly inside the viewport. */
export async function assertOnScreen(page, selectors, where = '') {
  const size = page.viewportSize();
  for (const selector of selectors) {
    const box = await page.locator(selector).first().boundingBox();
    assert.ok(box, `${selector} is visible ${where}`);
    assert.ok(box.x >= 0 && box.y >= 0 && box.x + box.width <= size.width + 0.5 && box.y + box.height <= size.height + 0.5,
      `${selector} is on screen ${where}: ${JSON.stringify(box)} in ${size.width}×${size.height}`);
  }
}

/** Asserts no sideways scrolling; then a screenshot of the view. */
export async function checkView(user, name) {
  const overflow = await sidewaysOverflow(user.page);
  await user.screenshot(`${name}.png`);
  assert.ok(overflow <= 0, `${name}: the page scrolls sideways by ${overflow}px`);
}
