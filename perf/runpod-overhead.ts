// The RunPod door's cost per job against the HTTP door, on one simulator, interleaved in blocks:
//   - http:     POST /generate/sync on the HTTP door, request sent → answer read;
//   - runpod:   the serverless loop against an in-process control plane, job handed out on a
//               waiting job-take long-poll → its result received on job-done (parsing, the
//               taken-jobs inbox, the store, progress and result posts included);
//   - runsync:  the local test API's POST /runsync (SERVE_API_LOCALLY), for reference.
// Prints the medians and the ratio runpod / http (1.0 = no overhead), and the loop's cycle
// (result received → next job-take arriving).
//
//   npm run build && node dist/perf/runpod-overhead.js [--jobs 200] [--exec-ms 10]
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { startWorker, type RunningWorker } from '../worker/app';
import { loadConfig } from '../worker/config';
import { createLogger } from '../worker/observability/logger';
import { startSimulator } from '../simulator';
import { arg, median, percentile, report, timeEach } from './stats';

const JOBS = arg('--jobs', 200);
const EXEC_MS = arg('--exec-ms', 10);
const KEY = 'perf-key';

function workflow(i: number) {
  return {
    '1': { class_type: 'EmptyImage', inputs: { width: 64, height: 64, batch_size: 1, color: i % 16777215 } },
    '2': { class_type: 'SaveImage', inputs: { images: ['1', 0], filename_prefix: 'perf' } },
  };
}

/** A control plane that hands out one job per waiting job-take and reports each result. */
async function startPlane() {
  let waiting: http.ServerResponse | undefined;
  let onPoll: (() => void) | undefined;
  let onResult: ((at: number) => void) | undefined;
  const polls: number[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const url = req.url ?? '';
      if (url.includes('/job-take/')) {
        polls.push(performance.now());
        waiting = res;
        onPoll?.();
        return;
      }
      if (url.includes('/job-done/')) {
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { status?: string; output?: { images?: unknown[] } };
        res.writeHead(200).end('{}');
        if (body.status === 'IN_PROGRESS') return;
        if (!body.output?.images?.length) throw new Error(`a job failed: ${JSON.stringify(body).slice(0, 300)}`);
        onResult?.(performance.now());
        return;
      }
      // job-stop: nothing to stop; ping: fine.
      if (url.includes('/job-stop/')) setTimeout(() => res.writeHead(204).end(), 30_000).unref();
      else res.writeHead(200).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v2/perf`;
  return {
    url,
    polls,
    /** Hands job `id` to the waiting poll (waiting for one first); resolves when its result is in. */
    async run(id: string, input: unknown): Promise<number> {
      if (waiting === undefined) await new Promise<void>((resolve) => (onPoll = resolve));
      const res = waiting!;
      waiting = undefined;
      const result = new Promise<number>((resolve) => (onResult = resolve));
      const t0 = performance.now();
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ id, input }));
      return (await result) - t0;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

async function post(url: string, body: unknown, check: (parsed: any) => boolean): Promise<void> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const parsed: unknown = await res.json();
  if (res.status !== 200 || !check(parsed)) throw new Error(`${url} answered ${res.status}`);
}

async function main(): Promise<void> {
  const sim = await startSimulator({ nodeDelayMs: { EmptyImage: EXEC_MS } });
  const plane = await startPlane();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'perf-runpod-'));
  const common = { COMFYUI_API_BASE: sim.url, API_HOST: '127.0.0.1', API_PORT: '0', LOG_LEVEL: 'silent' };
  const start = (env: Record<string, string>): Promise<RunningWorker> =>
    startWorker(loadConfig({ ...common, ...env }), { logger: createLogger('silent') });
  const httpWorker = await start({ SQLITE_DB_PATH: path.join(dir, 'http', 'jobs.db') });
  const runpodWorker = await start({
    WORKER_MODE: 'runpod',
    SQLITE_DB_PATH: path.join(dir, 'runpod', 'jobs.db'),
    RUNPOD_WEBHOOK_GET_JOB: `${plane.url}/job-take/$RUNPOD_POD_ID?gpu=SIM`,
    RUNPOD_WEBHOOK_POST_OUTPUT: `${plane.url}/job-done/$RUNPOD_POD_ID/$ID?gpu=SIM`,
    RUNPOD_WEBHOOK_PING: `${plane.url}/ping/$RUNPOD_POD_ID?gpu=SIM`,
    RUNPOD_AI_API_KEY: KEY,
    RUNPOD_POD_ID: 'perf-pod',
  });
  const localWorker = await start({ SERVE_API_LOCALLY: 'true', SQLITE_DB_PATH: path.join(dir, 'local', 'jobs.db') });
  for (const w of [httpWorker, runpodWorker, localWorker]) while (!w.comfy.isReady) await new Promise((r) => setTimeout(r, 10));

  let n = 0;
  const viaHttp = (i: number) =>
    post(`${httpWorker.url}/generate/sync`, { input: { workflow_json: workflow(i) } }, (b) => Boolean(b.output?.[0]?.data));
  const runpodTimes: number[] = [];
  const viaRunpod = async (i: number) => {
    runpodTimes.push(await plane.run(`perf-${n++}`, { workflow: workflow(i) }));
  };
  const viaRunsync = (i: number) =>
    post(`${localWorker.url}/runsync`, { input: { workflow: workflow(i) } }, (b) => b.status === 'COMPLETED');

  // Warm-up, then interleaved blocks so drift hits all three alike.
  await timeEach(20, (i) => viaHttp(1_000_000 + i));
  await timeEach(20, (i) => viaRunpod(1_000_000 + i));
  await timeEach(20, (i) => viaRunsync(1_000_000 + i));
  runpodTimes.length = 0;
  const httpTimes: number[] = [];
  const runsyncTimes: number[] = [];
  const pollsBefore = plane.polls.length;
  let cycles: number[] = [];
  for (let block = 0; block < JOBS / 20; block++) {
    httpTimes.push(...(await timeEach(20, (i) => viaHttp(block * 20 + i))));
    const t = await timeEach(20, (i) => viaRunpod(block * 20 + i));
    // Total time of the block minus handout→result: the time from a result to the next poll.
    cycles = cycles.concat(t.map((total, k) => total - runpodTimes[runpodTimes.length - 20 + k]!));
    runsyncTimes.push(...(await timeEach(20, (i) => viaRunsync(block * 20 + i))));
  }

  const httpMedian = median(httpTimes);
  const runpodMedian = median(runpodTimes);
  report('runpod door overhead (per job, end to end)', {
    jobs: JOBS,
    exec_ms: EXEC_MS,
    http_door_median_ms: httpMedian,
    http_door_p99_ms: percentile(httpTimes, 99),
    runpod_serverless_median_ms: runpodMedian,
    runpod_serverless_p99_ms: percentile(runpodTimes, 99),
    runpod_local_runsync_median_ms: median(runsyncTimes),
    overhead_median_ms: runpodMedian - httpMedian,
    ratio_runpod_to_http: runpodMedian / httpMedian,
    ratio_runsync_to_http: median(runsyncTimes) / httpMedian,
    loop_result_to_next_poll_median_ms: median(cycles),
    job_takes: plane.polls.length - pollsBefore,
  });

  await localWorker.stop();
  await runpodWorker.stop();
  await httpWorker.stop();
  await plane.close();
  await sim.close();
  fs.rmSync(dir, { recursive: true, force: true });
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
