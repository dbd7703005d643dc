// GET /status of a pending job with a deep queue: 10,000, 100,000 and 1,000,000 jobs waiting. For
// each depth a database is filled in one statement, the built worker is started on it as its own
// process (pointed at a ComfyUI that is not there, so nothing is taken from the queue), and this
// process reads /status of random pending jobs over a keep-alive connection, then /stats. Printed:
// median and p99 per depth (target: /status p99 < 5 ms and flat), and the query plans of the hot
// statements at a million.
//
//   npm run build && node dist/perf/queue-plans.js [--samples 2000] [--depths 10000,100000,1000000]
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { SqliteJobStore } from '../worker/jobs/sqlite/store';
import { SecretBox } from '../worker/secrets/secret-box';
import { fillQueue } from './fill-queue';
import { arg, median, percentile, report } from './stats';

const SAMPLES = arg('--samples', 2_000);
const at = process.argv.indexOf('--depths');
const DEPTHS = (at >= 0 ? (process.argv[at + 1] ?? '') : '10000,100000,1000000').split(',').map(Number);
const DIST = path.join(__dirname, '..');
// A realistic spec: the SD1.5 text-to-image graph, as /run would store it.
const SPEC = JSON.stringify({
  workflow: JSON.parse(fs.readFileSync(path.join(DIST, '..', 'modifiers', 'text2image.json'), 'utf8')) as unknown,
  includeTempOutputs: false,
  forceBase64: false,
  includeComfyResponse: false,
  allowPartial: false,
});

function startWorker(db: string): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, ['--optimize-for-size', '--expose-gc', path.join(DIST, 'worker', 'main.js')], {
    env: {
      PATH: process.env.PATH ?? '',
      COMFYUI_API_BASE: 'http://127.0.0.1:9',
      API_HOST: '127.0.0.1',
      API_PORT: '0',
      SQLITE_DB_PATH: db,
      MAX_QUEUE_SIZE: '2000000',
      LOG_LEVEL: 'info',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return new Promise((resolve, reject) => {
    let text = '';
    const onData = (chunk: Buffer) => {
      text += chunk.toString();
      const found = /"url":"([^"]+)"[^\n]*"msg":"worker started"/.exec(text);
      if (found?.[1]) resolve({ child, url: found[1] });
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', (code) => reject(new Error(`worker exited with ${code}:\n${text}`)));
  });
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
function get(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get(url, { agent }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      })
      .on('error', reject);
  });
}

async function time(n: number, url: (i: number) => string, check: (body: string, i: number) => void): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const { status, body } = await get(url(i));
    times.push(performance.now() - t0);
    if (status !== 200) throw new Error(`${url(i)}: ${status} ${body}`);
    check(body, i);
  }
  return times;
}

async function main(): Promise<void> {
  for (const depth of DEPTHS) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'perf-queue-'));
    const db = path.join(dir, 'jobs.db');
    const secrets = SecretBox.open({ keyFile: path.join(dir, 'job-secrets.key') });
    await new SqliteJobStore({ path: db, secrets }).close();
    const t0 = performance.now();
    fillQueue(db, depth, SPEC);
    const fillS = (performance.now() - t0) / 1000;
    const { child, url } = await startWorker(db);
    try {
      const picks = Array.from({ length: SAMPLES }, () => 1 + Math.floor(Math.random() * depth));
      await time(
        200,
        (i) => `${url}/status/fill-${picks[i % SAMPLES]}`,
        () => undefined,
      ); // warm-up
      const status = await time(
        SAMPLES,
        (i) => `${url}/status/fill-${picks[i]}`,
        (body, i) => {
          const position = (JSON.parse(body) as { queue_position?: number }).queue_position;
          if (position !== picks[i]! - 1) throw new Error(`fill-${picks[i]}: queue_position ${position}`);
        },
      );
      const stats = await time(
        200,
        () => `${url}/stats?include_recent=true`,
        () => undefined,
      );
      report(`${depth.toLocaleString('en')} jobs queued (filled in ${fillS.toFixed(1)} s)`, {
        'status p50 ms': median(status),
        'status p99 ms': percentile(status, 99),
        'stats p50 ms': median(stats),
        'stats p99 ms': percentile(stats, 99),
      });
    } finally {
      child.kill('SIGTERM');
      await new Promise((resolve) => child.once('exit', resolve));
    }
    if (depth === DEPTHS[DEPTHS.length - 1]) {
      const store = new SqliteJobStore({ path: db, secrets });
      console.log(`\nquery plans at ${depth.toLocaleString('en')} jobs`);
      for (const [name, steps] of Object.entries(store.queryPlans())) console.log(`  ${name.padEnd(18)} ${steps.join(' | ')}`);
      await store.close();
    }
    fs.rmSync(dir, { recursive: true, force: true });
  }
  agent.destroy();
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
