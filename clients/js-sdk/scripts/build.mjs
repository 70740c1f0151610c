// Builds the browser bundle the server serves: server/web/static/skillshare-sdk.js,
// an IIFE exposing `window.SkillShare` (socket.io-client included).
//   node scripts/build.mjs          write the bundle
//   node scripts/build.mjs --check  exit 1 if the committed bundle differs from the sources
import { build } from 'esbuild';
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const BUNDLE = resolve(ROOT, '../../server/web/static/skillshare-sdk.js');
const pkg = JSON.parse(readFileSync(resolve(ROOT, 'package.json'), 'utf8'));

export async function bundle() {
  const result = await build({
    entryPoints: [resolve(ROOT, 'src/index.js')],
    bundle: true,
    format: 'iife',
    globalName: 'SkillShare',
    platform: 'browser',
    target: ['es2020'],
    minify: true,
    legalComments: 'none',
    write: false,
    logLevel: 'silent',
    banner: { js: `/* Skill Share SDK ${pkg.version} — built from clients/js-sdk by \`npm run build\`; do not edit. */` },
  });
  return result.outputFiles[0].text;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const text = await bundle();
  if (process.argv.includes('--check')) {
    const current = existsSync(BUNDLE) ? readFileSync(BUNDLE, 'utf8') : '';
    if (current !== text) {
      console.error(`${BUNDLE} is out of date: run \`npm run build\` in clients/js-sdk and commit it.`);
      process.exit(1);
    }
    console.log('bundle is up to date');
  } else {
    writeFileSync(BUNDLE, text);
    console.log(`wrote ${BUNDLE} (${text.length} bytes)`);
  }
}
