// What large payloads cost the worker in memory. Three processes: the built worker
// (dist/worker/main.js), the ComfyUI simulator (dist/simulator/cli.js) and this script as the
// client (and, for the S3 figure, an s3rver it runs). Each phase starts a fresh worker and
// simulator, warms the path up with one request, resets the worker's peak resident memory
// (/proc/<pid>/clear_refs) and reads it back (VmHWM) once the measured requests are answered and
// their jobs have ended. Printed: peak RSS growth over the RSS at the reset, in MB, beside the body
// or output size, and (for the output figures) the RSS at the reset and at the peak: a worker that
// starts smaller has less heap left over to absorb a job's garbage, so its growth can be larger
// while its peak is lower.
//
//   npm run build && node dist/perf/bytes.js [--skip-s3]
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';

const MB = 1024 * 1024;
const DIST = path.join(__dirname, '..');
const WORKER_MAIN = path.join(DIST, 'worker', 'main.js');
const SIMULATOR_CLI = path.join(DIST, 'simulator', 'cli.js');
const DEADLINE_MS = 120_000;

interface Proc {
  child: ChildProcess;
  url: string;
  stop(): Promise<void>;
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'perf-bytes-'));
const children = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of children) child.kill('SIGKILL');
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** Spawns a node script and resolves with the URL found in its output by `urlOf`. */
function spawnNode(args: string[], env: Record<string, string>, urlOf: (line: string) => string | undefined): Promise<Proc> {
  const child = spawn(process.execPath, args, {
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  let text = '';
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    await exited;
    clearTimeout(timer);
    children.delete(child);
  };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${args[0]} did not start in 20 s:\n${text}`)), 20_000);
    const onData = (chunk: Buffer) => {
      text += chunk.toString();
      for (const line of text.split('\n')) {
        const url = urlOf(line);
        if (url === undefined) continue;
        clearTimeout(timer);
        child.stdout?.off('data', onData);
        child.stdout?.resume();
        resolve({ child, url, stop });
        return;
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', (chunk: Buffer) => (text += chunk.toString()));
    void exited.then(() => reject(new Error(`${args[0]} exited before it started:\n${text}`)));
  });
}

function startSimulatorProcess(paddingBytes: number): Promise<Proc> {
  const args = [SIMULATOR_CLI, '--port', '0', '--node-delay-ms', '1', '--step-delay-ms', '1'];
  args.push('--data-dir', fs.mkdtempSync(path.join(tmp, 'sim-')), '--output-padding-bytes', String(paddingBytes));
  return spawnNode(args, {}, (line) => /listening on (http:\/\/\S+)/.exec(line)?.[1]);
}

function startWorkerProcess(comfyUrl: string, env: Record<string, string> = {}): Promise<Proc> {
  const dbPath = path.join(fs.mkdtempSync(path.join(tmp, 'worker-')), 'jobs.db');
  // The worker runs as `npm start` runs it.
  return spawnNode(
    ['--optimize-for-size', '--expose-gc', WORKER_MAIN],
    { COMFYUI_API_BASE: comfyUrl, API_HOST: '127.0.0.1', API_PORT: '0', SQLITE_DB_PATH: dbPath, LOG_LEVEL: 'info', ...env },
    (line) => (line.includes('"worker started"') ? (JSON.parse(line) as { url: string }).url : undefined),
  );
}

function procStatus(pid: number, field: string): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? NaN) * 1024;
}

/** Resets the peak (VmHWM) to the current RSS and returns that RSS. */
function resetPeak(pid: number): number {
  fs.writeFileSync(`/proc/${pid}/clear_refs`, '5');
  return procStatus(pid, 'VmRSS');
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });

/** A request whose answer is drained and counted, not kept (the client's memory is not measured, but stays small). */
function request(url: string, method: string, body?: Buffer): Promise<{ status: number; bytes: number; head: string }> {
  return new Promise((resolve, reject) => {
    const headers = body === undefined ? {} : { 'content-type': 'application/json', 'content-length': body.length };
    const req = http.request(url, { method, agent, headers, timeout: DEADLINE_MS }, (res) => {
      let bytes = 0;
      let head = '';
      res.on('data', (chunk: Buffer) => {
        if (head.length < 2_000) head += chunk.subarray(0, 2_000).toString('latin1');
        bytes += chunk.length;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, bytes, head }));
      res.on('error', reject);
    });
    req.once('timeout', () => req.destroy(new Error(`${method} ${url}: no answer within ${DEADLINE_MS} ms`)));
    req.once('error', reject);
    req.end(body);
  });
}

async function until(check: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + DEADLINE_MS;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function waitHealthy(url: string): Promise<void> {
  await until(async () => (await request(`${url}/health`, 'GET')).status === 200, 'the worker to be healthy');
}

async function waitEnded(url: string, jobId: string): Promise<string> {
  let status = '';
  await until(async () => {
    const res = await request(`${url}/status/${jobId}`, 'GET');
    status = /"status":"(\w+)"/.exec(res.head)?.[1] ?? '';
    return ['completed', 'failed', 'cancelled'].includes(status);
  }, `job ${jobId} to end`);
  return status;
}

const smallGraph = (prefix: string) => ({
  '1': { class_type: 'EmptyImage', inputs: { width: 64, height: 48, batch_size: 1, color: 255 } },
  '2': { class_type: 'SaveImage', inputs: { images: ['1', 0], filename_prefix: prefix } },
});

/** A /run body with one base64 image of `base64Chars` characters, built without a JS string of it. */
function runBody(base64Chars: number): Buffer {
  const bytes = randomBytes(Math.floor((base64Chars * 3) / 4));
  const head = Buffer.from(`{"workflow":${JSON.stringify(smallGraph('run'))},"images":[{"name":"big.png","image":"`);
  return Buffer.concat([head, Buffer.from(bytes.toString('base64')), Buffer.from('"}]}')]);
}

function mb(bytes: number): string {
  return (bytes / MB).toFixed(1);
}

async function runPhase(): Promise<void> {
  await withFreshWorker(0, {}, async (url, pid) => {
    const body = runBody(45_000_000);
    const base = resetPeak(pid);
    const res = await request(`${url}/run`, 'POST', body);
    if (res.status !== 200) throw new Error(`/run answered ${res.status}: ${res.head}`);
    const atAnswer = procStatus(pid, 'VmHWM') - base;
    const status = await waitEnded(url, (JSON.parse(res.head) as { job_id: string }).job_id);
    const total = procStatus(pid, 'VmHWM') - base;
    console.log(
      `POST /run with one base64 image, body ${mb(body.length)} MB (job ${status}): peak RSS growth ${mb(atAnswer)} MB ` +
        `until the answer (${(atAnswer / body.length).toFixed(2)}x the body), ${mb(total)} MB until the job ended (${(total / body.length).toFixed(2)}x)`,
    );
  });
}

const webpGraph = (prefix: string) => ({
  '1': { class_type: 'EmptyImage', inputs: { width: 64, height: 48, batch_size: 1, color: 255 } },
  '2': {
    class_type: 'SaveAnimatedWEBP',
    inputs: { images: ['1', 0], filename_prefix: prefix, fps: 6, lossless: true, quality: 80, method: 'default' },
  },
});

const syncBody = (workflow: unknown) => Buffer.from(JSON.stringify({ input: { workflow_json: workflow } }));

/**
 * A fresh simulator (PNG outputs padded to `outputBytes`) and worker; the path is warmed up with
 * a small (unpadded WEBP) output first, so one-time costs count but no earlier large payload
 * leaves its memory behind.
 */
async function withFreshWorker(
  outputBytes: number,
  env: Record<string, string>,
  measure: (url: string, pid: number) => Promise<void>,
) {
  const sim = await startSimulatorProcess(outputBytes);
  const worker = await startWorkerProcess(sim.url, env);
  try {
    await waitHealthy(worker.url);
    const warm = await request(`${worker.url}/generate/sync`, 'POST', syncBody(webpGraph('warm')));
    if (warm.status !== 200) throw new Error(`warm-up answered ${warm.status}: ${warm.head}`);
    await measure(worker.url, worker.child.pid!);
  } finally {
    await worker.stop();
    await sim.stop();
  }
}

async function syncPhase(outputBytes: number, n: number): Promise<void> {
  await withFreshWorker(outputBytes, {}, async (url, pid) => {
    const base = resetPeak(pid);
    const answers = await Promise.all(
      Array.from({ length: n }, (_, i) => request(`${url}/generate/sync`, 'POST', syncBody(smallGraph(`s${i}`)))),
    );
    const growth = procStatus(pid, 'VmHWM') - base;
    const bad = answers.find((a) => a.status !== 200 || a.bytes < (outputBytes * 4) / 3);
    if (bad) throw new Error(`/generate/sync answered ${bad.status} with ${bad.bytes} bytes: ${bad.head}`);
    console.log(
      `/generate/sync, ${n} at once, one ${mb(outputBytes)} MB output each inline (answers of ${mb(answers[0]!.bytes)} MB): ` +
        `peak RSS growth ${mb(growth)} MB (${(growth / outputBytes / n).toFixed(2)}x the output per job in flight; ` +
        `${mb(base)} → ${mb(base + growth)} MB)`,
    );
  });
}

async function s3Phase(outputBytes: number): Promise<void> {
  // s3rver is a development dependency: loaded only here.
  const S3rver = createRequire(__filename)('s3rver') as new (opts: Record<string, unknown>) => {
    run(): Promise<AddressInfo>;
    close(): Promise<void>;
  };
  const s3 = new S3rver({
    port: 0,
    address: '127.0.0.1',
    silent: true,
    directory: fs.mkdtempSync(path.join(tmp, 's3-')),
    configureBuckets: [{ name: 'outputs' }],
  });
  const address = await s3.run();
  const env = {
    S3_ACCESS_KEY_ID: 'S3RVER',
    S3_SECRET_ACCESS_KEY: 'S3RVER',
    S3_BUCKET_NAME: 'outputs',
    S3_ENDPOINT_URL: `http://127.0.0.1:${address.port}`,
  };
  try {
    await withFreshWorker(outputBytes, env, async (url, pid) => {
      const base = resetPeak(pid);
      const res = await request(`${url}/generate/sync`, 'POST', syncBody(smallGraph('u')));
      const growth = procStatus(pid, 'VmHWM') - base;
      if (res.status !== 200 || !res.head.includes('"url":'))
        throw new Error(`/generate/sync answered ${res.status}: ${res.head}`);
      console.log(
        `S3 upload of one ${mb(outputBytes)} MB output (/generate/sync): peak RSS growth ${mb(growth)} MB (${mb(base)} → ${mb(base + growth)} MB)`,
      );
    });
  } finally {
    await s3.close();
  }
}

async function main(): Promise<void> {
  console.log(`perf/bytes: ${new Date().toISOString().slice(0, 10)}, ${os.cpus().length} cores, node ${process.version}`);
  await runPhase();
  await syncPhase(8 * MB, 1);
  await syncPhase(8 * MB, 4);
  if (!process.argv.includes('--skip-s3')) await s3Phase(100 * MB);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
