// GET /metrics on the Vast door (and the RunPod local API): the process metrics, the worker's
// series, the benchmark score once loaded, websocket reconnects per backend; no job ids in labels.
import { startSimulator, type Simulator } from '../../simulator';
import { until } from '../support/worker';
import { withVastWorker } from './support/vast-worker';

let sim: Simulator;

beforeAll(async () => {
  sim = await startSimulator({ nodeDelayMs: 2 });
});
afterAll(async () => {
  await sim?.close();
});

const scrape = async (url: string) => {
  const res = await fetch(`${url}/metrics`);
  return { status: res.status, type: res.headers.get('content-type'), text: await res.text() };
};

test('the Vast door serves /metrics: process metrics, queue, backends, reconnects, webhooks, S3, benchmark', async () => {
  await withVastWorker(
    sim.url,
    { WEBSOCKET_RECONNECT_DELAY_S: '0.2', COMFY_READY_TIMEOUT_S: '30' },
    async (worker) => {
      const first = await scrape(worker.url);
      expect(first.status).toBe(200);
      expect(first.type).toMatch(/^text\/plain; version=0\.0\.4/);
      // prom-client's default process metrics.
      for (const name of [
        'process_cpu_user_seconds_total',
        'process_resident_memory_bytes',
        'process_start_time_seconds',
        'nodejs_eventloop_lag_seconds',
        'nodejs_heap_size_used_bytes',
        'nodejs_active_handles_total',
      ]) {
        expect(first.text).toMatch(new RegExp(`^${name}(\\{[^}]*\\})? \\S+`, 'm'));
      }
      for (const name of [
        'comfyui_worker_queue_depth',
        'comfyui_worker_comfy_up',
        'comfyui_worker_websocket_reconnects_total',
        'comfyui_worker_webhook_attempts_total',
        'comfyui_worker_webhooks',
        'comfyui_worker_s3_uploads_total',
        'comfyui_worker_benchmark_max_perf',
        'comfyui_worker_jobs_submitted_total',
      ]) {
        expect(first.text).toContain(`# HELP ${name} `);
      }
      expect(first.text).toMatch(/^comfyui_worker_queue_depth 0$/m);

      // Loaded from the cached benchmark: its score is exported.
      await until(async () => (await scrape(worker.url)).text.includes('comfyui_worker_benchmark_max_perf 3.5'), 10_000, 'score');
      expect((await scrape(worker.url)).text).toContain(`comfyui_worker_comfy_up{backend="${sim.url}"} 1`);

      // ComfyUI restarts: the websocket comes back, and that is counted for its backend.
      await sim.crash();
      await until(() => !worker.comfy.isReady, 5_000, 'the websocket lost');
      await sim.restart();
      await until(() => worker.comfy.isReady, 10_000, 'the websocket back');
      const after = await scrape(worker.url);
      expect(after.text).toContain(`comfyui_worker_websocket_reconnects_total{backend="${sim.url}"} 1`);
      // Bounded labels: no job or request id anywhere.
      expect(after.text).not.toMatch(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/);
      // Not a route the autoscaler needs, but the method rule holds as for the others.
      expect((await fetch(`${worker.url}/metrics`, { method: 'POST' })).status).toBe(405);
    },
    3.5,
  );
});
