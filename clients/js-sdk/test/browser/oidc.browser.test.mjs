// "Continue with …" in real Chromium: the web app's provider button, a real
// OpenID provider (npm oidc-provider, tests/js/oidc_provider.mjs), back to the
// app signed in; then the profile lists the provider, sets a first password
// and unlinks it.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { freePort, startServer, uniqueEmail, waitFor, REPO_ROOT } from '../support/server.mjs';
import { openBrowser } from './support.mjs';

const PROVIDER_DIR = join(REPO_ROOT, 'tests/js');
let provider;
let issuer;
let server;
let person;

async function startProvider() {
  const port = await freePort();
  const proc = spawn('node', ['oidc_provider.mjs', String(port)], { cwd: PROVIDER_DIR, stdio: 'ignore' });
  const url = `http://127.0.0.1:${port}`;
  await waitFor(async () => {
    try { return (await fetch(`${url}/.well-known/openid-configuration`)).ok; } catch { return false; }
  }, { timeoutMs: 20_000, intervalMs: 100, what: 'the OpenID provider' });
  return { proc, url };
}

async function post(url, body) {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  if (!res.ok) throw new Error(`${url}: ${res.status} ${await res.text()}`);
  return res.status === 204 ? null : res.json();
}

before(async () => {
  provider = await startProvider();
  issuer = provider.url;
  const port = await freePort();
  const client = await post(`${issuer}/reg`, {
    redirect_uris: [`http://127.0.0.1:${port}/api/v1/auth/oidc/demo/callback`],
  });
  await post(`${issuer}/test/accounts`, {
    sub: 'browser-person', email: uniqueEmail('oidc'), email_verified: true, name: 'Grace Hopper', default: true,
  });
  server = await startServer({
    SKILLSHARE_PUBLIC_URL: `http://127.0.0.1:${port}`,
    SKILLSHARE_OIDC_PROVIDERS: 'demo',
    SKILLSHARE_OIDC_DEMO_ISSUER: issuer,
    SKILLSHARE_OIDC_DEMO_CLIENT_ID: client.client_id,
    SKILLSHARE_OIDC_DEMO_CLIENT_SECRET: client.client_secret,
    SKILLSHARE_OIDC_DEMO_DISPLAY_NAME: 'Demo ID',
  }, { port });
  person = await openBrowser('oidc');
});

after(async () => {
  await person?.close();
  await server?.stop();
  provider?.proc.kill('SIGTERM');
});

describe('sign-in providers in the web app', () => {
  test('Continue with the provider signs in', async () => {
    const { page } = person;
    await page.goto(`${server.url}/`);
    const button = page.locator('#provider-buttons a', { hasText: 'Continue with Demo ID' });
    await button.waitFor();
    await button.click();
    await page.waitForSelector('#nav:not([hidden])', { timeout: 15_000 });
    assert.equal(await page.textContent('#me-name'), 'Grace Hopper');
    assert.equal(new URL(page.url()).origin, server.url);
    assert.deepEqual(person.problems, []);
  });

  test('the profile lists the provider, sets a password, unlinks', async () => {
    const { page } = person;
    await page.goto(`${server.url}/#/profile`);
    const item = page.locator('#linked-providers li', { hasText: 'Demo ID' });
    await item.filter({ hasText: 'linked' }).waitFor();
    await page.waitForSelector('#set-password-form:not([hidden])');
    await page.fill('#set-password-form [name=new_password]', 'a password of my own');
    await page.click('#set-password-form button[type=submit]');
    await page.waitForSelector('#set-password-form[hidden]', { state: 'attached' });
    await item.locator('button', { hasText: 'Unlink' }).click();
    // exactly 'Link': a plain 'Link' would also match the 'Unlink' button still on screen
    await item.locator('button', { hasText: /^Link$/ }).waitFor();
    assert.match(await page.textContent('#banner-text'), /Unlinked/);
    assert.deepEqual(person.problems, []);
  });
});
