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

test('two backends of 0.5/s each admit twice as many; one of them down, half again', () => {
  const ledger = new LoadLedger({ workloadPerRequest: 1, maxQueueTimeS: 10 });
  let ready = 2;
  ledger.capacityShare = () => Math.max(ready, 1) / 2;
  ledger.maxPerf = 1; // the benchmark's sum over both
  const both = Array.from({ length: 12 }, (_, i) => ledger.admit(auth(i)));
  expect(both.filter((r) => r.ok)).toHaveLength(11);
  for (const r of both) if (r.ok) ledger.finish(r.entry, 'Success');
  ready = 1;
  expect(ledger.maxPerf).toBe(0.5);
  const one = Array.from({ length: 7 }, (_, i) => ledger.admit(auth(100 + i)));
  expect(one.map((r) => r.ok)).toEqual([true, true, true, true, true, true, false]);
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

test('num_requests_recieved is a count: a window of recent reqnums only de-duplicates (bounded memory)', () => {
  const ledger = new LoadLedger({ workloadPerRequest: 1, maxQueueTimeS: 100, reqnumWindow: 3 });
  for (const n of [1, 2, 3, 4, 5]) ledger.reject(auth(n));
  expect(ledger.numReceived).toBe(5); // more than the window holds
  ledger.reject(auth(5));
  ledger.reject(auth(3));
  expect(ledger.numReceived).toBe(5); // still in the window (3, 4, 5): counted once
  ledger.reject(auth(1));
  expect(ledger.numReceived).toBe(6); // fell out of the window: counted again (documented)
  // The default window is large enough for any retry or replay the SDK would let through.
  const big = new LoadLedger({ workloadPerRequest: 1, maxQueueTimeS: 100 });
  for (let n = 0; n < 20_000; n++) big.reject(auth(n));
  big.reject(auth(19_000));
  expect(big.numReceived).toBe(20_000);
  big.ackFinished(big.pendingFinished().length);
});

test('finished items leave once delivered; at most maxPendingFinished wait, later ones are counted as dropped', () => {
  const ledger = new LoadLedger({ workloadPerRequest: 1, maxQueueTimeS: 100, maxPendingFinished: 3 });
  ledger.maxPerf = 1;
  for (const n of [1, 2, 3, 4]) ledger.reject(auth(n));
  expect(ledger.pendingFinished().map((i) => i.request_idx)).toEqual([1001, 1002, 1003]);
  expect(ledger.droppedFinished).toBe(1);
  const sent = ledger.pendingFinished();
  const a = ledger.admit(auth(5));
  ledger.ackFinished(sent.length); // delivered while request 5 was running
  expect(ledger.pendingFinished()).toEqual([]);
  if (a.ok) ledger.finish(a.entry, 'Success');
  expect(ledger.pendingFinished().map((i) => i.request_idx)).toEqual([1005]);
  ledger.ackFinished(1);
  expect(ledger.pendingFinished()).toEqual([]);
  expect(ledger.droppedFinished).toBe(1);
});
