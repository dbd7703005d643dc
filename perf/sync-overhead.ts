// The worker's own cost per job. Runs N sequential jobs through the worker's /generate/sync and
// the same N through a minimal direct ComfyUI client (websocket + /prompt + /history + /view),
// both against the simulator with a fixed execution time, and prints both medians and their
// difference. Then submits 16 jobs at once and compares with 16 x one job.
//
//   npm run build && node dist/perf/sync-overhead.js [--jobs 200] [--exec-ms 10]
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import os from 'node:os';
import fs from 'node:fs';
import WebSocket from 'ws';
import { startWorker } from '../worker/app';
import { loadConfig } from '../worker/config';
import { createLogger } from '../worker/observability/logger';
import { startSimulator } from '../simulator';
import { arg, median, percentile, report, timeEach } from './stats';

const JOBS = arg('--jobs', 200);
const EXEC_MS = arg('--exec-ms', 10);

function workflow(i: number) {
  return {
    '1': { class_type: 'EmptyImage', inputs: { width: 64, height: 64, batch_size: 1, color: i % 16777215 } },
    '2': { class_type: 'SaveImage', inputs: { images: ['1', 0], filename_prefix: 'perf' } },
  };
}

/** The smallest correct client: listen, submit, wait for `executing null`, read history, fetch files. */
class DirectClient {
  private readonly ws: WebSocket;
  private readonly clientId = randomUUID();
  private readonly waiting = new Map<string, () => void>();

  private constructor(private readonly base: string) {
    this.ws = new WebSocket(`${base.replace('http', 'ws')}/ws?clientId=${this.clientId}`);
    this.ws.on('message', (data, binary) => {
      if (binary) return;
      const msg = JSON.parse(data.toString()) as { type: string; data: { node?: unknown; prompt_id?: string } };
      if (msg.type === 'executing' && msg.data.node === null && msg.data.prompt_id) this.waiting.get(msg.data.prompt_id)?.();
    });
  }

  static async connect(base: string): Promise<DirectClient> {
    const client = new DirectClient(base);
    await new Promise((resolve, reject) => client.ws.once('open', resolve).once('error', reject));
    return client;
  }

  async run(prompt: unknown): Promise<Buffer[]> {
    const promptId = randomUUID();
    const done = new Promise<void>((resolve) => this.waiting.set(promptId, resolve));
    const res = await fetch(`${this.base}/prompt`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ prompt, client_id: this.clientId, prompt_id: promptId }),
    });
    if (res.status !== 200) throw new Error(`prompt ${res.status}`);
    await res.arrayBuffer();
    await done;
    this.waiting.delete(promptId);
    const history = (await (await fetch(`${this.base}/history/${promptId}`)).json()) as Record<
      string,
      { outputs: Record<string, { images?: Array<{ filename: string; subfolder: string; type: string }> }> }
    >;
    const files: Buffer[] = [];
    for (const output of Object.values(history[promptId]!.outputs)) {
      for (const image of output.images ?? []) {
        const query = new URLSearchParams({ filename: image.filename, subfolder: image.subfolder, type: image.type });
        files.push(Buffer.from(await (await fetch(`${this.base}/view?${query}`)).arrayBuffer()));
      }
    }
    return files;
  }

  close(): void {
    this.ws.close();
  }
}

async function main(): Promise<void> {
  const sim = await startSimulator({ nodeDelayMs: { EmptyImage: EXEC_MS } });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'perf-sync-'));
  const config = loadConfig({
    COMFYUI_API_BASE: sim.url,
    API_HOST: '127.0.0.1',
    API_PORT: '0',
    SQLITE_DB_PATH: path.join(dir, 'jobs.db'),
    LOG_LEVEL: 'silent',
  });
  const worker = await startWorker(config, { logger: createLogger('silent') });
  while (!worker.comfy.isReady) await new Promise((r) => setTimeout(r, 10));
  const direct = await DirectClient.connect(sim.url);

  const viaWorker = async (i: number) => {
    const res = await fetch(`${worker.url}/generate/sync`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ input: { workflow_json: workflow(i) } }),
    });
    const body = (await res.json()) as { status: string; output: Array<{ data?: string }> };
    if (res.status !== 200 || !body.output[0]?.data) throw new Error(`worker answered ${res.status}`);
  };
  const viaDirect = async (i: number) => {
    const files = await direct.run(workflow(i));
    if (files.length !== 1) throw new Error('direct client got no file');
  };

  // Warm both paths (JIT, connections), then interleave in blocks so drift hits both equally.
  await timeEach(20, (i) => viaWorker(1_000_000 + i));
  await timeEach(20, (i) => viaDirect(2_000_000 + i));
  const workerTimes: number[] = [];
  const directTimes: number[] = [];
  for (let block = 0; block < JOBS / 20; block++) {
    workerTimes.push(...(await timeEach(20, (i) => viaWorker(block * 20 + i))));
    directTimes.push(...(await timeEach(20, (i) => viaDirect(500_000 + block * 20 + i))));
  }

  const single = median(await timeEach(10, (i) => viaWorker(3_000_000 + i)));
  const t0 = performance.now();
  await Promise.all(Array.from({ length: 16 }, (_, i) => viaWorker(4_000_000 + i)));
  const burst = performance.now() - t0;

  report('sync overhead', {
    jobs: JOBS,
    exec_ms: EXEC_MS,
    worker_median_ms: median(workerTimes),
    worker_p99_ms: percentile(workerTimes, 99),
    direct_median_ms: median(directTimes),
    direct_p99_ms: percentile(directTimes, 99),
    overhead_median_ms: median(workerTimes) - median(directTimes),
    ratio: median(workerTimes) / median(directTimes),
    burst16_ms: burst,
    single_job_ms: single,
    burst16_over_16x_single: burst / (16 * single),
  });

  direct.close();
  await worker.stop();
  await sim.close();
  fs.rmSync(dir, { recursive: true, force: true });
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
