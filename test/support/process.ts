// The built worker (dist/worker/main.js, built by `npm test`'s pretest) as a real child process,
// for tests that kill it. Its URL is read from its "worker started" log line.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

export const WORKER_MAIN = path.resolve(__dirname, '..', '..', 'dist', 'worker', 'main.js');

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface WorkerProcess {
  child: ChildProcess;
  url: string;
  exited: Promise<Exit>;
  output(): string;
  kill(signal?: NodeJS.Signals): Promise<Exit>;
  /** Peak resident memory so far (VmHWM), in bytes. */
  peakRss(): number;
}

const live = new Set<ChildProcess>();
// Jest evaluates this module afresh for every test file: no child outlives its file.
afterAll(() => {
  for (const child of live) child.kill('SIGKILL');
});

function start(env: Record<string, string>): { child: ChildProcess; exited: Promise<Exit>; output: () => string } {
  const child = spawn(process.execPath, ['--expose-gc', WORKER_MAIN], {
    env: { PATH: process.env.PATH ?? '', API_HOST: '127.0.0.1', API_PORT: '0', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.add(child);
  let text = '';
  child.stdout?.on('data', (chunk: Buffer) => (text += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (text += chunk.toString()));
  const exited = new Promise<Exit>((resolve) =>
    child.once('exit', (code, signal) => {
      live.delete(child);
      resolve({ code, signal });
    }),
  );
  return { child, exited, output: () => text };
}

/** Starts the worker and resolves once it listens. */
export async function spawnWorker(env: Record<string, string>, timeoutMs = 15_000): Promise<WorkerProcess> {
  const { child, exited, output } = start(env);
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`worker did not start in ${timeoutMs} ms:\n${output()}`)), timeoutMs);
    const onData = () => {
      for (const line of output().split('\n')) {
        if (!line.includes('"worker started"')) continue;
        clearTimeout(timer);
        child.stdout?.off('data', onData);
        resolve((JSON.parse(line) as { url: string }).url);
        return;
      }
    };
    child.stdout?.on('data', onData);
    void exited.then((exit) => {
      clearTimeout(timer);
      reject(new Error(`worker exited (${JSON.stringify(exit)}) before it started:\n${output()}`));
    });
  });
  return {
    child,
    url,
    exited,
    output,
    kill: (signal = 'SIGKILL') => {
      child.kill(signal);
      return exited;
    },
    peakRss: () => {
      const status = fs.readFileSync(`/proc/${child.pid}/status`, 'utf8');
      return Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? NaN) * 1024;
    },
  };
}

/** Runs the worker until it exits by itself (a startup failure); kills it after `timeoutMs`. */
export async function runWorkerToExit(env: Record<string, string>, timeoutMs = 15_000): Promise<Exit & { output: string }> {
  const { child, exited, output } = start(env);
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const exit = await exited;
  clearTimeout(timer);
  return { ...exit, output: output() };
}
