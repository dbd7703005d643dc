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
afterAll(() => opened.forEach((store) => store.close()));
function open(name: string): SqliteJobStore {
  const store = new SqliteJobStore({ path: path.join(dir, name), secrets });
  opened.push(store);
  return store;
}

/** Every pending job's position against a plain count of the pending jobs ahead of it. */
function expectPositions(store: SqliteJobStore, ids: string[]): void {
  const pending = ids.flatMap((id) => store.get(id) ?? []).filter((job) => job.status === 'pending');
  pending.sort((a, b) => a.seq - b.seq);
  expect(pending.map((job) => store.queuePosition(job))).toEqual(pending.map((_, i) => i));
}

// A small deterministic generator, so a failure can be replayed.
function random(seed: number): () => number {
  let s = seed;
  return () => (s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
}

describe('queue position', () => {
  test('equals the pending jobs ahead through claims, out-of-order cancels, ends and requeues', () => {
    const store = open('ops.db');
    const rand = random(7);
    const ids: string[] = [];
    const running: JobRecord[] = [];
    for (let step = 0; step < 600; step++) {
      const roll = rand();
      if (roll < 0.45) ids.push(store.insert(newJob()).id);
      else if (roll < 0.6) {
        const job = store.claimNext(`p-${step}`);
        if (job) running.push(job);
      } else if (roll < 0.75) {
        const pending = ids.filter((id) => store.get(id)!.status === 'pending');
        const victim = pending[Math.floor(rand() * pending.length)];
        if (victim) expect(store.cancelPending(victim, cancelled)).toBe(true);
      } else if (roll < 0.88) {
        const job = running.shift();
        if (job) store.finish(job.id, 'completed', {});
      } else {
        // A job a previous process left running goes back to its place.
        const job = running.splice(Math.floor(rand() * running.length), 1)[0];
        if (job) expect(store.requeue(job.id)).toBe(true);
      }
      expectPositions(store, ids);
    }
    expect(store.counts().pending).toBeGreaterThan(5);
  });

  test('a requeued job ahead of everything, with the queue empty or not, and old ended jobs deleted', () => {
    let now = 1_000_000;
    const store = new SqliteJobStore({ path: path.join(dir, 'requeue.db'), secrets, clock: () => now });
    opened.push(store);
    const ids = Array.from({ length: 5 }, () => store.insert(newJob()).id);
    const first = store.claimNext('a')!;
    const second = store.claimNext('b')!;
    store.finish(second.id, 'completed', {});
    now += 10_000_000;
    expect(store.deleteFinishedBefore(now / 1000)).toBe(1);
    expect(store.requeue(first.id)).toBe(true);
    expectPositions(store, ids);
    // Empty the queue, then requeue into it.
    const all = [store.claimNext('c')!, store.claimNext('d')!, store.claimNext('e')!, store.claimNext('f')!];
    expect(store.claimNext('g')).toBeUndefined();
    expect(store.requeue(all[2]!.id)).toBe(true);
    const late = store.insert(newJob()).id;
    expectPositions(store, [...ids, late]);
    expect(store.queuePosition(store.get(late)!)).toBe(1);
  });

  test('a version 6 database with jobs cancelled in the middle of its queue migrates to the right positions', () => {
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
    const fresh = store.insert(newJob()).id;
    const ids = [...statuses.map((_, i) => `old-${i}`).filter((id) => id !== 'old-7'), fresh];
    expectPositions(store, ids);
    expect(store.queuePosition(store.get(fresh)!)).toBe(4);
    store.claimNext('x');
    store.cancelPending('old-6', cancelled);
    expectPositions(store, ids);
  });
});

describe('hot queries on a million jobs', () => {
  test('admission, claim, /status, /stats and ending a job use indexes, never a scan of the jobs', () => {
    const name = 'million.db';
    open(name).close();
    fillQueue(path.join(dir, name), 1_000_000);
    const store = open(name);
    expect(store.counts().pending).toBe(1_000_000);
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
    const last = store.get('fill-1000000')!;
    expect(store.queuePosition(last)).toBe(999_999);
  });
});
