// Chromium (system /usr/bin/chromium) driven by playwright-core, one fresh
// persistent profile per simulated user.
import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { REPO_ROOT } from '../support/server.mjs';

export const CHROMIUM = process.env.SKILLSHARE_CHROMIUM || '/usr/bin/chromium';
export const ARTIFACTS = resolve(REPO_ROOT, 'test-results/browser');

const ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream'];

/** A browser "user": a persistent context on a fresh profile dir, and its page. */
export async function openBrowser(name, { viewport = { width: 1200, height: 800 } } = {}) {
  const dir = mkdtempSync(join(tmpdir(), `skillshare-${name}-`));
  const context = await chromium.launchPersistentContext(dir, {
    executablePath: CHROMIUM, headless: true, args: ARGS, viewport,
    permissions: ['camera', 'microphone'],
  });
  const page = context.pages()[0] || await context.newPage();
  const problems = [];
  page.on('pageerror', (err) => problems.push(`pageerror: ${err.message}`));
  page.on('console', (msg) => {
    // Failed loads are reported with their URL below; the console line has none.
    if (msg.type() === 'error' && !/^Failed to load resource/.test(msg.text())) problems.push(`console: ${msg.text()}`);
  });
  page.on('response', (res) => {
    if (res.status() >= 400) problems.push(`http ${res.status()} ${res.request().method()} ${new URL(res.url()).pathname}`);
  });
  return {
    page,
    problems,
    async screenshot(file) {
      mkdirSync(ARTIFACTS, { recursive: true });
      const path = join(ARTIFACTS, file);
      await page.screenshot({ path });
      return path;
    },
    async close() {
      await context.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
