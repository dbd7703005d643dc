// The flat queue position (migration 7): it always equals the number of pending jobs ahead, through
// claims, cancels out of order, requeues and migration from an older database; and every query on
// a hot path is answered through an index on a table of a million jobs (the plan is asserted).
import path from 'node:path';
import Database from 'better-sqlite3';
import { fillQueue } from '../../../perf/fill-queue';
import { tempDir } from '../../../test/support/tmp';
import type { ErrorBody } from '../../errors';
import { SecretBox } from '../../secrets/secret-box';
import type { JobRecord, NewJob } from '../types';
import { MIGRATIONS } from './migrations';
import { SqliteJobStore } from './store';

const dir = tempDir('queue-position-');
const secrets = SecretBox.open({ keyFile: path.join(dir, 'key') });
let n = 0;
const newJob = (): NewJob => ({
  id: `job-${++n}`,
  source: 'http',
  contract: 'worker-comfyui',
  sync: false,
  spec: {
    workflow: { '1': { class_type: 'SaveImage', inputs: {} } },
    images: [],
    includeTempOutputs: false,
    forceBase64: false,
    includeComfyResponse: false,
    allowPartial: false,
  },
});
const cancelled: ErrorBody = { code: 'cancelled', message: 'cancelled', status: 499 };

const opened: SqliteJobStore[] = [];
afterAll(async () => {
  for (const store of opened) await store.close();
});
function open(name: string): SqliteJobStore {
  const store = new SqliteJobStore({ path: path.join(dir, name), secrets });
  opened.push(store);
  return store;
}

/** Every pending job's position against a plain count of the pending jobs ahead of it. */
async function expectPositions(store: SqliteJobStore, ids: string[]): Promise<void> {
  const jobs = await Promise.all(ids.map((id) => store.get(id)));
  const pending = jobs.flatMap((job) => job ?? []).filter((job) => job.status === 'pending');
  pending.sort((a, b) => a.seq - b.seq);
  expect(await Promise.all(pending.map((job) => store.queuePosition(job)))).toEqual(pending.map((_, i) => i));
}

async function statusOf(store: SqliteJobStore, id: string): Promise<string | undefined> {
  return (await store.get(id))?.status;
}

