// The autoscaler reports against a real fake autoscaler over HTTP, with short intervals: the
// cadence, counters kept until a successful send (500 twice then 200; a whole failed send),
// failover across REPORT_ADDR, and /delete_requests/ items dropped only after a 2xx.
import { createLogger } from '../../observability/logger';
import { startFakeAutoscaler, type FakeAutoscaler } from '../../../test/vast/support/fake-autoscaler';
import { statusShapeProblems } from '../../../test/vast/support/report-shape';
import { until } from '../../../test/support/worker';
import { AutoscalerClient } from './autoscaler';
import { LoadLedger } from './ledger';
import { VastReporter } from './reporter';
import { VastState } from './state';

const logger = createLogger('silent');
let fake: FakeAutoscaler;
const running: VastReporter[] = [];

beforeEach(async () => {
  fake = await startFakeAutoscaler();
});
afterEach(async () => {
  for (const r of running.splice(0)) await r.stop();
  await fake.close();
});

function setup(opts: { addrs?: string[]; idleMs?: number; skipDeleteAddrs?: string[] } = {}) {
  const client = new AutoscalerClient({ addrs: opts.addrs ?? [fake.url], logger, retryDelayMs: 30, timeoutMs: 2_000 });
  const ledger = new LoadLedger({ workloadPerRequest: 1, maxQueueTimeS: 10 });
  const state = new VastState({ ledger, logger });
  const reporter = new VastReporter({
    client,
    ledger,
    state,
    id: 7,
    mtoken: 'tok',
    url: 'http://1.2.3.4:5',
    logger,
    tickMs: 40,
    idleMs: opts.idleMs ?? 5_000,
    ...(opts.skipDeleteAddrs ? { skipDeleteAddrs: opts.skipDeleteAddrs } : {}),
  });
  running.push(reporter);
  return { ledger, state, reporter, client };
}

const serve = (ledger: LoadLedger, idx: number) => {
  const admitted = ledger.admit({ reqnum: idx, request_idx: idx });
  if (!admitted.ok) throw new Error('not admitted');
  ledger.started(admitted.entry);
  ledger.finish(admitted.entry, 'Success');
};

test('500 twice then 200: the counters of that report are kept until it is delivered, then reset', async () => {
  const { ledger, state, reporter } = setup();
  state.markLoaded(2);
  serve(ledger, 1);
  fake.failNext('/worker_status/', 2);
  reporter.start();
  await until(() => fake.statusReports.length >= 1, 5_000, 'a delivered report');
  expect(
    fake.hits
      .filter((h) => h.path === '/worker_status/')
      .map((h) => h.status)
      .slice(0, 3),
  ).toEqual([500, 500, 200]);
  expect(fake.statusReports[0]!.body).toMatchObject({ cur_perf: 1, new_load: 1, max_perf: 2 });
  expect(statusShapeProblems(fake.statusReports[0]!.raw)).toEqual([]);
  // The next report (after another request) carries only what happened since.
  serve(ledger, 2);
  await until(() => fake.statusReports.length >= 2, 5_000, 'a second report');
  expect(fake.statusReports[1]!.body).toMatchObject({ cur_perf: 1, new_load: 1, num_requests_recieved: 2 });
});

test('a send that fails on every attempt keeps its counters for the next one (and adds the new ones)', async () => {
  const { ledger, state, reporter } = setup();
  state.markLoaded(2);
  serve(ledger, 1);
  fake.failNext('/worker_status/', 3); // all 3 attempts of the first send
  // New work arrives while the last attempt is being refused: it can only go in a later send.
  fake.onRefused = () => {
    if (fake.refused.length !== 3) return;
    serve(ledger, 2);
    ledger.reject({ reqnum: 3, request_idx: 3 });
  };
  reporter.start();
  await until(() => fake.statusReports.length >= 1, 5_000, 'a delivered report');
  expect(fake.statusReports[0]!.body).toMatchObject({ cur_perf: 2, new_load: 2, rej_load: 1, num_requests_recieved: 3 });
});

test('REPORT_ADDR failover: an unreachable first address, the second gets the report', async () => {
  const { state, reporter } = setup({ addrs: ['http://127.0.0.1:1', fake.url] });
  state.markLoaded(1);
  reporter.start();
  await until(() => fake.statusReports.length >= 1, 5_000, 'a report on the second address');
  expect(fake.statusReports[0]!.body).toMatchObject({ id: 7, mtoken: 'tok', url: 'http://1.2.3.4:5', max_perf: 1 });
});

