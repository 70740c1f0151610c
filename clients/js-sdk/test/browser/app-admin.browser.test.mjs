// Admin screens in the web app: hide/unhide a listing, find a user by email,
// ban/unban, change the role, the audit log. The first admin is made the
// documented way (`python -m server admin grant`), between two runs of the
// node on one data dir.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { startServer, uniqueEmail, PASSWORD, REPO_ROOT } from '../support/server.mjs';
import { openBrowser } from './support.mjs';
import { signUp, publishListing } from './app-steps.mjs';

let server;
let cleo; // the admin
let mal; // a user
const CLEO = uniqueEmail('cleo');
let malEmail;
const LISTING = 'Suspicious crypto tips';

function python() {
  if (process.env.SKILLSHARE_PYTHON) return process.env.SKILLSHARE_PYTHON;
  const venv = join(REPO_ROOT, '.venv/bin/python');
  return existsSync(venv) ? venv : 'python3';
}

before(async () => {
  const first = await startServer();
  const res = await fetch(`${first.url}/api/v1/auth/register`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email: CLEO, password: PASSWORD, display_name: 'Cleo' }),
  });
  assert.equal(res.status, 201, await res.text());
  await first.stop({ keepData: true });
  execFileSync(python(), ['-m', 'server', 'admin', 'grant', CLEO], {
    cwd: REPO_ROOT, env: { ...process.env, SKILLSHARE_DATA_DIR: first.dataDir, SKILLSHARE_ENV: 'test', SKILLSHARE_LOG_LEVEL: 'WARNING' },
  });
  server = await startServer({}, { dataDir: first.dataDir });
  cleo = await openBrowser('cleo-admin');
  mal = await openBrowser('mal-user');
});

after(async () => {
  await cleo?.close();
  await mal?.close();
  await server?.stop();
});

/** How many listings an anonymous visitor finds by the listing's title. */
async function publicCount() {
  const res = await fetch(`${server.url}/api/v1/skills?q=${encodeURIComponent(LISTING)}`);
  return (await res.json()).items.filter((l) => l.title === LISTING).length;
}

describe('admin screens', () => {
  test('a user has no Admin link; an admin has', async () => {
    malEmail = await signUp(mal, server.url, 'Mal');
    assert.equal(await mal.page.isVisible('#nav a[data-view=admin]'), false);
    await publishListing(mal, server.url, LISTING);
    const { page } = cleo;
    await page.goto(`${server.url}/`);
    await page.fill('#signin-form [name=email]', CLEO);
    await page.fill('#signin-form [name=password]', PASSWORD);
    await page.click('#signin-form button[type=submit]');
    await page.click('#nav a[data-view=admin]');
    await page.waitForSelector('#view-admin:not([hidden])');
  });

  test('the admin hides a listing and shows it again', async () => {
    const { page } = cleo;
    await page.goto(`${server.url}/#/browse`);
    const card = page.locator('#listings li', { hasText: LISTING });
    await card.getByRole('button', { name: 'Hide', exact: true }).click();
    await card.getByRole('button', { name: 'Unhide', exact: true }).waitFor();
    assert.equal(await publicCount(), 0, 'hidden from everyone else');
    await card.getByRole('button', { name: 'Unhide', exact: true }).click();
    await card.getByRole('button', { name: 'Hide', exact: true }).waitFor();
    assert.equal(await publicCount(), 1, 'visible again');
  });

  test('the admin finds a user by email, bans, unbans and makes them admin', async () => {
    const { page } = cleo;
    await page.goto(`${server.url}/#/admin`);
    await page.fill('#admin-find [name=email]', malEmail);
    await page.click('#admin-find button[type=submit]');
    const row = page.locator('#admin-user');
    await row.getByText('Mal', { exact: true }).waitFor();
    await row.getByText('active', { exact: true }).waitFor();
    page.once('dialog', (dialog) => dialog.accept());
    await row.getByRole('button', { name: 'Ban', exact: true }).click();
    await row.getByText('banned', { exact: true }).waitFor();
    await mal.page.waitForSelector('#view-auth:not([hidden])', { timeout: 15_000 });
    await row.getByRole('button', { name: 'Unban', exact: true }).click();
    await row.getByText('active', { exact: true }).waitFor();
    await row.getByRole('button', { name: 'Make admin' }).click();
    await row.getByText('admin', { exact: true }).waitFor();
  });

  test('the audit log lists what happened', async () => {
    const { page } = cleo;
    await page.click('#admin-audit-refresh');
    const log = page.locator('#admin-audit');
    for (const action of ['user.ban', 'user.unban', 'listing.hide', 'user.role_change']) {
      await log.locator('li', { hasText: action }).first().waitFor();
    }
    await cleo.screenshot('admin.png');
  });
});
