// The Redis job store against a real redis-server: claims are atomic across stores (each is a
// worker), the first end wins and arms its webhook once, a cancelled job is never claimed, and a
// webhook delivery is handed to one sender at a time.
import path from 'node:path';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { startRedis, type RedisServer } from '../../../test/support/redis';
import { tempDir } from '../../../test/support/tmp';
import { createLogger } from '../../observability/logger';
import { SecretBox } from '../../secrets/secret-box';
import type { JobRecord, NewJob } from '../types';
import { QUEUE_NAME, RedisJobStore } from './store';

let redis: RedisServer;
const stores: RedisJobStore[] = [];
const secrets = SecretBox.open({ key: 'test key', keyFile: '' });
let n = 0;

beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  // Each close waits up to a few seconds for BullMQ: all at once.
  await Promise.all(stores.map((store) => store.close()));
  await redis.stop();
});

function open(nodeId?: string, times: { lockMs?: number; takeoverMs?: number } = {}): RedisJobStore {
  const store = new RedisJobStore({
    nodeId,
    url: redis.url,
    shownAs: redis.url,
    secrets,
    filesPath: path.join(tempDir('redis-store-'), 'files'),
    lockMs: times.lockMs ?? 5_000,
    takeoverMs: times.takeoverMs ?? 60_000,
    inlineMaxBytes: 1024 * 1024,
    logger: createLogger('silent'),
  });
  stores.push(store);
  return store;
}

const newJob = (extra: Partial<NewJob> = {}): NewJob => ({
  id: `job-${++n}-${Date.now()}`,
  source: 'http',
  contract: 'worker-comfyui',
  sync: false,
  spec: {
    workflow: { '1': { class_type: 'SaveImage', inputs: {} } },
    images: [{ name: 'a.png', image: 'AAAA' }],
    includeTempOutputs: false,
    forceBase64: false,
    includeComfyResponse: false,
    allowPartial: false,
  },
  ...extra,
});

test('four workers claiming at once: every job claimed exactly once, FIFO per claimer, by the prompt id it stores', async () => {
  const seed = open();
  const ids: string[] = [];
  for (let i = 0; i < 80; i++) ids.push((await seed.insert(newJob())).id);
  const claimers = [open(), open(), open(), open()];
  const claimed = await Promise.all(
    claimers.map(async (store, k) => {
      const mine: Array<{ id: string; seq: number }> = [];
      for (let i = 0; ; i++) {
        const job = await store.claimNext(`${'abcd'[k]}-${i}`, `http://backend-${k}`);
        if (!job) return mine;
        expect(job).toMatchObject({
          status: 'running',
          promptId: `${'abcd'[k]}-${i}`,
          backend: `http://backend-${k}`,
          attempts: 1,
        });
        mine.push({ id: job.id, seq: job.seq });
      }
    }),
  );
  const all = claimed.flat().map((c) => c.id);
  expect(all).toHaveLength(ids.length);
  expect(new Set(all)).toEqual(new Set(ids));
  for (const mine of claimed) expect(mine.map((c) => c.seq)).toEqual([...mine.map((c) => c.seq)].sort((a, b) => a - b));
  expect(await seed.counts()).toMatchObject({ pending: 0, running: ids.length });
  for (const [k, store] of claimers.entries()) {
    for (const { id } of claimed[k]!) await store.finish(id, 'completed', { result: undefined });
  }
  expect(await seed.counts()).toMatchObject({ pending: 0, running: 0, completed: ids.length });
});

test('the first end wins and arms the webhook once; secrets are sealed and purged at the end', async () => {
  const a = open();
  const b = open();
  const job = await a.insert(
    newJob({
      spec: { ...newJob().spec, webhook: { url: 'http://hook.example/x?token=t1', extraParams: {}, signed: true } },
      secrets: { s3SecretAccessKey: 'S3-SECRET', webhookSecret: 'whsec' },
    }),
  );
  expect(await a.webhooks.state(job.id)).toMatchObject({ status: 'waiting' });
  expect(await b.secretsOf(job.id)).toEqual({ s3SecretAccessKey: 'S3-SECRET' });
  const claimed = await b.claimNext('p-1', 'http://b');
  expect(claimed?.id).toBe(job.id);
  const error = { code: 'cancelled' as const, message: 'by client', status: 499 };
  const ends = await Promise.all([
    a.finish(job.id, 'cancelled', { error }),
    b.finish(job.id, 'failed', { error: { ...error, code: 'internal' as const } }),
  ]);
  expect(ends.filter(Boolean)).toHaveLength(1);
  expect(await a.secretsOf(job.id)).toEqual({});
  expect(await b.webhooks.counts()).toMatchObject({ waiting: 0, pending: 1 });
  const due = await a.webhooks.due(a.now() + 1, 10);
  expect(due.map((d) => [d.jobId, d.url, d.secret])).toEqual([[job.id, 'http://hook.example/x?token=t1', 'whsec']]);
  // Leased: another sender does not get it while the first one sends.
  expect(await b.webhooks.due(b.now() + 1, 10)).toEqual([]);
  await b.webhooks.recordDelivered(job.id, b.now());
  expect(await a.webhooks.counts()).toMatchObject({ pending: 0, delivered: 1 });
  expect(await a.hasUndeliveredWebhook(job.id)).toBe(false);
});

