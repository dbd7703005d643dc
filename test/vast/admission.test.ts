// Admission on the Vast door: the queue-time rule (429 when in-flight workload / max_perf would
// exceed MAX_QUEUE_TIME), one request at a time before the benchmark has finished, and a request
// whose client goes away leaving the in-flight table (reported as Cancelled).
import { startSimulator, type Simulator } from '../../simulator';
import { getJson, until } from '../support/worker';
import type { FakeAutoscaler } from './support/fake-autoscaler';
import { envelopeText, PUBLIC_URL, quickPayload, withVastWorker, type VastTestWorker } from './support/vast-worker';

let sim: Simulator;

beforeAll(async () => {
  sim = await startSimulator({ stepDelayMs: 250, nodeDelayMs: { EmptyImage: 600 } });
});
afterAll(async () => {
  await sim?.close();
});

const withWorker = (
  env: Record<string, string>,
  cachedMaxPerf: number | undefined,
  body: (w: VastTestWorker, f: FakeAutoscaler) => Promise<void>,
) => withVastWorker(sim.url, env, body, cachedMaxPerf);

const send = (w: VastTestWorker, f: FakeAutoscaler, idx: number, signal?: AbortSignal) =>
  fetch(`${w.url}/generate/sync`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: envelopeText(f.route({ url: PUBLIC_URL, requestIdx: idx }).text, quickPayload(idx)),
    signal,
  });

test('max_perf 0.2/s, MAX_QUEUE_TIME 10 s: 3 requests in flight are admitted (wait 0, 5, 10 s), the next get 429', async () => {
  await withWorker({ MAX_QUEUE_TIME: '10' }, 0.2, async (w, f) => {
    await until(() => f.statusReports.some((r) => r.body.max_perf > 0), 10_000, 'loaded');
    const responses = await Promise.all([1, 2, 3, 4, 5].map((i) => send(w, f, 100 + i)));
    const statuses = responses.map((r) => r.status).sort();
    expect(statuses).toEqual([200, 200, 200, 429, 429]);
    const rejected = responses.filter((r) => r.status === 429);
    for (const r of rejected) expect(await r.text()).toBe('');
    await until(() => f.statusReports.reduce((a, r) => a + r.body.rej_load, 0) === 2, 5_000, 'rej_load 2 reported');
    await until(
      () => f.deleteReports.flatMap((r) => r.body.requests).filter((i: any) => i.status === 'Rejected').length === 2,
      5_000,
      'two Rejected items',
    );
  });
});

test('with a larger MAX_QUEUE_TIME the same burst is admitted whole', async () => {
  await withWorker({ MAX_QUEUE_TIME: '30' }, 0.2, async (w, f) => {
    await until(() => f.statusReports.some((r) => r.body.max_perf > 0), 10_000, 'loaded');
    const responses = await Promise.all([1, 2, 3, 4, 5].map((i) => send(w, f, 200 + i)));
    expect(responses.map((r) => r.status)).toEqual([200, 200, 200, 200, 200]);
  });
});

test('before the benchmark has finished, one request at a time', async () => {
  // No cache: the benchmark runs (3 x 3 steps x 250 ms) while the requests arrive.
  await withWorker({}, undefined, async (w, f) => {
    await until(() => f.statusReports.length > 0, 5_000, 'first report');
    expect(f.statusReports[0]!.body.max_perf).toBe(0);
    const responses = await Promise.all([1, 2].map((i) => send(w, f, 300 + i)));
    expect(responses.map((r) => r.status).sort()).toEqual([200, 429]);
    await until(() => f.statusReports.some((r) => r.body.max_perf > 0), 15_000, 'loaded');
  });
});

test('a client that goes away: its request leaves the table, reported as Cancelled', async () => {
  await withWorker({}, 100, async (w, f) => {
    await until(() => f.statusReports.some((r) => r.body.max_perf > 0), 10_000, 'loaded');
    const before = f.statusReports.length;
    // new_load is max(received − cancelled, 0) per report (PyWorker's rule), so the cancel only
    // shows when it is reported with the receipt: reports are refused until one carries both
    // requests ended, and that one is delivered.
    f.failNext('/worker_status/', 1_000_000);
    f.onRefused = (r) => {
      if (r.body.num_requests_working === 0 && r.body.cur_perf === 1) f.failNext('/worker_status/', 0);
    };
    const first = send(w, f, 401);
    const controller = new AbortController();
    const second = send(w, f, 402, controller.signal).catch((err: Error) => err);
    // Both in flight (the second queued behind the first), then the second's client leaves.
    await until(async () => (await getJson(`${w.url}/health`)).body.num_requests_working === 2, 5_000, 'two working');
    controller.abort();
    expect(((await second) as Error).name).toBe('AbortError');
    expect((await first).status).toBe(200);
    await until(() => f.deleteReports.flatMap((r) => r.body.requests).length === 2, 5_000, 'two delete items');
    const items = f.deleteReports.flatMap((r) => r.body.requests);
    const cancelled = items.find((i: any) => i.request_idx === 402);
    expect(cancelled).toMatchObject({ status: 'Cancelled', success: true, work_completed_at: null });
    expect(items.find((i: any) => i.request_idx === 401)).toMatchObject({ status: 'Success' });
    await until(() => f.statusReports[f.statusReports.length - 1]!.body.cur_load === 0, 5_000, 'cur_load back to 0');
    // new_load = received − cancelled (summed over reports since the requests came in).
    await until(() => f.statusReports.slice(before).reduce((a, r) => a + r.body.cur_perf, 0) === 1, 15_000, 'cur_perf 1');
    expect(f.statusReports.slice(before).reduce((a, r) => a + r.body.new_load, 0)).toBe(1);
    const last = f.statusReports[f.statusReports.length - 1]!.body;
    expect(last.working_request_idxs).toEqual([]);
  });
});

test('an autoscaler that answers 500 twice then 200: the request counted in the report that finally lands', async () => {
  await withWorker({}, 100, async (w, f) => {
    await until(() => f.statusReports.some((r) => r.body.max_perf > 0), 10_000, 'loaded');
    const delivered = f.statusReports.length;
    f.failNext('/worker_status/', 2);
    expect((await send(w, f, 801)).status).toBe(200);
    await until(() => f.hits.filter((h) => h.path === '/worker_status/' && h.status === 500).length === 2, 5_000, 'two 500s');
    // PyWorker's pace: 2 s between attempts; the third attempt carries the same counters.
    await until(
      () => f.statusReports.slice(delivered).reduce((a, r) => a + r.body.cur_perf, 0) === 1,
      10_000,
      'cur_perf delivered',
    );
    expect(f.statusReports.slice(delivered).reduce((a, r) => a + r.body.new_load, 0)).toBe(1);
  });
});
