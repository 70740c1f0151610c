// The committed browser bundle must be what the sources build to, and must
// expose the SDK on window.SkillShare.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import vm from 'node:vm';
import { BUNDLE, bundle } from '../scripts/build.mjs';

test('server/web/static/skillshare-sdk.js is up to date with src/ (npm run build)', async () => {
  const committed = readFileSync(BUNDLE, 'utf8');
  const fresh = await bundle();
  assert.ok(committed === fresh, 'the committed bundle differs from a fresh build: run `npm run build` and commit');
});

test('the bundle defines the SkillShare global', () => {
  const context = { window: {}, globalThis: {}, console, setTimeout, clearTimeout, queueMicrotask, URL, URLSearchParams };
  context.self = context.window;
  vm.createContext(context);
  vm.runInContext(`${readFileSync(BUNDLE, 'utf8')};this.__sdk = SkillShare;`, context);
  const sdk = context.__sdk;
  for (const name of ['SkillShareClient', 'ApiError', 'ErrorCodes', 'ConnectionState', 'CallState', 'Call']) {
    assert.ok(sdk[name], `SkillShare.${name}`);
  }
  assert.equal(sdk.ConnectionState.Connected, 'connected');
});
