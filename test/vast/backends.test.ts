// The Vast door on a worker with two ComfyUI backends: the startup benchmark runs on both at once
// and max_perf is the sum of their scores.
import { startSimulator, type Simulator } from '../../simulator';
import { getJson, until } from '../support/worker';
import { startFakeAutoscaler, type FakeAutoscaler } from './support/fake-autoscaler';
import { startVastWorker, type VastTestWorker } from './support/vast-worker';

let a: Simulator;
let b: Simulator;
let fake: FakeAutoscaler;
let worker: VastTestWorker | undefined;

beforeAll(async () => {
  a = await startSimulator({ stepDelayMs: 20 });
  b = await startSimulator({ stepDelayMs: 20 });
  fake = await startFakeAutoscaler();
});
afterAll(async () => {
  await worker?.stop();
  await fake.close();
  await a.close();
  await b.close();
});

test('the benchmark runs on every backend and max_perf is the sum of their best runs', async () => {
  worker = await startVastWorker(`${a.url},${b.url}`, fake);
  await until(() => fake.statusReports.some((r) => r.body.max_perf > 0), 20_000, 'loaded');
  const view = (await getJson(`${worker.url}/benchmark`)).body;
  const runs = view.runs as Array<{ ok: boolean; backend: string; workload_per_second: number }>;
  expect(runs.every((r) => r.ok)).toBe(true);
  expect(new Set(runs.map((r) => r.backend))).toEqual(new Set([a.url, b.url]));
  const best = (url: string) => Math.max(...runs.filter((r) => r.backend === url).map((r) => r.workload_per_second));
  expect(view.max_perf).toBeCloseTo(best(a.url) + best(b.url), 10);
  // Both GPUs got benchmark prompts.
  expect(a.prompts.length).toBeGreaterThan(0);
  expect(b.prompts.length).toBeGreaterThan(0);
  const reported = fake.statusReports.filter((r) => r.body.max_perf > 0).at(-1)!.body.max_perf;
  expect(reported).toBeCloseTo(view.max_perf, 10);
});
