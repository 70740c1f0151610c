// Account flows in the web app: "Forgot password?", the verification status
// with "Resend verification mail", change password, sign-out clearing the
// sign-in form, and every link a mail contains opening a page of the app.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startServer, PASSWORD, waitFor } from '../support/server.mjs';
import { openBrowser } from './support.mjs';
import { signUp, publishListing, requestListing } from './app-steps.mjs';

let server;
let ada;
let bob;
let adaEmail;
const NEW_PASSWORD = 'a brand new passphrase';

before(async () => {
  server = await startServer();
  ada = await openBrowser('ada-accounts');
  bob = await openBrowser('bob-accounts');
});

after(async () => {
  await ada?.close();
  await bob?.close();
  await server?.stop();
});

/** The mails in the node's outbox, as raw text (quoted-printable soft breaks joined). */
function mails() {
  const dir = join(server.dataDir, 'outbox');
  let names = [];
  try { names = readdirSync(dir).filter((n) => n.endsWith('.eml')); } catch { return []; }
  return names.map((n) => readFileSync(join(dir, n), 'utf8').replace(/=\r?\n/g, '').replace(/=3D/g, '='));
}

function linksIn(mail) {
  return [...new Set(mail.match(/https?:\/\/[^\s"<>]+/g) || [])];
}

async function signOut(page) {
  await page.click('#signout');
  await page.waitForSelector('#view-auth:not([hidden])');
}

async function signIn(page, email, password) {
  await page.fill('#signin-form [name=email]', email);
  await page.fill('#signin-form [name=password]', password);
  await page.click('#signin-form button[type=submit]');
  await page.waitForSelector('#nav:not([hidden])');
}

describe('account flows', () => {
  test('the profile shows the address as unverified and resends the verification mail', async () => {
    adaEmail = await signUp(ada, server.url, 'Ada');
    const { page } = ada;
    await page.waitForSelector('#verification:not([hidden])');
    assert.match(await page.textContent('#verification'), /not verified/i);
    const before = mails().filter((m) => m.includes('verify-email')).length;
    await page.getByRole('button', { name: 'Resend verification mail' }).click();
    await page.waitForSelector('#banner:not([hidden])');
    assert.match(await page.textContent('#banner-text'), /sent/i);
    await waitFor(() => mails().filter((m) => m.includes('verify-email')).length > before, { what: 'a second verification mail' });
  });

  test('the verification link verifies, and the profile then says so', async () => {
    const mail = mails().find((m) => m.includes('verify-email'));
    const link = linksIn(mail).find((l) => l.includes('verify-email'));
    await ada.page.goto(link.replace(/^https?:\/\/[^/]+/, server.url));
    await ada.page.click('button[type=submit]');
    await ada.page.getByText('Done').waitFor();
    await ada.page.goto(`${server.url}/#/profile`);
    await ada.page.waitForFunction(() => /verified/i.test(document.getElementById('verification').textContent)
      && !/not verified/i.test(document.getElementById('verification').textContent));
  });

  test('change password: the new one signs in, and sign-out clears the sign-in form', async () => {
    const { page } = ada;
    await page.fill('#password-form [name=current_password]', PASSWORD);
    await page.fill('#password-form [name=new_password]', NEW_PASSWORD);
    await page.click('#password-form button[type=submit]');
    await page.waitForSelector('#banner:not([hidden])');
    assert.match(await page.textContent('#banner-text'), /Password changed/);
    assert.equal(await page.inputValue('#password-form [name=current_password]'), '');
    await signOut(page);
    await signIn(page, adaEmail, NEW_PASSWORD);
    await signOut(page);
    assert.equal(await page.inputValue('#signin-form [name=email]'), '', 'the email is cleared');
    assert.equal(await page.inputValue('#signin-form [name=password]'), '', 'the password is cleared');
  });

  test('"Forgot password?" on the sign-in form mails a reset link that works', async () => {
    const { page } = ada;
    await page.getByRole('link', { name: 'Forgot password?' }).click();
    await page.fill('#forgot-form [name=email]', adaEmail);
    await page.click('#forgot-form button[type=submit]');
    await page.getByText(/If an account exists/).waitFor();
    const mail = await waitFor(() => mails().find((m) => m.includes('reset-password')), { what: 'the reset mail' });
    const link = linksIn(mail).find((l) => l.includes('reset-password'));
    await page.goto(link.replace(/^https?:\/\/[^/]+/, server.url));
    await page.fill('[name=new_password]', PASSWORD);
    await page.click('button[type=submit]');
    await page.getByText('Done').waitFor();
    await page.goto(`${server.url}/`);
    await signIn(page, adaEmail, PASSWORD);
  });

  test('every link in the request mails opens a page of the app', async () => {
    await publishListing(ada, server.url, 'Lino printing');
    await signUp(bob, server.url, 'Bob');
    await requestListing(bob, server.url, 'Lino printing', 'Teach me lino, please.');
    const mail = await waitFor(() => mails().find((m) => m.includes('/requests/')), { what: 'the request mail' });
    const links = linksIn(mail).map((l) => l.replace(/^https?:\/\/[^/]+/, server.url));
    assert.ok(links.length > 0);
    for (const link of links) {
      const res = await fetch(link, { headers: { accept: 'text/html' } });
      assert.equal(res.status, 200, `${link} answers 200`);
      assert.match(res.headers.get('content-type'), /text\/html/, `${link} is a page`);
    }
    const requestLink = links.find((l) => l.includes('/requests/'));
    await ada.page.goto(requestLink);
    const item = ada.page.locator('#requests-incoming li.highlight', { hasText: 'Teach me lino, please.' });
    await item.waitFor();
    assert.ok(await item.getByRole('button', { name: 'Accept' }).isVisible());
    const api = await fetch(`${server.url}/api/v1/requests/${requestLink.split('/').pop()}`, { headers: { accept: 'application/json' } });
    assert.equal(api.status, 401, 'the JSON API is unchanged');
  });
});
