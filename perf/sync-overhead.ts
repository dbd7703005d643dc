// What a user of /generate/sync sees, against a direct ComfyUI client on the same server. The
// simulator (with the recorded server's timing: `--timing recorded`, see simulator/timing.ts) and
// two workers (outputs through /view, and outputs read from COMFYUI_OUTPUT_DIR) run as separate
// processes; this process is the client of all three. The direct client is what a careful user
// would write: one websocket opened beforehand, POST /prompt with its own prompt id, wait for
// `executing` null, GET /history/{id}, GET /view of each file, over one keep-alive agent. The
// worker's client: POST /generate/sync over the same kind of agent, outputs inline (base64).
//
// Per output size (64x64 and 512x512 PNGs, each job a new colour so nothing is cached), the three
// paths take turns job by job, each round in another of their orders. Printed: median and p99 per path, the
// worker's added median (the median over rounds of its job's time minus the direct job's of the
// same round, so a slow spell of a shared machine cancels out) and added p99 over direct (targets:
// ≤ 1 ms with /view, ≤ 0 ms from disk), and
// 16 jobs submitted at once (direct: 16 prompts queued at once, each collected as it ends) as the
// ratio of the worker's wall time to the direct client's (target ≤ 1.05), median of several bursts.
// Also printed: the worker's CPU time per job (from /proc, 10 ms resolution, summed over its jobs),
// which other load on the machine does not change as it changes latencies.
//
//   npm run build && node dist/perf/sync-overhead.js [--jobs 200] [--bursts 7] [--cpu-prof DIR] [--queue-ahead N]
//                                                    [--compare DIR [--mode view|disk]]
//
// --cpu-prof DIR starts the /view worker with `node --cpu-prof` (a .cpuprofile in DIR at exit).
// --compare DIR runs another build (DIR is its dist folder, e.g. of a `git worktree` after `npm ci
// && npm run build`) against this one instead of the two modes, both reading outputs from disk
// (or through /view with --mode view): an A/B of a change, each build's job paired with the direct
// job of its round. Two copies of one build differ by about 0.4 ms: the resolution of such a test.
import type { ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';
import { startProcess, stopProcess } from './processes';
import { median, percentile } from './stats';

const argv = process.argv;
const flag = (name: string): string | undefined => (argv.includes(name) ? argv[argv.indexOf(name) + 1] : undefined);
const JOBS = Number(flag('--jobs') ?? 200);
const BURSTS = Number(flag('--bursts') ?? 7);
const CPU_PROF = flag('--cpu-prof');
/** Another build's dist folder (in a checkout with its node_modules) to run against this one. */
const COMPARE = flag('--compare');
/** With --compare: both builds read outputs through /view, or from disk (the default). */
const COMPARE_MODE = flag('--mode') ?? 'disk';
/** COMFY_QUEUE_AHEAD for both workers (the worker's default when not given). */
const QUEUE_AHEAD = flag('--queue-ahead');
const DIST = path.join(__dirname, '..');

type Workflow = Record<string, { class_type: string; inputs: Record<string, unknown> }>;
let colour = 0x102031;
/** EmptyImage → ImageInvert → SaveImage, as timing_runs.json's workflow (a); a new colour each time. */
function workflow(size: number): Workflow {
  colour = (colour + 1) % 0xffffff;
  return {
    '1': { class_type: 'EmptyImage', inputs: { width: size, height: size, batch_size: 1, color: colour } },
    '2': { class_type: 'ImageInvert', inputs: { image: ['1', 0] } },
    '3': { class_type: 'SaveImage', inputs: { images: ['2', 0], filename_prefix: `perf${size}` } },
  };
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 32 });

function call(method: string, url: string, body?: unknown): Promise<{ status: number; bytes: Buffer }> {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const req = http.request(
      url,
      {
        method,
        agent,
        headers: data ? { 'content-type': 'application/json', 'content-length': data.length } : {},
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, bytes: Buffer.concat(chunks) }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(data);
  });
}

interface FileRef {
  filename: string;
  subfolder: string;
  type: string;
}