test('a job cancelled while it waits is never claimed; a 409 for a second job with the same id', async () => {
  const store = open();
  const job = await store.insert(newJob());
  await expect(store.insert(newJob({ id: job.id }))).rejects.toMatchObject({ status: 409 });
  expect(await store.cancelPending(job.id, { code: 'cancelled', message: 'no', status: 499 })).toBe(true);
  expect(await store.cancelPending(job.id, { code: 'cancelled', message: 'no', status: 499 })).toBe(false);
  expect(await store.claimNext('p', 'http://x')).toBeUndefined();
  expect((await store.get(job.id))?.status).toBe('cancelled');
  // Deleted, its id can be used again.
  expect(await store.deleteFinished(job.id)).toBe(true);
  const again = await store.insert(newJob({ id: job.id }));
  expect((await store.claimNext('p2', 'http://x'))?.id).toBe(again.id);
});

test('a job records the machine with its backend: 127.0.0.1 names another ComfyUI on every machine', async () => {
  const a = open('machine-a');
  const { id } = await a.insert(newJob());
  const job = await a.claimNext('pa-1', 'http://127.0.0.1:8188');
  expect(job).toMatchObject({ id, backend: 'machine-a http://127.0.0.1:8188' });
  expect((await open('machine-b').get(id))?.backend).toBe('machine-a http://127.0.0.1:8188');
  await a.finish(id, 'completed', { result: undefined });
});

test('a submission interrupted between its two steps: the client gets a 503 and the record ends; a record left without its BullMQ job is failed by repair()', async () => {
  let offsetS = 0;
  const store = new RedisJobStore({
    url: redis.url,
    shownAs: redis.url,
    secrets,
    filesPath: path.join(tempDir('redis-store-'), 'files'),
    lockMs: 5_000,
    takeoverMs: 60_000,
    inlineMaxBytes: 1024 * 1024,
    logger: createLogger('silent'),
    clock: () => Date.now() + offsetS * 1000,
  });
  stores.push(store);
  const webhook = { url: 'http://hook.example/x', extraParams: {}, signed: false };

  // Redis fails on the second step (queue.add): a 503, and the record does not stay pending.
  const bullQueue = (store as unknown as { queue: Queue }).queue;
  const add = jest.spyOn(bullQueue, 'add').mockRejectedValueOnce(new Error('Connection is closed.'));
  const refused = newJob({ spec: { ...newJob().spec, webhook } });
  await expect(store.insert(refused)).rejects.toMatchObject({ status: 503, code: 'store_unavailable' });
  add.mockRestore();
  expect(await store.get(refused.id)).toMatchObject({ status: 'failed', error: { code: 'store_unavailable' } });
  // The client was told it was not accepted: no webhook tells it otherwise.
  expect(await store.webhooks.state(refused.id)).toBeUndefined();

  // Redis failed for the ending too: a record without its BullMQ job (only the first step done).
  const lost = await store.insert(newJob({ spec: { ...newJob().spec, webhook } }));
  const queued = await store.insert(newJob());
  const other = new Queue(QUEUE_NAME, { connection: { host: '127.0.0.1', port: redis.port } });
  await other.remove(lost.id);
  await other.close();
  expect(await store.repair()).toBe(0); // young: its submission may still be under way
  offsetS = 61;
  expect(await store.repair()).toBe(1);
  const failed = await store.get(lost.id);
  expect(failed).toMatchObject({ status: 'failed', error: { code: 'store_unavailable' } });
  expect(failed?.error?.message).toMatch(/submission was interrupted.*submit it again/);
  // Its client had a job id: the webhook tells it.
  expect(await store.webhooks.state(lost.id)).toMatchObject({ status: 'pending' });
  expect((await store.get(queued.id))?.status).toBe('pending');
  expect(await store.repair()).toBe(0);
  expect((await store.claimNext('p-lost', 'http://x'))?.id).toBe(queued.id);
  await store.finish(queued.id, 'completed', { result: undefined });
});

