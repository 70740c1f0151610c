// /docs renders the OpenAPI 3.1 document in a real browser: the operations
// are listed, nothing is fetched from anywhere but the node itself.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from '../support/server.mjs';
import { openBrowser } from './support.mjs';

let server;
let user;

before(async () => {
  server = await startServer();
  user = await openBrowser('docs');
});

after(async () => {
  await user?.close();
  await server?.stop();
});

test('/docs lists the API operations of the OpenAPI 3.1 document', async () => {
  const { page } = user;
  const origins = new Set();
  page.on('request', (req) => origins.add(new URL(req.url()).origin));
  await page.goto(`${server.url}/docs`);
  const spec = await (await fetch(`${server.url}/openapi.json`)).json();
  assert.match(spec.openapi, /^3\.1/);
  await page.waitForSelector('.opblock', { timeout: 20_000 });
  const text = await page.locator('#swagger-ui').textContent();
  assert.doesNotMatch(text, /Unable to render this definition/);
  const operations = await page.locator('.opblock').count();
  const expected = Object.values(spec.paths).reduce((n, item) => n + Object.keys(item).filter((k) => k !== 'parameters').length, 0);
  assert.equal(operations, expected, 'every operation is listed');
  assert.ok(await page.locator('.opblock-summary-path', { hasText: '/api/v1/auth/login' }).count() >= 1);
  await user.screenshot('docs.png');
  assert.deepEqual([...origins], [server.url], 'no CDN: everything from the node');
  assert.deepEqual(user.problems.filter((p) => !/favicon/.test(p)), []);
});