/** The direct ComfyUI client: one websocket, then /prompt, `executing` null, /history, /view. */
class DirectClient {
  private readonly clientId = randomUUID();
  private readonly waiting = new Map<string, () => void>();
  private ws!: WebSocket;

  constructor(private readonly base: string) {}

  async connect(): Promise<void> {
    this.ws = new WebSocket(`${this.base.replace('http', 'ws')}/ws?clientId=${this.clientId}`);
    this.ws.on('message', (data, binary) => {
      if (binary) return;
      const msg = JSON.parse(data.toString()) as { type: string; data: { node?: unknown; prompt_id?: string } };
      if (msg.type === 'executing' && msg.data.node === null && msg.data.prompt_id) this.waiting.get(msg.data.prompt_id)?.();
    });
    await new Promise((resolve, reject) => this.ws.once('open', resolve).once('error', reject));
  }

  async run(prompt: Workflow): Promise<Buffer[]> {
    const promptId = randomUUID();
    const done = new Promise<void>((resolve) => this.waiting.set(promptId, resolve));
    const answer = await call('POST', `${this.base}/prompt`, { prompt, client_id: this.clientId, prompt_id: promptId });
    if (answer.status !== 200) throw new Error(`/prompt ${answer.status}: ${answer.bytes.toString()}`);
    await done;
    this.waiting.delete(promptId);
    const history = JSON.parse((await call('GET', `${this.base}/history/${promptId}`)).bytes.toString()) as Record<
      string,
      { outputs: Record<string, { images?: FileRef[] }> }
    >;
    const files: Buffer[] = [];
    for (const output of Object.values(history[promptId]!.outputs)) {
      for (const image of output.images ?? []) {
        const query = new URLSearchParams({ filename: image.filename, subfolder: image.subfolder, type: image.type });
        files.push((await call('GET', `${this.base}/view?${query}`)).bytes);
      }
    }
    if (files.length !== 1) throw new Error(`direct client got ${files.length} files`);
    return files;
  }

  close(): void {
    this.ws.close();
  }
}

async function viaWorker(url: string, prompt: Workflow): Promise<void> {
  const res = await call('POST', `${url}/generate/sync`, { input: { workflow_json: prompt } });
  const body = JSON.parse(res.bytes.toString()) as { output?: Array<{ data?: string }> };
  if (res.status !== 200 || !body.output?.[0]?.data)
    throw new Error(`worker answered ${res.status}: ${res.bytes.toString().slice(0, 300)}`);
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

async function startWorker(
  sim: string,
  name: string,
  env: Record<string, string>,
  prof?: string,
  dist = DIST,
): Promise<{ child: ChildProcess; url: string }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `perf-sync-${name}-`));
  const flags = [
    '--enable-source-maps',
    '--optimize-for-size',
    '--expose-gc',
    ...(prof ? ['--cpu-prof', '--cpu-prof-dir', prof] : []),
  ];
  const worker = await startProcess(
    process.execPath,
    [...flags, path.join(dist, 'worker', 'main.js')],
    {
      COMFYUI_API_BASE: sim,
      API_HOST: '127.0.0.1',
      API_PORT: '0',
      SQLITE_DB_PATH: path.join(dir, 'jobs.db'),
      LOG_LEVEL: 'info',
      ...(QUEUE_AHEAD ? { COMFY_QUEUE_AHEAD: QUEUE_AHEAD } : {}),
      ...env,
    },
    /"url":"([^"]+)"[^\n]*"msg":"worker started"/,
  );
  for (;;) {
    const health = await call('GET', `${worker.match}/health`).catch(() => ({ status: 0, bytes: Buffer.alloc(0) }));
    if (health.status === 200) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  return { child: worker.child, url: worker.match };
}

/** CPU milliseconds a process has used (user + system), from /proc: unaffected by other load. */
function cpuMs(pid: number | undefined): number {
  const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100; // utime, stime in USER_HZ (100)
}

/** Every order of the items. */
function permutations<T>(items: T[]): T[][] {
  if (items.length <= 1) return [items];
  return items.flatMap((item, i) => permutations([...items.slice(0, i), ...items.slice(i + 1)]).map((rest) => [item, ...rest]));
}

