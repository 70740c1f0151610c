// Marketplace flows in the web app: edit and delete one's listing, the
// public teacher profile (linked from listing cards), "Mark completed" only
// once the two have talked, a review with 1–5 stars and a comment.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from '../support/server.mjs';
import { openBrowser } from './support.mjs';
import { signUp, publishListing, requestListing, acceptRequest, sendMessage } from './app-steps.mjs';

let server;
let ada; // teaches
let bob; // learns
const TITLE = 'Calligraphy';
const EDITED = 'Calligraphy with brush and ink';

before(async () => {
  server = await startServer();
  ada = await openBrowser('ada-market');
  bob = await openBrowser('bob-market');
});

after(async () => {
  await ada?.close();
  await bob?.close();
  await server?.stop();
});

describe('marketplace flows', () => {
  test('Ada fills her profile and publishes two listings', async () => {
    await signUp(ada, server.url, 'Ada');
    await signUp(bob, server.url, 'Bob');
    const { page } = ada;
    await page.fill('#profile-form [name=bio]', 'Letterer for twenty years.');
    await page.fill('#profile-form [name=languages]', 'en, ja');
    await page.fill('#profile-form [name=timezone]', 'Asia/Tokyo');
    await page.click('#profile-form button[type=submit]');
    await page.getByText('Profile saved').waitFor();
    await publishListing(ada, server.url, TITLE);
    await publishListing(ada, server.url, 'Temporary listing');
  });

  test('Ada edits one listing and deletes the other', async () => {
    const { page } = ada;
    const card = page.locator('#listings li', { hasText: TITLE });
    await card.getByRole('button', { name: 'Edit' }).click();
    assert.equal(await page.inputValue('#listing-form [name=title]'), TITLE, 'the form holds the listing');
    await page.fill('#listing-form [name=title]', EDITED);
    await page.selectOption('#listing-form [name=mode]', 'in_person');
    await page.click('#listing-form button[type=submit]');
    const edited = page.locator('#listings li', { hasText: EDITED });
    await edited.waitFor();
    assert.match(await edited.textContent(), /In person/, 'a human label, not in_person');

    const temp = page.locator('#listings li', { hasText: 'Temporary listing' });
    page.once('dialog', (dialog) => dialog.accept());
    await temp.getByRole('button', { name: 'Delete' }).click();
    await temp.waitFor({ state: 'detached' });
    await page.reload();
    await page.locator('#listings li', { hasText: EDITED }).waitFor();
    assert.equal(await page.locator('#listings li', { hasText: 'Temporary listing' }).count(), 0, 'deleted for good');
  });

  test('Bob opens Ada\'s public profile from the listing card', async () => {
    const { page } = bob;
    await page.goto(`${server.url}/#/browse`);
    const card = page.locator('#listings li', { hasText: EDITED });
    await card.getByRole('link', { name: 'Ada' }).click();
    await page.waitForURL(/#\/users\/.+/);
    await page.waitForSelector('#view-user:not([hidden])');
    await page.locator('#user-listings li', { hasText: EDITED }).waitFor();
    await page.locator('#user-name', { hasText: 'Ada' }).waitFor();
    const text = await page.locator('#view-user').textContent();
    assert.match(text, /Ada/);
    assert.match(text, /Letterer for twenty years\./);
    assert.match(text, /Asia\/Tokyo/);
    assert.match(text, /en, ja/);
    assert.match(text, /No reviews yet/);
    await page.locator('#user-listings li', { hasText: EDITED }).waitFor();
  });

  test('"Mark completed" appears only once the two have talked', async () => {
    await requestListing(bob, server.url, EDITED);
    await acceptRequest(ada, server.url, EDITED);
    await ada.page.goto(`${server.url}/#/requests`);
    const item = ada.page.locator('#requests-incoming li', { hasText: EDITED });
    await item.getByText('accepted').waitFor();
    await item.getByText(/after your first conversation/).waitFor();
    assert.equal(await item.getByRole('button', { name: 'Mark completed' }).count(), 0, 'not right after accepting');

    await item.getByRole('link', { name: 'Open chat' }).click();
    await ada.page.waitForSelector('#chat-room:not([hidden])');
    await sendMessage(ada, 'Welcome! Bring a brush.');
    await ada.page.goto(`${server.url}/#/requests`);
    await item.getByRole('button', { name: 'Mark completed' }).click();
    await item.getByText('completed').waitFor();
  });

  test('Bob reviews with 4 stars and a comment, and gets a confirmation', async () => {
    const { page } = bob;
    await page.goto(`${server.url}/#/requests`);
    const item = page.locator('#requests-outgoing li', { hasText: EDITED });
    await item.getByRole('button', { name: 'Write a review' }).click();
    await item.getByLabel('4 stars').check();
    await item.getByLabel('Comment').fill('Patient and precise.');
    await item.getByRole('button', { name: 'Publish review' }).click();
    await item.getByText('Thanks! Your review is published.').waitFor();
    assert.equal(await item.getByRole('button', { name: 'Write a review' }).count(), 0);

    await page.goto(`${server.url}/#/browse`);
    const card = page.locator('#listings li', { hasText: EDITED });
    await card.getByText('★ 4.0 (1)').waitFor();
    await card.getByRole('link', { name: 'Ada' }).click();
    await page.waitForSelector('#view-user:not([hidden])');
    await page.locator('#user-rating', { hasText: '★ 4.0' }).waitFor();
    await page.locator('#user-reviews li', { hasText: 'Patient and precise.' }).waitFor();
  });
});
