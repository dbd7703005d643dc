// The job API under a deep queue. The worker runs in this process with its runner paused; a child
// process (this script with --load) runs the simulator and the clients, so they neither take the
// worker's CPU nor count in its memory. The clients submit N jobs through POST /run (one at a
// time, then 16 at once) and, with all N queued, time GET /status on random jobs and GET /stats.
// Printed: submissions per second, /status and /stats median and p99, the worker's RSS.
// Run it with the V8 flags the worker runs with (`npm start`, the Docker image): the RSS is V8's
// heap slack after the burst of request garbage, not the queue (jobs live in SQLite).
//
//   npm run build && node --optimize-for-size dist/perf/jobs-api.js [--jobs 10000] [--samples 2000]
import { fork, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startWorker } from '../worker/app';
import { loadConfig } from '../worker/config';
import { createLogger } from '../worker/observability/logger';
import { startSimulator } from '../simulator';
import { keepAliveClient } from './load';
import { arg, median, percentile, report } from './stats';

const JOBS = arg('--jobs', 10_000);
const SAMPLES = arg('--samples', 2_000);
const CONCURRENCY = 16;
const TARGETS = { submissionsPerS: 2_000, statusP99Ms: 5, rssMb: 150 };

// A realistic body: the SD1.5 text-to-image graph (the Text2Image template).
const WORKFLOW = JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'modifiers', 'text2image.json'), 'utf8')) as unknown;

interface LoadReport {
  sequentialS: number;
  concurrentS: number;
  sequential: number;
  statusMs: number[];
  statsMs: number[];
}

type ToLoad = { workerUrl: string } | { close: true };
type FromLoad = { simUrl: string } | { report: LoadReport };

// ---- the load process: simulator and clients ----

const request = keepAliveClient(CONCURRENCY);

async function submit(url: string, i: number): Promise<string> {
  const res = await request(`${url}/run`, 'POST', JSON.stringify({ workflow: WORKFLOW, images: [], note: i }));
  const body = JSON.parse(res.text) as { job_id?: string };
  if (res.status !== 200 || body.job_id === undefined) throw new Error(`/run answered ${res.status}`);
  return body.job_id;
}

async function timed(url: string): Promise<number> {
  const started = performance.now();
  const res = await request(url, 'GET');
  if (res.status !== 200) throw new Error(`${url} answered ${res.status}`);
  return performance.now() - started;
}

async function load(url: string): Promise<LoadReport> {
  const ids: string[] = [];
  // One client, one request at a time: the latency of a submission.
  const sequential = Math.floor(JOBS / 2);
  let started = performance.now();
  for (let i = 0; i < sequential; i++) ids.push(await submit(url, i));
  const sequentialS = (performance.now() - started) / 1000;

  // 16 clients at once: the door's capacity.
  started = performance.now();
  let next = sequential;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < JOBS) ids.push(await submit(url, next++));
    }),
  );
  const concurrentS = (performance.now() - started) / 1000;

  const statusMs: number[] = [];
  for (let i = 0; i < SAMPLES; i++) statusMs.push(await timed(`${url}/status/${ids[Math.floor(Math.random() * ids.length)]!}`));
  const statsMs: number[] = [];
  for (let i = 0; i < 200; i++) statsMs.push(await timed(`${url}/stats`));
  return { sequentialS, concurrentS, sequential, statusMs, statsMs };
}

async function loadProcess(): Promise<void> {
  const sim = await startSimulator();
  const send = (message: FromLoad) => process.send?.(message);
  process.on('message', (message: ToLoad) => {
    if ('workerUrl' in message) {
      load(message.workerUrl).then(
        (result) => send({ report: result }),
        (err: unknown) => {
          console.error(err);
          process.exit(1);
        },
      );
    } else void sim.close().then(() => process.exit(0));
  });
  send({ simUrl: sim.url });
}

// ---- the worker process ----

function nextMessage(child: ChildProcess): Promise<FromLoad> {
  return new Promise((resolve, reject) => {
    const onExit = (code: number | null) => reject(new Error(`the load process exited with ${code}`));
    child.once('exit', onExit);
    child.once('message', (message) => {
      child.off('exit', onExit);
      resolve(message as FromLoad);
    });
  });
}

async function main(): Promise<void> {
  const child = fork(__filename, ['--load', ...process.argv.slice(2)]);
  const hello = await nextMessage(child);
  if (!('simUrl' in hello)) throw new Error('the load process did not start the simulator');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'perf-jobs-'));
  const config = loadConfig({
    COMFYUI_API_BASE: hello.simUrl,
    API_HOST: '127.0.0.1',
    API_PORT: '0',
    SQLITE_DB_PATH: path.join(dir, 'jobs.db'),
    MAX_QUEUE_SIZE: String(JOBS * 2 + 1),
    LOG_LEVEL: 'silent',
  });
  const worker = await startWorker(config, { logger: createLogger('silent') });
  worker.runner.pause();
  const rssBefore = process.memoryUsage().rss;
  let peakRss = rssBefore;
  const sampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 20);

  const done = nextMessage(child);
  child.send({ workerUrl: worker.url } satisfies ToLoad);
  const answer = await done;
  clearInterval(sampler);
  if (!('report' in answer)) throw new Error('the load process sent no report');
  const { sequentialS, concurrentS, sequential, statusMs, statsMs } = answer.report;
  const pending = (await worker.store.counts()).pending;
  const mb = (bytes: number) => bytes / 1024 / 1024;
  const rss = process.memoryUsage().rss;
  peakRss = Math.max(peakRss, rss);
  const concurrentRate = (JOBS - sequential) / concurrentS;

  const flags = process.execArgv.filter((a) => a.startsWith('--')).join(' ') || '(no V8 flags)';
  report(`Job API with ${pending} jobs queued (runner paused); node ${flags}`, {
    [`submissions/s, ${CONCURRENCY} clients`]: concurrentRate,
    'submissions/s, 1 client': sequential / sequentialS,
    '/status median ms': median(statusMs),
    '/status p99 ms': percentile(statusMs, 99),
    '/stats median ms': median(statsMs),
    '/stats p99 ms': percentile(statsMs, 99),
    'worker RSS MB, started': mb(rssBefore),
    'worker RSS MB, peak': mb(peakRss),
    'worker RSS MB, 10k queued': mb(rss),
  });
  const verdict = (ok: boolean) => (ok ? 'met' : 'MISSED');
  console.log(
    `\n  targets: ${CONCURRENCY}-client submissions/s >= ${TARGETS.submissionsPerS}: ${verdict(concurrentRate >= TARGETS.submissionsPerS)}; ` +
      `/status p99 < ${TARGETS.statusP99Ms} ms: ${verdict(percentile(statusMs, 99) < TARGETS.statusP99Ms)}; ` +
      `peak RSS < ${TARGETS.rssMb} MB: ${verdict(mb(peakRss) < TARGETS.rssMb)}`,
  );

  await worker.stop();
  child.send({ close: true } satisfies ToLoad);
  fs.rmSync(dir, { recursive: true, force: true });
}

(process.argv.includes('--load') ? loadProcess() : main()).catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
