// The benchmark cache on the Vast door: a cache that cannot be written costs nothing but a
// warning (the score is valid), and a cache measured with another workload or workflow is not
// reused (max_perf is workload per second of that workflow).
import fs from 'node:fs';
import path from 'node:path';
import { loadConfig } from '../../worker/config';
import { startSimulator, type Simulator } from '../../simulator';
import { tempDir } from '../support/tmp';
import { getJson, until } from '../support/worker';
import { startFakeAutoscaler, type FakeAutoscaler } from './support/fake-autoscaler';
import { startVastWorker, vastEnv, writeCache, type VastTestWorker } from './support/vast-worker';

let sim: Simulator;
let fake: FakeAutoscaler;
let worker: VastTestWorker | undefined;

beforeAll(async () => {
  sim = await startSimulator({ stepDelayMs: 5 });
});
afterAll(async () => {
  await sim?.close();
});
beforeEach(async () => {
  fake = await startFakeAutoscaler();
});
afterEach(async () => {
  await worker?.stop();
  worker = undefined;
  await fake.close();
});

const STALE_PERF = 55;
const settled = () => fake.statusReports.find((r) => r.body.error_msg !== '' || r.body.max_perf > 0)?.body;
const benchmarkPrompts = (from: number) => sim.prompts.slice(from).filter((p) => JSON.stringify(p.body).includes('KSampler'));

test('an unwritable BENCHMARK_CACHE_PATH: loaded with the measured score, a warning, no error', async () => {
  const blocker = path.join(tempDir('cache-'), 'a-file');
  fs.writeFileSync(blocker, 'not a directory');
  const lines: string[] = [];
  worker = await startVastWorker(
    sim.url,
    fake,
    { BENCHMARK_CACHE_PATH: path.join(blocker, '.has_benchmark') },
    { logLines: lines },
  );
  await until(() => settled() !== undefined, 15_000, 'loaded or in error');
  expect(settled()).toMatchObject({ error_msg: '' });
  expect(settled()!.max_perf).toBeGreaterThan(0);
  expect((await getJson(`${worker.url}/benchmark`)).body.status).toBe('done');
  const warning = lines
    .map((l) => JSON.parse(l) as { level: number; msg: string })
    .find((l) => l.msg.includes('could not write'));
  expect(warning?.level).toBe(40); // warn
});

test.each<[string, Record<string, string>]>([
  ['WORKLOAD_PER_REQUEST', { WORKLOAD_PER_REQUEST: '100' }],
  ['BENCHMARK_TEST_STEPS', { BENCHMARK_TEST_STEPS: '4' }],
])(
  'a cache measured with another %s is not reused: the benchmark runs again and the cache is replaced',
  async (_name, changed) => {
    const env = vastEnv(sim.url, fake);
    writeCache(loadConfig(env), STALE_PERF); // as the worker with the defaults of vastEnv wrote it
    const before = sim.prompts.length;
    worker = await startVastWorker(sim.url, fake, { BENCHMARK_CACHE_PATH: env.BENCHMARK_CACHE_PATH!, ...changed });
    await until(() => settled() !== undefined, 15_000, 'loaded or in error');
    expect(settled()).toMatchObject({ error_msg: '' });
    expect(settled()!.max_perf).not.toBe(STALE_PERF);
    expect(benchmarkPrompts(before)).toHaveLength(3); // warm-up + 2 runs
    expect((await getJson(`${worker.url}/benchmark`)).body.status).toBe('done');
    const [score, meta] = fs.readFileSync(env.BENCHMARK_CACHE_PATH!, 'utf8').split('\n');
    expect(Number(score)).toBe(settled()!.max_perf);
    const workload = Number(changed.WORKLOAD_PER_REQUEST ?? '1');
    expect(JSON.parse(meta!).fingerprint.workload_per_request).toBe(workload);
  },
);

test('the same settings reuse the cache (no benchmark prompt)', async () => {
  const env = vastEnv(sim.url, fake);
  writeCache(loadConfig(env), STALE_PERF);
  const before = sim.prompts.length;
  worker = await startVastWorker(sim.url, fake, { BENCHMARK_CACHE_PATH: env.BENCHMARK_CACHE_PATH! });
  await until(() => settled() !== undefined, 15_000, 'loaded');
  expect(settled()).toMatchObject({ error_msg: '', max_perf: STALE_PERF });
  expect(benchmarkPrompts(before)).toHaveLength(0);
});
