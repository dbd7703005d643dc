import { LoadLedger } from './ledger';

const auth = (n: number) => ({ reqnum: n, request_idx: 1000 + n });

test('the reference example: max_perf 0.5/s, workload 1, MAX_QUEUE_TIME 10 s → 6 in flight, the 7th gets 429', () => {
  const ledger = new LoadLedger({ workloadPerRequest: 1, maxQueueTimeS: 10 });
  ledger.maxPerf = 0.5;
  const results = Array.from({ length: 7 }, (_, i) => ledger.admit(auth(i)));
  expect(results.map((r) => r.ok)).toEqual([true, true, true, true, true, true, false]);
  expect(results[6]).toEqual({ ok: false, waitS: 12 });
  expect(ledger.curLoad).toBe(6);
  expect(ledger.counterSnapshot().rejected).toBe(1);
});

test('the ratio does not depend on the workload constant', () => {
  const ledger = new LoadLedger({ workloadPerRequest: 100, maxQueueTimeS: 10 });
  ledger.maxPerf = 50; // 2 s per request
  expect(Array.from({ length: 7 }, (_, i) => ledger.admit(auth(i)).ok)).toEqual([true, true, true, true, true, true, false]);
});

test('before the benchmark (max_perf 0): one request at a time', () => {
  const ledger = new LoadLedger({ workloadPerRequest: 1, maxQueueTimeS: 10 });
  const first = ledger.admit(auth(1));
  expect(first.ok).toBe(true);
  expect(ledger.admit(auth(2)).ok).toBe(false);
  if (first.ok) ledger.finish(first.entry, 'Success');
  expect(ledger.admit(auth(3)).ok).toBe(true);
});

test('every exit path removes the request exactly once; counters and items follow the outcome', () => {
  const ledger = new LoadLedger({ workloadPerRequest: 1, maxQueueTimeS: 100 });
  ledger.maxPerf = 1;
  const entries = [1, 2, 3].map((n) => {
    const a = ledger.admit(auth(n));
    if (!a.ok) throw new Error('refused');
    return a.entry;
  });
  expect(ledger.workingRequestIdxs).toEqual([1001, 1002, 1003]);
  ledger.started(entries[0]!);
  ledger.finish(entries[0]!, 'Success');
  ledger.finish(entries[0]!, 'Error'); // a second end is ignored
  ledger.finish(entries[1]!, 'Error');
  ledger.finish(entries[2]!, 'Cancelled');
  expect(ledger.curLoad).toBe(0);
  expect(ledger.numWorking).toBe(0);
  expect(ledger.counterSnapshot()).toEqual({ received: 3, cancelled: 1, served: 1, errored: 1, rejected: 0 });
  const items = ledger.pendingFinished();
  expect(items.map((i) => [i.request_idx, i.status, i.success])).toEqual([
    [1001, 'Success', true],
    [1002, 'Error', false],
    [1003, 'Cancelled', true],
  ]);
  expect(items[2]!.work_completed_at).toBeNull();
  expect(items[2]!.work_started_at).toBeNull(); // cancelled while queued
});

test('num_requests_recieved counts distinct reqnums and is never reset; counters are taken off by what was sent', () => {
  const ledger = new LoadLedger({ workloadPerRequest: 1, maxQueueTimeS: 100 });
  ledger.maxPerf = 1;
  ledger.reject(auth(1));
  ledger.reject(auth(1));
  const a = ledger.admit(auth(2));
  expect(ledger.numReceived).toBe(2);
  const sent = ledger.counterSnapshot();
  if (a.ok) ledger.finish(a.entry, 'Success'); // after the snapshot: stays for the next report
  ledger.commitCounters(sent);
  expect(ledger.counterSnapshot()).toEqual({ received: 0, cancelled: 0, served: 1, errored: 0, rejected: 0 });
  expect(ledger.numReceived).toBe(2);
});
