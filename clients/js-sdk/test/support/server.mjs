// Starts a real Skill Share node (`python -m server serve`) on a free port
// with its own data dir, for tests. Stops it (and waits for the embedded
// database to exit) before removing the data dir.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../../..');

function python() {
  if (process.env.SKILLSHARE_PYTHON) return process.env.SKILLSHARE_PYTHON;
  const venv = join(REPO_ROOT, '.venv/bin/python');
  return existsSync(venv) ? venv : 'python3';
}

export function freePort() {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = /** @type {any} */ (srv.address());
      srv.close(() => res(port));
    });
  });
}

/**
 * @param {Record<string, string>} [env] extra SKILLSHARE_* settings
 * @param {{port?: number, dataDir?: string}} [opts] a port chosen beforehand (e.g. for a
 *   redirect URI); the data dir of an earlier node (stopped with `{keepData: true}`)
 * @returns {Promise<{url: string, port: number, dataDir: string, logs: () => string, stop: () => Promise<void>}>}
 */
export async function startServer(env = {}, { port: chosenPort, dataDir: reusedDir } = {}) {
  // A port found free can be taken before the node binds it (another test's
  // process, or this node's own database child binding port 0): try another.
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await startServerOn(chosenPort || await freePort(), env, reusedDir);
    } catch (err) {
      const taken = /address already in use/.test(String(err && err.message));
      if (!taken || chosenPort || attempt >= 3) throw err;
    }
  }
}

async function startServerOn(port, env, reusedDir) {
  const dataDir = reusedDir || mkdtempSync(join(tmpdir(), 'skillshare-sdk-'));
  let output = '';
  const proc = spawn(python(), ['-m', 'server', 'serve'], {
    cwd: REPO_ROOT,
    env: {
      ...process.env,
      SKILLSHARE_PORT: String(port),
      SKILLSHARE_HOST: '127.0.0.1',
      SKILLSHARE_DATA_DIR: dataDir,
      SKILLSHARE_ENV: 'test',
      SKILLSHARE_PASSWORD_HASH_TIME_COST: '1',
      SKILLSHARE_PASSWORD_HASH_MEMORY_KIB: '1024',
      SKILLSHARE_LOG_LEVEL: 'WARNING',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  proc.stdout.on('data', (d) => { output += d; });
  proc.stderr.on('data', (d) => { output += d; });
  const exited = new Promise((r) => proc.on('exit', r));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (proc.exitCode !== null) {
      if (!reusedDir) rmSync(dataDir, { recursive: true, force: true });
      throw new Error(`server exited with ${proc.exitCode}:\n${output}`);
    }
    try {
      // bounded: whatever else holds the port may accept and never answer
      const r = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(2000) });
      if (r.ok) break;
    } catch { /* not yet */ }
    if (Date.now() > deadline) {
      proc.kill('SIGKILL');
      throw new Error(`server did not start in 30 s:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    port,
    dataDir,
    logs: () => output,
    async stop({ keepData = false } = {}) {
      if (proc.exitCode === null) {
        proc.kill('SIGTERM');
        const timer = setTimeout(() => proc.kill('SIGKILL'), 15_000);
        await exited;
        clearTimeout(timer);
      }
      if (!keepData) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

let counter = 0;
/** A unique email for a test user. @param {string} [name] */
export function uniqueEmail(name = 'user') {
  counter += 1;
  return `${name}-${Date.now().toString(36)}-${process.pid}-${counter}@example.com`;
}

export const PASSWORD = 'correct horse battery staple';

/** Waits until `predicate()` is truthy (polling), or throws. */
export async function waitFor(predicate, { timeoutMs = 5000, intervalMs = 20, what = 'condition' } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await predicate();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
