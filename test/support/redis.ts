// A real redis-server (the Debian package; .ci/run installs it) on a free port, with its data in a
// temporary folder. It writes an append-only file, so a restart (stop, then start on the same
// port) finds the jobs it had, as a production Redis with persistence does.
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { tempDir } from './tmp';

export interface RedisServer {
  url: string;
  port: number;
  /** Where it keeps its data (the append-only files). */
  dir: string;
  /** Stops it (SIGTERM: it writes its data first) and waits for the exit. */
  stop(): Promise<void>;
  /** Starts it again on the same port with the same data. */
  start(): Promise<void>;
}

const live = new Set<ChildProcess>();
// Jest evaluates this module afresh for every test file: no server outlives its file.
afterAll(() => {
  for (const child of live) child.kill('SIGKILL');
});

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

async function listening(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.end();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`redis-server did not listen on ${port} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export async function startRedis(): Promise<RedisServer> {
  const dir = tempDir('redis-');
  const port = await freePort();
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  const server: RedisServer = {
    url: `redis://127.0.0.1:${port}`,
    port,
    dir,
    async start() {
      const proc = spawn(
        'redis-server',
        [
          '--port',
          String(port),
          '--bind',
          '127.0.0.1',
          '--dir',
          dir,
          '--save',
          '',
          '--appendonly',
          'yes',
          '--appendfsync',
          'always',
        ],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let output = '';
      proc.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
      proc.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
      proc.once('error', (err) => {
        output += String(err);
      });
      child = proc;
      live.add(proc);
      exited = new Promise((resolve) =>
        proc.once('exit', () => {
          live.delete(proc);
          resolve();
        }),
      );
      await listening(port, 10_000).catch((err: Error) => {
        throw new Error(`${err.message}:\n${output}`);
      });
    },
    async stop() {
      child?.kill('SIGTERM');
      await exited;
      child = undefined;
    },
  };
  await server.start();
  return server;
}
