// `serve` (or no command): starts the worker itself, dist/worker/main.js, as a child process with
// this terminal's output. It runs in a process group of its own so that a Ctrl-C reaches it once
// (forwarded from here) rather than twice (the terminal's and ours): a second SIGINT would cut its
// clean stop short.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CliError, EXIT } from './exit-codes';

export const WORKER_MAIN = path.resolve(__dirname, '..', 'worker', 'main.js');

const FORWARDED: NodeJS.Signals[] = ['SIGTERM', 'SIGINT', 'SIGHUP'];

export function serve(args: string[]): Promise<number> {
  if (!fs.existsSync(WORKER_MAIN)) {
    throw new CliError(EXIT.internal, `the worker is not built (${WORKER_MAIN} is missing): run \`npm run build\` first`);
  }
  const child = spawn(process.execPath, ['--enable-source-maps', '--optimize-for-size', '--expose-gc', WORKER_MAIN, ...args], {
    stdio: ['ignore', 'inherit', 'inherit'],
    detached: true,
  });
  const forward = (signal: NodeJS.Signals) => child.kill(signal);
  for (const signal of FORWARDED) process.on(signal, forward);
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      for (const s of FORWARDED) process.off(s, forward);
      const signo = signal ? os.constants.signals[signal] : 0;
      resolve(code ?? 128 + signo);
    });
  });
}
