// The Vast door's life against a fake autoscaler and the simulator: loading reports, the
// benchmark, the "ready" report, signed requests moving cur_load / new_load / cur_perf /
// working_request_idxs, and /delete_requests/ listing every finished request.
import { startSimulator, type Simulator } from '../../simulator';
import { getJson, until } from '../support/worker';
import { startFakeAutoscaler, type FakeAutoscaler } from './support/fake-autoscaler';
import { DELETE_ITEM_FIELDS, rawToken, statusShapeProblems } from './support/report-shape';
import {
  CONTAINER_ID,
  envelopeText,
  postText,
  PUBLIC_URL,
  quickPayload,
  startVastWorker,
  type VastTestWorker,
} from './support/vast-worker';

let sim: Simulator;
let fake: FakeAutoscaler;
let worker: VastTestWorker;

beforeAll(async () => {
  // Benchmark runs take ~0.5 s each (3 steps x 150 ms); requests hold EmptyImage for 700 ms.
  sim = await startSimulator({ stepDelayMs: 150, nodeDelayMs: { EmptyImage: 700 } });
  fake = await startFakeAutoscaler({ scheme: 'url' });
  worker = await startVastWorker(sim.url, fake, { VAST_SIGNATURE_SCHEME: 'url' });
});
afterAll(async () => {
  await worker?.stop();
  await fake?.close();
  await sim?.close();
});

const loadedReport = () => fake.statusReports.find((r) => r.body.max_perf > 0);

test('start → loading report → benchmark → ready report → signed requests → reports and delete_requests', async () => {
  // 1. The first report comes about 1 s after start, while loading: loadtime 0.0, max_perf 0.0.
  await until(() => fake.statusReports.length > 0, 5_000, 'first worker_status');
  const first = fake.statusReports[0]!;
  expect(statusShapeProblems(first.raw)).toEqual([]);
  expect(first.body).toMatchObject({
    id: CONTAINER_ID,
    mtoken: 'master-token-1',
    version: '1.1.0',
    loadtime: 0,
    max_perf: 0,
    error_msg: '',
    cur_load: 0,
    url: PUBLIC_URL,
    working_request_idxs: [],
  });
  expect(rawToken(first.raw, 'loadtime')).toBe('0.0');
  expect(rawToken(first.raw, 'cur_capacity')).toBe('0.0');

  // 2. The benchmark ran against the simulator: a report with max_perf > 0 and loadtime > 0.
  await until(() => loadedReport() !== undefined, 15_000, 'a report with max_perf > 0');
  const ready = loadedReport()!;
  expect(statusShapeProblems(ready.raw)).toEqual([]);
  expect(ready.body.loadtime).toBeGreaterThan(0);
  expect(ready.body.error_msg).toBe('');
  const maxPerf = ready.body.max_perf as number;
  // The benchmark jobs went through ComfyUI: a warm-up and 2 runs of the SD1.5 graph.
  const samplerPrompts = sim.prompts.filter((p) => JSON.stringify(p.body).includes('KSampler'));
  expect(samplerPrompts).toHaveLength(3);
  const seeds = samplerPrompts.map((p) => (p.body as any).prompt['3'].inputs.seed);
  expect(new Set(seeds).size).toBe(3); // a random seed per run
  expect(samplerPrompts.every((p) => (p.body as any).prompt['5'].inputs.width === 64)).toBe(true);

  const bench = await getJson(`${worker.url}/benchmark`);
  expect(bench.status).toBe(200);
  expect(bench.body).toMatchObject({
    status: 'done',
    max_perf: maxPerf,
    reference_it_per_s: 43,
    gpu: { name: 'cpu', type: 'cpu' },
  });
  expect(bench.body.runs).toHaveLength(2);
  expect(bench.body.warmup.ok).toBe(true);
  expect(bench.body.it_per_s).toBeGreaterThan(0);
  // One step per 150 ms: at most ~6.7 it/s (generous lower bound for a loaded machine).
  expect(bench.body.it_per_s).toBeLessThan(7);
  expect(Math.max(...bench.body.runs.map((r: any) => r.workload_per_second))).toBeCloseTo(maxPerf, 6);

  // 3. Three signed requests at once: all admitted (wait ≤ 2 / max_perf s, well under 10 s).
  const idxs = [501, 502, 503];
  const before = fake.statusReports.length;
  const answers = Promise.all(
    idxs.map((idx, i) => {
      const { text } = fake.route({ url: PUBLIC_URL, reqnum: 10 + i, requestIdx: idx });
      return postText(`${worker.url}/generate/sync`, envelopeText(text, quickPayload(i + 1)));
    }),
  );
  // While they run, a report shows them in flight.
  await until(
    () => fake.statusReports.slice(before).some((r) => r.body.cur_load >= 2),
    5_000,
    'a report with requests in flight',
  );
  const busy = fake.statusReports.slice(before).find((r) => r.body.cur_load >= 2)!;
  expect(statusShapeProblems(busy.raw)).toEqual([]);
  expect(busy.body.num_requests_working).toBe(busy.body.cur_load); // workload 1 each
  expect(busy.body.working_request_idxs).toHaveLength(busy.body.num_requests_working);
  for (const idx of busy.body.working_request_idxs) expect(idxs).toContain(idx);
  expect(busy.body.new_load).toBeGreaterThanOrEqual(1);
  expect(busy.body.max_perf).toBe(maxPerf);

  const results = await answers;
  for (const r of results) {
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ status: 'completed', message: 'Processing complete.' });
    expect(r.body.output).toHaveLength(1);
  }

  // 4. Once they are done: cur_load back to 0 and the counters add up across reports
  //    (each report carries what happened since the previous one).
  await until(
    () => {
      const last = fake.statusReports[fake.statusReports.length - 1]!.body;
      return last.cur_load === 0 && fake.statusReports.slice(before).reduce((a, r) => a + r.body.cur_perf, 0) === 3;
    },
    5_000,
    'a report after the requests',
  );
  const after = fake.statusReports.slice(before).map((r) => r.body);
  expect(after.reduce((a, b) => a + b.new_load, 0)).toBe(3);
  expect(after.reduce((a, b) => a + b.rej_load, 0)).toBe(0);
  const last = after[after.length - 1];
  expect(last).toMatchObject({ cur_load: 0, num_requests_working: 0, working_request_idxs: [], num_requests_recieved: 3 });

  // 5. /delete_requests/ lists each finished request once, with its times.
  await until(() => fake.deleteReports.flatMap((r) => r.body.requests).length >= 3, 5_000, 'delete_requests');
  const items = fake.deleteReports.flatMap((r) => r.body.requests);
  expect(items.map((i: any) => i.request_idx).sort()).toEqual(idxs);
  for (const report of fake.deleteReports) {
    expect(Object.keys(report.body)).toEqual(['worker_id', 'mtoken', 'requests']);
    expect(report.body).toMatchObject({ worker_id: CONTAINER_ID, mtoken: 'master-token-1' });
    expect(report.raw).toMatch(/"entered_queue_at": \d+\.\d+/);
  }
  for (const item of items) {
    expect(Object.keys(item)).toEqual(DELETE_ITEM_FIELDS);
    expect(item).toMatchObject({ success: true, status: 'Success' });
    expect(item.entered_queue_at).toBeLessThanOrEqual(item.work_started_at);
    expect(item.work_started_at).toBeLessThanOrEqual(item.work_completed_at);
    expect(item.work_completed_at - item.entered_queue_at).toBeGreaterThan(0.5); // 700 ms in EmptyImage
  }
  // Queued requests waited for their turn: their work started after they entered the queue.
  const waits = items.map((i: any) => i.work_started_at - i.entered_queue_at).sort((a: number, b: number) => a - b);
  expect(waits[2]).toBeGreaterThan(1); // the third waited for two 700 ms jobs
});