function row(label: string, values: Array<string | number>): void {
  console.log(`  ${label.padEnd(34)} ${values.map((v) => (typeof v === 'number' ? v.toFixed(2) : v).padStart(9)).join(' ')}`);
}

async function main(): Promise<void> {
  const data = fs.mkdtempSync(path.join(os.tmpdir(), 'perf-sync-sim-'));
  const sim = await startProcess(
    process.execPath,
    [path.join(DIST, 'simulator', 'cli.js'), '--port', '0', '--timing', 'recorded', '--data-dir', data],
    {},
    /listening on (\S+)/,
  );
  const simUrl = sim.match;
  const disk = { COMFYUI_OUTPUT_DIR: path.join(data, 'output') };
  const compared = COMPARE_MODE === 'view' ? {} : disk;
  // Two modes of this build, or (--compare) another build against this one in one mode.
  const slots = COMPARE
    ? [
        { name: 'worker other build', dist: COMPARE, env: compared },
        { name: 'worker this build', dist: DIST, env: compared },
      ]
    : [
        { name: 'worker /view', dist: DIST, env: {} },
        { name: 'worker disk', dist: DIST, env: disk },
      ];
  const workers = await Promise.all(
    slots.map((slot, i) => startWorker(simUrl, `w${i}`, slot.env, i === 0 ? CPU_PROF : undefined, slot.dist)),
  );
  const direct = new DirectClient(simUrl);
  await direct.connect();
  const paths: Record<string, (size: number) => Promise<unknown>> = {
    direct: (size) => direct.run(workflow(size)),
    ...Object.fromEntries(slots.map((slot, i) => [slot.name, (size: number) => viaWorker(workers[i]!.url, workflow(size))])),
  };
  const names = Object.keys(paths);
  try {
    console.log(
      `sync overhead: ${JOBS} jobs per path and size, worker, simulator (--timing recorded) and client in separate processes`,
    );
    for (const size of [64, 512]) {
      // Warm-up: JIT, connections, the simulator's caches of node classes.
      for (const name of names) for (let i = 0; i < 20; i++) await paths[name]!(size);
      const times: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]));
      const pids = Object.fromEntries(slots.map((slot, i) => [slot.name, workers[i]!.child.pid]));
      const cpu: Record<string, number> = Object.fromEntries(slots.map((slot) => [slot.name, 0]));
      // One job per path per round, each round in the next of the paths' orders: a slow spell of
      // the machine hits every path alike, each path follows every other equally often (a worker
      // still logging its last job slows whatever runs next), and each worker job is compared with
      // the direct job of its own round.
      const orders = permutations(names);
      for (let round = 0; round < JOBS; round++) {
        for (const name of orders[round % orders.length]!) {
          const before = name in pids ? cpuMs(pids[name]) : 0;
          times[name]!.push(await timed(() => paths[name]!(size)));
          if (name in pids) cpu[name]! += cpuMs(pids[name]) - before;
        }
      }
      console.log(`\n${size}x${size} output                          median       p99  added median  added p99  worker CPU/job`);
      const base = times.direct!;
      for (const name of names) {
        const t = times[name]!;
        const added =
          name === 'direct'
            ? ['', '', '']
            : [median(t.map((ms, i) => ms - base[i]!)), percentile(t, 99) - percentile(base, 99), cpu[name]! / t.length];
        row(name, [median(t), percentile(t, 99), ...added]);
      }
      // 16 at once: the direct client queues all 16 prompts, then collects each as it ends.
      const bursts: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]));
      for (let b = 0; b < BURSTS; b++) {
        const order = names.map((_, k) => names[(k + b) % names.length]!);
        for (const name of order) {
          bursts[name]!.push(await timed(() => Promise.all(Array.from({ length: 16 }, () => paths[name]!(size)))));
        }
      }
      console.log(`  16 at once (median of ${BURSTS} bursts)             ms   / direct`);
      for (const name of names) row(name, [median(bursts[name]!), median(bursts[name]!) / median(bursts.direct!)]);
    }
  } finally {
    direct.close();
    agent.destroy();
    await Promise.all(workers.map((worker) => stopProcess(worker.child)));
    await stopProcess(sim.child);
    fs.rmSync(data, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
