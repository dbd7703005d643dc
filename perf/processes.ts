// Child processes for the perf scripts: the worker, the simulator and redis-server each run in a
// process of their own, started and awaited the same way.
import { spawn, type ChildProcess } from 'node:child_process';

/**
 * Starts `command` and resolves with the process and the first group of `pattern` once its output
 * matches (20 s at most). Output is read on after the start and dropped, so a chatty child never
 * blocks on a full pipe.
 */
export function startProcess(
  command: string,
  args: string[],
  env: Record<string, string>,
  pattern: RegExp,
): Promise<{ child: ChildProcess; match: string }> {
  const child = spawn(command, args, { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  return new Promise((resolve, reject) => {
    let text = '';
    let started = false;
    const timer = setTimeout(() => reject(new Error(`no start within 20 s:\n${text}`)), 20_000);
    const onData = (chunk: Buffer) => {
      if (started) return;
      text += chunk.toString();
      const found = pattern.exec(text);
      if (found?.[1] !== undefined) {
        started = true;
        clearTimeout(timer);
        resolve({ child, match: found[1] });
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', (code) => reject(new Error(`exited with ${code}:\n${text}`)));
  });
}

/** SIGTERM, and resolves once the process has exited. */
export function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
  });
}
