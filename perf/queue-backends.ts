// The two job stores side by side, in one run, with real processes: the worker (dist), the
// simulator, and a redis-server (the Debian package) on a free port.
//   1. A deep queue: 10,000 jobs submitted through POST /run (16 at once) to a worker whose
//      ComfyUI is away (nothing runs), then GET /status on random jobs: submissions per second,
//      /status median and p99, for SQLite and for Redis.
//   2. Scale-out: 40 jobs of ~200 ms (4 nodes at 50 ms) through one worker with one simulator
//      (SQLite), then submitted to one of two workers on one Redis, each with its own simulator.
//      Printed: wall times and their ratio (target <= 0.6).
//
//   npm run build && node dist/perf/queue-backends.js [--jobs 10000] [--samples 2000] [--scale-jobs 40]
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { startProcess } from './processes';
import { keepAliveClient, uncachedWorkflow } from './load';
import { arg, median, percentile, report } from './stats';

const JOBS = arg('--jobs', 10_000);
const SAMPLES = arg('--samples', 2_000);
const SCALE_JOBS = arg('--scale-jobs', 40);
const NODE_MS = 50;
const CONCURRENCY = 16;
const DIST = path.join(__dirname, '..');
const children: ChildProcess[] = [];

async function started(command: string, args: string[], env: Record<string, string>, pattern: RegExp): Promise<string> {
  const { child, match } = await startProcess(command, args, env, pattern);
  children.push(child);
  return match;
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

async function redisServer(): Promise<string> {
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'perf-redis-'));
  // Production-like persistence: an append-only file written every second.
  await started(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'yes'],
    {},
    /(Ready to accept connections)/,
  );
  return `redis://127.0.0.1:${port}`;
}

const simulator = () =>
  started(
    process.execPath,
    [path.join(DIST, 'simulator', 'cli.js'), '--port', '0', '--node-delay-ms', String(NODE_MS)],
    {},
    /listening on (\S+)/,
  );

function worker(env: Record<string, string>): Promise<string> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'perf-queue-'));
  return started(
    process.execPath,
    ['--optimize-for-size', '--expose-gc', path.join(DIST, 'worker', 'main.js')],
    {
      API_HOST: '127.0.0.1',
      API_PORT: '0',
      SQLITE_DB_PATH: path.join(dir, 'jobs.db'),
      JOB_SECRETS_KEY: 'perf',
      MAX_QUEUE_SIZE: String(JOBS * 2),
      LOG_LEVEL: 'info',
      ...env,
    },
    /"url":"([^"]+)"[^\n]*"msg":"worker started"/,
  );
}

const request = keepAliveClient(CONCURRENCY);

async function submit(url: string, i: number): Promise<string> {
  const res = await request(`${url}/run`, 'POST', JSON.stringify({ workflow: uncachedWorkflow(i) }));
  if (res.status !== 200) throw new Error(`POST /run answered ${res.status}: ${res.text}`);
  return (JSON.parse(res.text) as { job_id: string }).job_id;
}

/** Deep queue: submissions per second and /status latency with JOBS queued. */
async function deepQueue(env: Record<string, string>): Promise<{ perS: number; p50: number; p99: number }> {
  // ComfyUI away: the jobs stay queued.
  const url = await worker({ COMFYUI_API_BASE: 'http://127.0.0.1:9', ...env });
  const ids: string[] = [];
  const t0 = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < JOBS) ids.push(await submit(url, next++));
    }),
  );
  const perS = JOBS / ((performance.now() - t0) / 1000);
  const times: number[] = [];
  for (let i = 0; i < SAMPLES; i++) {
    const id = ids[Math.floor(Math.random() * ids.length)]!;
    const s = performance.now();
    const res = await request(`${url}/status/${id}`, 'GET');
    times.push(performance.now() - s);
    if (res.status !== 200) throw new Error(`GET /status answered ${res.status}`);
  }
  return { perS, p50: median(times), p99: percentile(times, 99) };
}

async function waitHealthy(url: string): Promise<void> {
  for (;;) {
    const res = await request(`${url}/health`, 'GET');
    if (res.status === 200) return;
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Submits SCALE_JOBS jobs to `url` and waits until every one has ended; seconds. */
async function timeJobs(url: string): Promise<number> {
  const t0 = performance.now();
  await Promise.all(Array.from({ length: SCALE_JOBS }, (_, i) => submit(url, i)));
  for (;;) {
    const stats = JSON.parse((await request(`${url}/stats`, 'GET')).text) as {
      pending_jobs: number;
      running_jobs: number;
      completed_jobs: number;
    };
    if (stats.pending_jobs === 0 && stats.running_jobs === 0) {
      if (stats.completed_jobs !== SCALE_JOBS) throw new Error(`only ${stats.completed_jobs} of ${SCALE_JOBS} completed`);
      return (performance.now() - t0) / 1000;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function main(): Promise<void> {
  try {
    const sqlite = await deepQueue({});
    const redis = await deepQueue({ JOB_QUEUE_URL: await redisServer() });
    report(`${JOBS} jobs queued: SQLite | Redis (BullMQ), worker in its own process`, {
      'sqlite submissions/s': sqlite.perS,
      'redis submissions/s': redis.perS,
      'sqlite /status p50 ms': sqlite.p50,
      'redis /status p50 ms': redis.p50,
      'sqlite /status p99 ms': sqlite.p99,
      'redis /status p99 ms': redis.p99,
    });

    const alone = await worker({ COMFYUI_API_BASE: await simulator() });
    await waitHealthy(alone);
    const one = await timeJobs(alone);
    const shared = { JOB_QUEUE_URL: await redisServer(), JOB_QUEUE_LOCK_S: '5' };
    const first = await worker({ ...shared, COMFYUI_API_BASE: await simulator() });
    const second = await worker({ ...shared, COMFYUI_API_BASE: await simulator() });
    await waitHealthy(first);
    await waitHealthy(second);
    const two = await timeJobs(first);
    report(`${SCALE_JOBS} jobs of ~${4 * NODE_MS} ms: one worker (SQLite) | two workers on one Redis`, {
      'one worker: s': one,
      'two workers: s': two,
      'ratio (target <= 0.6)': two / one,
    });
  } finally {
    for (const child of children) child.kill('SIGTERM');
  }
}

main().catch((err: unknown) => {
  console.error(err);
  for (const child of children) child.kill('SIGKILL');
  process.exit(1);
});
