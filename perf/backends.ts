// Several ComfyUI backends per worker: 40 jobs through one worker with one simulator backend, then
// with two, each job taking ~200 ms of execution (4 nodes at 50 ms; each job's workflow differs
// so ComfyUI's cache cannot answer it). Worker and simulators run as separate processes, the
// client here. Printed: wall time for each, and their ratio (target ≤ 0.6).
//
//   npm run build && node dist/perf/backends.js [--jobs 40] [--node-ms 50]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startProcess } from './processes';
import { uncachedWorkflow } from './load';
import { arg, report } from './stats';

const JOBS = arg('--jobs', 40);
const NODE_MS = arg('--node-ms', 50);
const DIST = path.join(__dirname, '..');

const simulator = () =>
  startProcess(
    process.execPath,
    [path.join(DIST, 'simulator', 'cli.js'), '--port', '0', '--node-delay-ms', String(NODE_MS)],
    {},
    /listening on (\S+)/,
  );

async function timeJobs(backends: string[]): Promise<number> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'perf-backends-'));
  const worker = await startProcess(
    process.execPath,
    ['--optimize-for-size', '--expose-gc', path.join(DIST, 'worker', 'main.js')],
    {
      COMFYUI_API_BASE: backends.join(','),
      API_HOST: '127.0.0.1',
      API_PORT: '0',
      SQLITE_DB_PATH: path.join(dir, 'jobs.db'),
      LOG_LEVEL: 'info',
    },
    /"url":"([^"]+)"[^\n]*"msg":"worker started"/,
  );
  const url = worker.match;
  try {
    // Wait until every backend is connected.
    for (;;) {
      const health = (await (await fetch(`${url}/health`)).json()) as { backends?: Array<{ healthy: boolean }>; status: string };
      if ((health.backends ?? [health]).every((b) => ('healthy' in b ? b.healthy : health.status === 'healthy'))) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: JOBS }, (_, i) =>
        fetch(`${url}/run`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ workflow: uncachedWorkflow(i) }),
        }),
      ),
    );
    for (;;) {
      const stats = (await (await fetch(`${url}/stats`)).json()) as {
        pending_jobs: number;
        running_jobs: number;
        completed_jobs: number;
      };
      if (stats.pending_jobs === 0 && stats.running_jobs === 0) {
        if (stats.completed_jobs !== JOBS) throw new Error(`only ${stats.completed_jobs} of ${JOBS} jobs completed`);
        break;
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    return (performance.now() - t0) / 1000;
  } finally {
    worker.child.kill('SIGTERM');
  }
}

async function main(): Promise<void> {
  const sims = [await simulator(), await simulator(), await simulator()];
  try {
    // A fresh simulator for each run, so neither is answered from the other's cache.
    const one = await timeJobs([sims[0]!.match]);
    const two = await timeJobs([sims[1]!.match, sims[2]!.match]);
    report(`${JOBS} jobs of ~${4 * NODE_MS} ms, one worker (separate processes)`, {
      'one backend: s': one,
      'two backends: s': two,
      'ratio (target <= 0.6)': two / one,
    });
  } finally {
    for (const sim of sims) sim.child.kill('SIGTERM');
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
