// The Vast door stopping (what SIGTERM runs) with a request running and two queued behind it:
// every caller gets an answer, and the autoscaler is told that all three requests ended.
import { startSimulator, type Simulator } from '../../simulator';
import { until } from '../support/worker';
import { startFakeAutoscaler, type FakeAutoscaler } from './support/fake-autoscaler';
import { envelopeText, postText, PUBLIC_URL, quickPayload, startVastWorker } from './support/vast-worker';

let sim: Simulator;
let fake: FakeAutoscaler;

beforeAll(async () => {
  sim = await startSimulator({ nodeDelayMs: { EmptyImage: 1_500, '*': 1 } });
  fake = await startFakeAutoscaler();
});
afterAll(async () => {
  await fake?.close();
  await sim?.close();
});

test('stop: the running request is answered, the queued ones get a 503, all reported to /delete_requests/', async () => {
  const worker = await startVastWorker(sim.url, fake, {}, { cachedMaxPerf: 100 });
  await until(() => fake.statusReports.some((r) => r.body.max_perf > 0), 10_000, 'worker loaded');
  const send = (requestIdx: number, color: number) =>
    postText(
      `${worker.url}/generate/sync`,
      envelopeText(fake.route({ url: PUBLIC_URL, requestIdx, reqnum: requestIdx }).text, quickPayload(color)),
    );
  const running = send(501, 1);
  await until(() => sim.prompts.length === 1, 5_000, 'the first prompt');
  const queued = [send(502, 2), send(503, 3)];
  await until(
    async () => {
      const counts = await worker.queue.counts();
      return counts.pending + counts.running === 3;
    },
    5_000,
    'all three admitted',
  );
  await worker.stop();

  expect((await running).status).toBe(200);
  for (const answer of await Promise.all(queued)) {
    expect([200, 503]).toContain(answer.status);
    if (answer.status === 503) expect(answer.body.error.code).toBe('worker_stopping');
  }
  const reported = fake.deleteReports.flatMap((r) => r.body.requests.map((q: { request_idx: number }) => q.request_idx));
  expect(reported).toEqual(expect.arrayContaining([501, 502, 503]));
});