// A small deterministic generator, so a failure can be replayed.
function random(seed: number): () => number {
  let s = seed;
  return () => (s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
}

describe('queue position', () => {
  test('equals the pending jobs ahead through claims, out-of-order cancels, ends and requeues', async () => {
    const store = open('ops.db');
    const rand = random(7);
    const ids: string[] = [];
    const running: JobRecord[] = [];
    for (let step = 0; step < 600; step++) {
      const roll = rand();
      if (roll < 0.45) ids.push((await store.insert(newJob())).id);
      else if (roll < 0.6) {
        const job = await store.claimNext(`p-${step}`);
        if (job) running.push(job);
      } else if (roll < 0.75) {
        const pending: string[] = [];
        for (const id of ids) if ((await statusOf(store, id)) === 'pending') pending.push(id);
        const victim = pending[Math.floor(rand() * pending.length)];
        if (victim) expect(await store.cancelPending(victim, cancelled)).toBe(true);
      } else if (roll < 0.88) {
        const job = running.shift();
        if (job) await store.finish(job.id, 'completed', {});
      } else {
        // A job a previous process left running goes back to its place.
        const job = running.splice(Math.floor(rand() * running.length), 1)[0];
        if (job) expect(await store.requeue(job.id)).toBe(true);
      }
      await expectPositions(store, ids);
    }
    expect((await store.counts()).pending).toBeGreaterThan(5);
  });

  test('a requeued job ahead of everything, with the queue empty or not, and old ended jobs deleted', async () => {
    let now = 1_000_000;
    const store = new SqliteJobStore({ path: path.join(dir, 'requeue.db'), secrets, clock: () => now });
    opened.push(store);
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await store.insert(newJob())).id);
    const first = (await store.claimNext('a'))!;
    const second = (await store.claimNext('b'))!;
    await store.finish(second.id, 'completed', {});
    now += 10_000_000;
    expect(await store.deleteFinishedBefore(now / 1000)).toBe(1);
    expect(await store.requeue(first.id)).toBe(true);
    await expectPositions(store, ids);
    // Empty the queue, then requeue into it.
    const all = [];
    for (const p of ['c', 'd', 'e', 'f']) all.push((await store.claimNext(p))!);
    expect(await store.claimNext('g')).toBeUndefined();
    expect(await store.requeue(all[2]!.id)).toBe(true);
    const late = (await store.insert(newJob())).id;
    await expectPositions(store, [...ids, late]);
    expect(await store.queuePosition((await store.get(late))!)).toBe(1);
  });

  test('a version 6 database with jobs cancelled in the middle of its queue migrates to the right positions', async () => {
    const file = path.join(dir, 'v6.db');
    const v6 = new Database(file);
    MIGRATIONS.slice(0, 6).forEach((sql) => v6.exec(sql));
    v6.pragma('user_version = 6');
    const insert = v6.prepare(`INSERT INTO jobs (id, status, created_at, spec) VALUES (?, ?, 1, '{"workflow":{}}')`);
    const statuses = ['completed', 'running', 'pending', 'cancelled', 'pending', 'completed', 'pending', 'cancelled', 'pending'];
    statuses.forEach((status, i) => insert.run(`old-${i}`, status));
    v6.prepare(`DELETE FROM jobs WHERE id = 'old-7'`).run();
    v6.close();
    const store = open('v6.db');
    const fresh = (await store.insert(newJob())).id;
    const ids = [...statuses.map((_, i) => `old-${i}`).filter((id) => id !== 'old-7'), fresh];
    await expectPositions(store, ids);
    expect(await store.queuePosition((await store.get(fresh))!)).toBe(4);
    await store.claimNext('x');
    await store.cancelPending('old-6', cancelled);
    await expectPositions(store, ids);
  });
});

describe('hot queries on a million jobs', () => {
  test('admission, claim, /status, /stats and ending a job use indexes, never a scan of the jobs', async () => {
    const name = 'million.db';
    await open(name).close();
    fillQueue(path.join(dir, name), 1_000_000);
    const store = open(name);
    expect((await store.counts()).pending).toBe(1_000_000);
    const plans = store.queryPlans();
    expect(Object.keys(plans).sort()).toEqual(
      [
        'admission',
        'claimNext',
        'counts',
        'ending',
        'finish',
        'get',
        'insert',
        'leaveQueueTrigger',
        'queuePosition',
        'recent',
        'webhookState',
      ].sort(),
    );
    // /stats' recent jobs walk the rowid b-tree backwards and stop at the LIMIT: no sort, no index needed.
    expect(plans.recent).toEqual(['SCAN jobs']);
    delete plans.recent;
    for (const [name, steps] of Object.entries(plans)) {
      expect(steps.join('\n')).not.toMatch(/TEMP B-TREE/);
      // "SCAN jobs" without an index is a walk over every job; a covering or partial index is fine.
      const scans = steps.filter((step) => /^SCAN (jobs|queue_holes|webhook_deliveries)\b(?!.*INDEX)/.test(step));
      expect({ name, scans }).toEqual({ name, scans: [] });
    }
    expect(plans.queuePosition!.join('\n')).toMatch(/SEARCH jobs USING INDEX jobs_status_seq/);
    expect(plans.queuePosition!.join('\n')).toMatch(/SEARCH queue_holes USING (INTEGER PRIMARY KEY|PRIMARY KEY|COVERING INDEX)/);
    expect(plans.queuePosition!.join('\n')).not.toMatch(/SCAN jobs/);
    expect(plans.claimNext!.join('\n')).toMatch(/jobs_status_seq/);
    // And the answer is right at that depth.
    const last = (await store.get('fill-1000000'))!;
    expect(await store.queuePosition(last)).toBe(999_999);
  });
});