test('a synchronous job whose accepting worker is gone is cancelled, by the claim or by repair(), never run', async () => {
  const accepting = open();
  const runner = open();
  const live = await accepting.insert(newJob({ sync: true }));
  expect((await runner.claimNext('p-live', 'http://r'))?.id).toBe(live.id);
  await runner.finish(live.id, 'completed', { result: undefined });

  const orphan = await accepting.insert(newJob({ sync: true }));
  const another = await accepting.insert(newJob({ sync: true }));
  // The accepting worker dies: its alive key runs out (here, deleted at once).
  const raw = new Redis(redis.url);
  for (const key of await raw.keys('comfyui-worker:alive:*')) await raw.del(key);
  raw.disconnect();
  expect(await runner.claimNext('p-orphan', 'http://r')).toBeUndefined();
  for (const id of [orphan.id, another.id]) {
    expect(await runner.get(id)).toMatchObject({ status: 'cancelled', error: { code: 'client_disconnected' } });
  }
  const third = await accepting.insert(newJob({ sync: true }));
  const fourth = await accepting.insert(newJob({ sync: true }));
  await accepting.close();
  expect(await runner.repair()).toBe(2);
  expect((await runner.get(third.id))?.status).toBe('cancelled');
  expect((await runner.get(fourth.id))?.error?.message).toMatch(/caller waiting for it is gone/);
});

/** Claims until a job comes (a dead worker's lock must run out first). */
async function claimWithin(store: RedisJobStore, promptId: string, backend: string, timeoutMs = 15_000): Promise<JobRecord> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const job = await store.claimNext(promptId, backend);
    if (job) return job;
    if (Date.now() > deadline) throw new Error(`no job claimed within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A worker that died: its locks are no longer renewed (it stays connected, as a stalled process may). */
function stopRenewing(store: RedisJobStore): void {
  clearInterval((store as unknown as { lockTimer: NodeJS.Timeout }).lockTimer);
}

const COMFY = 'http://127.0.0.1:8188';

test('a job a dead worker left before sending its prompt runs again at once, anywhere; the dead worker can no longer send it nor end it', async () => {
  const dead = open('machine-a', { lockMs: 1_000 });
  const other = open('machine-b', { lockMs: 1_000 });
  const { id } = await dead.insert(newJob());
  const left = await dead.claimNext('pa-1', COMFY);
  expect(left).toMatchObject({ id, promptId: 'pa-1', attempts: 1 });
  stopRenewing(dead);

  const again = await claimWithin(other, 'pb-1', COMFY);
  expect(again).toMatchObject({ id, status: 'running', promptId: 'pb-1', backend: `machine-b ${COMFY}`, attempts: 1 });
  // The old worker, still alive after all, may not send its prompt nor end the new run.
  await expect(dead.markPromptSent(left!)).rejects.toMatchObject({ code: 'worker_lost' });
  expect(await dead.finish(id, 'failed', { error: { code: 'internal', message: 'late', status: 500 } })).toBe(false);
  await other.markPromptSent(again);
  expect(await other.finish(id, 'completed', { result: undefined })).toBe(true);
  expect(await other.get(id)).toMatchObject({ status: 'completed', promptId: 'pb-1' });
  await dead.close();
});

test('a job a dead worker left after sending its prompt: others hand it back for JOB_QUEUE_TAKEOVER_S, then fail it worker_lost, webhook armed', async () => {
  const webhook = { url: 'http://hook.example/lost', extraParams: {}, signed: false };
  const dead = open('machine-a', { lockMs: 1_000 });
  const other = open('machine-b', { lockMs: 1_000, takeoverMs: 3_000 });
  const { id } = await dead.insert(newJob({ spec: { ...newJob().spec, webhook } }));
  const job = await dead.claimNext('pa-1', COMFY);
  expect(job?.id).toBe(id);
  await dead.markPromptSent(job!);
  const diedAt = Date.now();
  stopRenewing(dead);

  // machine-b has no worker for the backend that has the prompt: it hands it back, then fails it.
  while ((await other.get(id))?.status === 'running') {
    expect(await other.claimNext('pb', COMFY)).toBeUndefined();
    await new Promise((r) => setTimeout(r, 200));
  }
  expect(Date.now() - diedAt).toBeGreaterThanOrEqual(3_000);
  const failed = await other.get(id);
  expect(failed).toMatchObject({ status: 'failed', promptId: 'pa-1', error: { code: 'worker_lost', status: 502 } });
  expect(failed?.error?.message).toMatch(
    /stopped .* after sending its prompt to ComfyUI machine-a http:\/\/127\.0\.0\.1:8188.*JOB_QUEUE_TAKEOVER_S \(3 s\).*may have run there, so it was not resubmitted/,
  );
  expect(await other.webhooks.state(id)).toMatchObject({ status: 'pending' });
  await dead.close();
}, 30_000);

test('a job a dead worker left after sending its prompt goes to a worker with its backend, with its old prompt id to reconcile, however long it waited', async () => {
  const dead = open('machine-a', { lockMs: 1_000 });
  const { id } = await dead.insert(newJob());
  const job = await dead.claimNext('pa-1', COMFY);
  await dead.markPromptSent(job!);
  stopRenewing(dead);
  const back = open('machine-a', { lockMs: 1_000, takeoverMs: 0 });
  expect(await claimWithin(back, 'pa-new', COMFY)).toMatchObject({ id, promptId: 'pa-1', backend: `machine-a ${COMFY}` });
  expect(await back.finish(id, 'completed', { result: undefined })).toBe(true);
  await dead.close();
}, 30_000);
