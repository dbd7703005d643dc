// The layering rule (.dependency-cruiser.cjs, run by `npm test`) holds on the real tree and fails
// on an import that runs upward, in a scratch tree laid out like the project.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { tempDir } from '../support/tmp';

const ROOT = path.resolve(__dirname, '..', '..');
const DEPCRUISE = path.join(ROOT, 'node_modules', '.bin', 'depcruise');
const CONFIG = path.join(ROOT, '.dependency-cruiser.cjs');

function cruise(cwd: string, paths: string[]): { status: number | null; output: string } {
  const run = spawnSync(DEPCRUISE, [...paths, '--config', CONFIG], { cwd, encoding: 'utf8', timeout: 60_000 });
  return { status: run.status, output: `${run.stdout}${run.stderr}` };
}

/** A scratch project with the given files (path → source). */
function scratch(files: Record<string, string>): string {
  const dir = tempDir('layers-');
  for (const [file, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
    fs.writeFileSync(path.join(dir, file), text);
  }
  // depcruise resolves from the project's node_modules.
  fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(dir, 'node_modules'));
  return dir;
}

test('the project itself has no layering violation', () => {
  const { status, output } = cruise(ROOT, ['worker', 'benchmark', 'modifiers', 'simulator', 'cli']);
  expect(output).toContain('no dependency violations found');
  expect(status).toBe(0);
});

test('an upward import (comfy/ importing jobs/) fails the rule, the downward one passes', () => {
  const up = scratch({
    'worker/comfy/client.ts': "import { x } from '../jobs/queue';\nexport const y = x;\n",
    'worker/jobs/queue.ts': 'export const x = 1;\n',
  });
  const failed = cruise(up, ['worker']);
  expect(failed.status).not.toBe(0);
  expect(failed.output).toContain('no-upward-from-comfy');

  const down = scratch({
    'worker/jobs/queue.ts': "import { y } from '../comfy/client';\nexport const x = y;\n",
    'worker/comfy/client.ts': 'export const y = 1;\n',
  });
  const passed = cruise(down, ['worker']);
  expect(passed.output).toContain('no dependency violations found');
  expect(passed.status).toBe(0);
});

test('a door importing another door, or the worker importing the simulator, fails the rule', () => {
  const dir = scratch({
    'worker/doors/vast/app.ts': "import { send } from '../http/errors';\nexport const a = send;\n",
    'worker/doors/http/errors.ts': 'export const send = 1;\n',
    'worker/app.ts': "import { startSimulator } from '../simulator';\nexport const s = startSimulator;\n",
    'simulator/index.ts': 'export const startSimulator = 1;\n',
  });
  const { status, output } = cruise(dir, ['worker', 'simulator']);
  expect(status).not.toBe(0);
  expect(output).toContain('no-door-to-door');
  expect(output).toContain('simulator-is-not-the-worker');
});

test('the command-line client may import contracts, nothing else of the worker; nothing imports it', () => {
  const dir = scratch({
    'cli/ok.ts': "import type { R } from '../worker/contracts/result';\nexport type T = R;\n",
    'cli/deep.ts': "import { x } from '../worker/jobs/queue';\nexport const y = x;\n",
    'worker/contracts/result.ts': 'export type R = number;\nexport const parse = 1;\n',
    'worker/jobs/queue.ts': 'export const x = 1;\n',
    'worker/app.ts': "import { y } from '../cli/deep';\nexport const z = y;\n",
  });
  const { status, output } = cruise(dir, ['cli', 'worker']);
  expect(status).not.toBe(0);
  expect(output).toContain('nothing-imports-the-cli: worker/app.ts');
  expect(output).toContain('cli-is-a-client: cli/deep.ts');
  expect(output).not.toContain('cli/ok.ts');
});