test('cadence: while loading only every idle period; once loaded, soon after each event', async () => {
  const { ledger, state, reporter } = setup({ idleMs: 2_000 });
  reporter.start();
  await until(() => fake.statusReports.length >= 2, 5_000, 'two loading reports');
  const gap = fake.statusReports[1]!.at - fake.statusReports[0]!.at;
  expect(gap).toBeGreaterThanOrEqual(1_800); // not every 40 ms tick
  // Loading reports do not follow events...
  serve(ledger, 1);
  const n = fake.statusReports.length;
  state.markLoaded(3); // ...but being loaded does, at once.
  await until(() => fake.statusReports.length > n, 1_000, 'a report right after load');
  const loaded = fake.statusReports[n]!.body;
  expect(loaded.max_perf).toBe(3);
  expect(loaded.loadtime).toBeGreaterThan(0);
  // Disk usage: the first report carries all GiB used (PyWorker's baseline is 0), later ones the change.
  expect(fake.statusReports[0]!.body.additional_disk_usage).toBeGreaterThan(0);
  expect(Math.abs(loaded.additional_disk_usage)).toBeLessThan(fake.statusReports[0]!.body.additional_disk_usage);
  const m = fake.statusReports.length;
  serve(ledger, 2);
  await until(() => fake.statusReports.length > m, 1_000, 'a report right after a request');
  // And an error is reported at once, and stays.
  const k = fake.statusReports.length;
  state.fail('GPU fell off the bus');
  state.fail('a second error');
  await until(() => fake.statusReports.length > k, 1_000, 'an error report');
  expect(fake.statusReports[k]!.body.error_msg).toBe('GPU fell off the bus');
});

test('/delete_requests/: items are dropped only after a 2xx', async () => {
  const { ledger, state, reporter } = setup();
  state.markLoaded(1);
  serve(ledger, 11);
  fake.failNext('/delete_requests/', 3);
  // Another request ends while the third attempt is being refused: the next send carries both.
  fake.onRefused = () => {
    if (fake.refused.filter((r) => r.path === '/delete_requests/').length === 3) serve(ledger, 12);
  };
  reporter.start();
  await until(() => fake.deleteReports.length >= 1, 5_000, 'a delivered delete');
  expect(fake.hits.filter((h) => h.path === '/delete_requests/' && h.status === 500)).toHaveLength(3);
  const idxs = fake.deleteReports.flatMap((r) => r.body.requests.map((i: { request_idx: number }) => i.request_idx));
  expect(idxs.slice(0, 2)).toEqual([11, 12]);
  await new Promise((r) => setTimeout(r, 200));
  // Nothing is sent twice.
  expect(fake.deleteReports.flatMap((r) => r.body.requests)).toHaveLength(2);
  expect(ledger.pendingFinished()).toEqual([]);
});

test('loaded and idle: a report at least every idle period, with no event to trigger it', async () => {
  // A controlled clock (jest's fake timers drive the reporter's ticks and Date.now, also the
  // fake autoscaler's `at`), so the gaps are the reporter's own choice, not the machine's load.
  // The sends are real HTTP: after each tick the clock waits for the send it started.
  jest.useFakeTimers({ doNotFake: ['nextTick', 'setImmediate', 'queueMicrotask'] });
  try {
    const idleMs = 300;
    const tickMs = 40;
    const { state, reporter, client } = setup({ idleMs });
    const sends: Promise<boolean>[] = [];
    const post = client.post.bind(client);
    client.post = (...args) => {
      const sent = post(...args);
      sends.push(sent);
      return sent;
    };
    state.markLoaded(1);
    reporter.start();
    for (let elapsed = 0; elapsed < 10 * idleMs; elapsed += tickMs) {
      jest.advanceTimersByTime(tickMs);
      await Promise.all(sends.splice(0));
      await new Promise((r) => setImmediate(r)); // the reporter's own continuation after the answer
    }
    const at = fake.statusReports.map((r) => r.at);
    expect(at.length).toBeGreaterThanOrEqual(9);
    const gaps = at.slice(1).map((t, i) => t - at[i]!);
    // Never sooner than the idle period, never later than the first tick after it.
    for (const gap of gaps) {
      expect(gap).toBeGreaterThanOrEqual(idleMs);
      expect(gap).toBeLessThanOrEqual(idleMs + tickMs);
    }
  } finally {
    jest.useRealTimers();
  }
});

test('/delete_requests/ with no address to send to (all skipped): items are dropped, not kept forever', async () => {
  // As PyWorker skips https://cloud.vast.ai/api/v0.
  const { ledger, state, reporter } = setup({ skipDeleteAddrs: [fake.url] });
  state.markLoaded(1);
  serve(ledger, 21);
  reporter.start();
  await until(() => ledger.pendingFinished().length === 0, 2_000, 'items dropped');
  await until(() => fake.statusReports.length >= 1, 2_000, 'a status report (still sent there)');
  expect(fake.hits.filter((h) => h.path === '/delete_requests/')).toEqual([]);
});
