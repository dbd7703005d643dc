// The simulator is a test tool: the worker started without --simulate loads none of its modules
// (and with --simulate it does, so this test can tell the difference).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { WORKER_MAIN } from '../support/process';
import { tempDir } from '../support/tmp';

const SIMULATOR_DIR = path.resolve(__dirname, '..', '..', 'dist', 'simulator') + path.sep;

/** Starts the built worker, stops it once it listens, and returns every module it had loaded. */
async function modulesLoaded(args: string[]): Promise<string[]> {
  const dir = tempDir('modules-');
  const out = path.join(dir, 'modules.json');
  const preload = path.join(dir, 'record-modules.js');
  fs.writeFileSync(
    preload,
    `process.on('exit', () => require('fs').writeFileSync(${JSON.stringify(out)}, JSON.stringify(Object.keys(require.cache))));\n`,
  );
  const child = spawn(process.execPath, ['--require', preload, WORKER_MAIN, ...args], {
    env: {
      PATH: process.env.PATH ?? '',
      API_HOST: '127.0.0.1',
      API_PORT: '0',
      LOG_LEVEL: 'info',
      SQLITE_DB_PATH: path.join(dir, 'jobs.db'),
      COMFYUI_API_BASE: 'http://127.0.0.1:9',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let text = '';
  child.stdout.on('data', (chunk: Buffer) => (text += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (text += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const deadline = Date.now() + 20_000;
  while (!text.includes('"worker started"')) {
    if (Date.now() > deadline || child.exitCode !== null) {
      child.kill('SIGKILL');
      throw new Error(`the worker did not start:\n${text}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  child.kill('SIGTERM');
  expect(await exited).toBe(0);
  return JSON.parse(fs.readFileSync(out, 'utf8')) as string[];
}

test('without --simulate no simulator module is loaded', async () => {
  const loaded = await modulesLoaded([]);
  expect(loaded.some((m) => m.endsWith(path.join('dist', 'worker', 'main.js')))).toBe(true);
  expect(loaded.filter((m) => m.startsWith(SIMULATOR_DIR))).toEqual([]);
});

test('with --simulate the simulator is loaded (the check above can see it)', async () => {
  const loaded = await modulesLoaded(['--simulate']);
  expect(loaded.filter((m) => m.startsWith(SIMULATOR_DIR)).length).toBeGreaterThan(0);
});
