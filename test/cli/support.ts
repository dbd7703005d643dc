// The CLI as a real child process (cli/bin.js → dist/cli/main.js, built by `npm test`'s pretest),
// its exit code and both of its outputs.
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';

export const BIN = path.resolve(__dirname, '..', '..', 'cli', 'bin.js');
export const EXAMPLE_WORKFLOW = path.resolve(__dirname, '..', '..', 'misc', 'example_workflow_api.json');

export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface RunningCli {
  child: ChildProcess;
  stderr(): string;
  done: Promise<CliRun>;
}

const live = new Set<ChildProcess>();
afterAll(() => {
  for (const child of live) child.kill('SIGKILL');
});

export function startCli(args: string[], env: Record<string, string> = {}): RunningCli {
  const child = spawn(process.execPath, [BIN, ...args], {
    // No COMFYUI_WORKER_* from the developer's shell.
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  const done = new Promise<CliRun>((resolve) =>
    child.once('close', (code) => {
      live.delete(child);
      resolve({ code, stdout, stderr });
    }),
  );
  return { child, stderr: () => stderr, done };
}

export const runCli = (args: string[], env: Record<string, string> = {}) => startCli(args, env).done;

/** A port nothing listens on (bound, then closed). */
export async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** The job id the CLI announces on stderr ("job <id>: submitted to ..."). */
export function jobIdOf(stderr: string): string {
  const m = /job (\S+): submitted/.exec(stderr);
  if (!m) throw new Error(`no job id in:\n${stderr}`);
  return m[1]!;
}