test('/health and /ping', async () => {
  await until(() => loadedReport() !== undefined, 15_000, 'loaded');
  const ping = await fetch(`${worker.url}/ping`);
  expect(ping.status).toBe(200);
  expect(await ping.text()).toBe('pong');
  const health = await getJson(`${worker.url}/health`);
  expect(health.status).toBe(200);
  expect(health.body).toMatchObject({
    status: 'healthy',
    loaded: true,
    error_msg: '',
    benchmark: 'done',
    comfyui: { reachable: true },
  });
});

test('a restarted worker reads the cached benchmark instead of running it again', async () => {
  await until(() => loadedReport() !== undefined, 15_000, 'loaded');
  const promptsBefore = sim.prompts.length;
  const fake2 = await startFakeAutoscaler();
  const again = await startVastWorker(sim.url, fake2, { BENCHMARK_CACHE_PATH: worker.cachePath, VAST_SIGNATURE_SCHEME: 'url' });
  try {
    await until(() => fake2.statusReports.some((r) => r.body.max_perf > 0), 5_000, 'loaded from cache');
    const report = fake2.statusReports.find((r) => r.body.max_perf > 0)!.body;
    expect(report.max_perf).toBe(loadedReport()!.body.max_perf);
    expect(sim.prompts.length).toBe(promptsBefore); // no benchmark prompt
    const bench = await getJson(`${again.url}/benchmark`);
    expect(bench.body.status).toBe('cached');
  } finally {
    await again.stop();
    await fake2.close();
  }
});
