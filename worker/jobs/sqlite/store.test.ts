import fs from 'node:fs';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { tempDir } from '../../../test/support/tmp';
import Database from 'better-sqlite3';
import { ConfigError } from '../../config';
import { MIGRATIONS } from './migrations';
import { SecretBox } from '../../secrets/secret-box';
import { SqliteJobStore } from './store';
import type { JobSpec, NewJob } from '../types';

const dir = tempDir('store-');
const secrets = SecretBox.open({ keyFile: path.join(dir, 'key') });
let n = 0;
const spec = (): JobSpec => ({
  workflow: { '1': { class_type: 'SaveImage', inputs: {} } },
  images: [{ name: 'a.png', image: 'AAAA' }],
  includeTempOutputs: false,
  forceBase64: false,
  includeComfyResponse: false,
  allowPartial: false,
});
const newJob = (extra: Partial<NewJob> = {}): NewJob => ({
  id: `job-${++n}`,
  source: 'http',
  contract: 'worker-comfyui',
  sync: false,
  spec: spec(),
  ...extra,
});

// A claimer thread: the real SqliteJobStore (TypeScript compiled with swc, as jest does) on its own
// connection; says it is ready, waits for the common start, claims until nothing is left.
const CLAIMER = `
const fs = require('node:fs');
const swc = require('@swc/core');
const { parentPort, workerData } = require('node:worker_threads');
require.extensions['.ts'] = (module, filename) => {
  const options = { filename, module: { type: 'commonjs' }, jsc: { target: 'es2022', parser: { syntax: 'typescript' } } };
  module._compile(swc.transformSync(fs.readFileSync(filename, 'utf8'), options).code, filename);
};
const { SqliteJobStore } = require(workerData.storeModule);
const { SecretBox } = require(workerData.secretsModule);
const store = new SqliteJobStore({ path: workerData.file, secrets: SecretBox.open({ keyFile: workerData.keyFile }) });
parentPort.postMessage({ ready: true });
Atomics.wait(workerData.start, 0, 0);
const claimed = [];
for (let i = 0; ; i++) {
  const job = store.claimNext(workerData.tag + '-' + i);
  if (!job) break;
  claimed.push(job.id);
}
store.close();
parentPort.postMessage({ claimed });
`;

const opened: SqliteJobStore[] = [];
afterAll(() => opened.forEach((s) => s.close()));
function openStore(clock?: () => number): SqliteJobStore {
  const store = new SqliteJobStore({ path: path.join(dir, `jobs-${++n}.db`), secrets, clock });
  opened.push(store);
  return store;
}

describe('SqliteJobStore', () => {
  test('insert, get, FIFO claim with prompt id, finish', () => {
    let now = 1_700_000_000_000;
    const store = openStore(() => now);
    const a = store.insert(newJob());
    const b = store.insert(newJob());
    expect(a).toMatchObject({ status: 'pending', attempts: 0, promptId: null, createdAt: 1_700_000_000, startedAt: null });
    expect(a.spec.images).toEqual([{ name: 'a.png', image: 'AAAA' }]);
    expect(store.queuePosition(b)).toBe(1);
    now += 1500;
    const claimed = store.claimNext('p-1');
    expect(claimed).toMatchObject({ id: a.id, status: 'running', promptId: 'p-1', attempts: 1, startedAt: 1_700_000_001.5 });
    expect(store.queuePosition(store.get(b.id)!)).toBe(0);
    expect(
      store.finish(a.id, 'completed', {
        result: { outputs: [], warnings: [], timings: {} as never },
        files: [Buffer.from('png')],
      }),
    ).toBe(true);
    const done = store.get(a.id)!;
    expect(done.status).toBe('completed');
    expect(done.spec.images).toEqual([]); // inputs purged at the end
    expect(store.file(a.id, 0)?.toString()).toBe('png');
    // First writer wins: a finished job is not finished again.
    expect(store.finish(a.id, 'failed', { error: { code: 'internal', message: 'x', status: 500 } })).toBe(false);
    expect(store.counts()).toEqual({ pending: 1, running: 0, completed: 1, failed: 0, cancelled: 0 });
  });

  test('failures are stored as failed with their error, never as completed', () => {
    const store = openStore();
    const job = store.insert(newJob());
    store.claimNext('p');
    store.finish(job.id, 'failed', { error: { code: 'execution_error', message: 'boom', status: 500 } });
    expect(store.get(job.id)).toMatchObject({ status: 'failed', error: { message: 'boom' }, result: null });
  });

  test('duplicate id is a 409', () => {
    const store = openStore();
    store.insert(newJob({ id: 'same' }));
    expect(() => store.insert(newJob({ id: 'same' }))).toThrow(expect.objectContaining({ status: 409 }));
  });

  test('cancelPending only cancels jobs that have not started', () => {
    const store = openStore();
    const a = store.insert(newJob());
    const b = store.insert(newJob());
    store.claimNext('p');
    const reason = { code: 'cancelled' as const, message: 'by client', status: 499 };
    expect(store.cancelPending(a.id, reason)).toBe(false);
    expect(store.cancelPending(b.id, reason)).toBe(true);
    expect(store.get(b.id)).toMatchObject({ status: 'cancelled', error: reason });
  });

  test('claim is atomic across connections racing on one file', async () => {
    // Four threads, each with its own connection to one file, claim as fast as they can from the
    // same instant: every job is claimed exactly once, by the claimer whose prompt id it stores.
    const file = path.join(dir, 'shared.db');
    const seed = new SqliteJobStore({ path: file, secrets });
    const ids = Array.from({ length: 400 }, () => seed.insert(newJob()).id);
    const start = new Int32Array(new SharedArrayBuffer(4));
    const threads = ['a', 'b', 'c', 'd'].map(
      (tag) =>
        new Worker(CLAIMER, {
          eval: true,
          workerData: {
            storeModule: require.resolve('./store'),
            secretsModule: require.resolve('../../secrets/secret-box'),
            file,
            keyFile: path.join(dir, 'key'),
            tag,
            start,
          },
        }),
    );
    const failed = threads.map((t) => new Promise<never>((_, reject) => t.once('error', reject)));
    const message = (k: number, wanted: 'ready' | 'claimed') =>
      Promise.race([
        new Promise<{ claimed?: string[] }>((resolve) => threads[k]!.on('message', (m) => wanted in m && resolve(m))),
        failed[k]!,
      ]);
    const results = threads.map((_, k) => message(k, 'claimed'));
    await Promise.all(threads.map((_, k) => message(k, 'ready'))); // every connection open
    Atomics.store(start, 0, 1);
    Atomics.notify(start, 0);
    const claimed = (await Promise.all(results)).map((m) => m.claimed!);
    await Promise.all(threads.map((t) => t.terminate()));

    const all = claimed.flat();
    expect(all).toHaveLength(ids.length);
    expect(new Set(all)).toEqual(new Set(ids));
    claimed.forEach((mine, k) => {
      for (const id of mine) expect(seed.get(id)?.promptId).toMatch(new RegExp(`^${'abcd'[k]}-\\d+$`));
    });
    expect(seed.claimNext('x')).toBeUndefined();
    seed.close();
  });

  test('secrets are sealed at rest and purged when the job ends', () => {
    const store = openStore();
    const job = store.insert(newJob({ secrets: { s3SecretAccessKey: 'TOP-SECRET-VALUE', webhookSecret: 'whsec' } }));
    // A webhook secret is kept with the webhook delivery (none here), not with the job.
    expect(store.secretsOf(job.id)).toEqual({ s3SecretAccessKey: 'TOP-SECRET-VALUE' });
    const onDisk = Buffer.concat([fs.readFileSync(store.path), fs.readFileSync(`${store.path}-wal`)]);
    expect(onDisk.includes('whsec')).toBe(false);
    expect(onDisk.includes('TOP-SECRET-VALUE')).toBe(false);
    expect(onDisk.includes('"spec"') || onDisk.includes('SaveImage')).toBe(true); // the rest is readable
    store.claimNext('p');
    store.finish(job.id, 'completed', {});
    expect(store.secretsOf(job.id)).toEqual({});
  });

  test('a file that is not a database is a clear startup error', () => {
    const file = path.join(dir, 'garbage.db');
    fs.writeFileSync(file, 'this is not sqlite '.repeat(100));
    expect(() => new SqliteJobStore({ path: file, secrets })).toThrow(ConfigError);
    expect(() => new SqliteJobStore({ path: file, secrets })).toThrow(`SQLITE_DB_PATH: ${file} is not a SQLite database`);
  });

  test('an unwritable location is a clear startup error', () => {
    const blocker = path.join(dir, 'a-file');
    fs.writeFileSync(blocker, 'x');
    expect(() => new SqliteJobStore({ path: path.join(blocker, 'jobs.db'), secrets })).toThrow(
      /SQLITE_DB_PATH: cannot create the folder/,
    );
  });

  test('requeue puts a job left running back at the head of the queue, to be claimed with a new prompt id', () => {
    const store = openStore();
    const a = store.insert(newJob());
    const b = store.insert(newJob());
    store.claimNext('first-prompt');
    expect(store.requeue(a.id)).toBe(true);
    expect(store.get(a.id)).toMatchObject({ status: 'pending', promptId: null, startedAt: null, attempts: 1 });
    expect(store.requeue(a.id)).toBe(false); // only running jobs
    expect(store.queuePosition(store.get(b.id)!)).toBe(1);
    expect(store.claimNext('second-prompt')).toMatchObject({ id: a.id, promptId: 'second-prompt', attempts: 2 });
  });

  test('counts are kept per status through every transition and deletion', () => {
    const store = openStore();
    const ids = Array.from({ length: 6 }, () => store.insert(newJob()).id);
    store.claimNext('p1');
    store.finish(ids[0]!, 'completed', { files: [Buffer.from('x')] });
    store.claimNext('p2');
    store.finish(ids[1]!, 'failed', { error: { code: 'internal', message: 'x', status: 500 } });
    store.cancelPending(ids[2]!, { code: 'cancelled', message: 'x', status: 499 });
    store.claimNext('p3');
    store.requeue(ids[3]!);
    store.claimNext('p4');
    expect(store.deleteFinished(ids[0]!)).toBe(true);
    expect(store.deleteFinished(ids[3]!)).toBe(false); // running
    expect(store.deleteFinished(ids[4]!)).toBe(false); // pending
    expect(store.counts()).toEqual({ pending: 2, running: 1, completed: 0, failed: 1, cancelled: 1 });
    expect(store.pendingCount()).toBe(2);
  });

  test('a version 1 database gets its counts on migration', () => {
    const file = path.join(dir, 'v1.db');
    const v1 = new Database(file);
    v1.exec(MIGRATIONS[0]!);
    v1.pragma('user_version = 1');
    const insert = v1.prepare(
      `INSERT INTO jobs (id, door, status, created_at, spec) VALUES (?, 'http', ?, 1, '{"workflow":{}}')`,
    );
    ['pending', 'pending', 'running', 'completed', 'failed', 'failed', 'failed'].forEach((status, i) =>
      insert.run(`old-${i}`, status),
    );
    v1.close();
    const store = new SqliteJobStore({ path: file, secrets });
    opened.push(store);
    expect(store.counts()).toEqual({ pending: 2, running: 1, completed: 1, failed: 3, cancelled: 0 });
    store.insert(newJob());
    expect(store.pendingCount()).toBe(3);
  });

  test("a version 3 database's door becomes a source and a contract", () => {
    const file = path.join(dir, 'v3.db');
    const v3 = new Database(file);
    MIGRATIONS.slice(0, 3).forEach((sql) => v3.exec(sql));
    v3.pragma('user_version = 3');
    const insert = v3.prepare(
      `INSERT INTO jobs (id, door, status, created_at, spec) VALUES (?, ?, 'pending', 1, '{"workflow":{}}')`,
    );
    for (const door of ['http', 'wrapper', 'vast', 'runpod', 'benchmark']) insert.run(door, door);
    v3.close();
    const store = new SqliteJobStore({ path: file, secrets });
    opened.push(store);
    const labels = (id: string) => {
      const job = store.get(id);
      return [job?.source, job?.contract];
    };
    expect(labels('http')).toEqual(['http', 'worker-comfyui']);
    expect(labels('wrapper')).toEqual(['http', 'wrapper']);
    expect(labels('vast')).toEqual(['vast', 'wrapper']);
    expect(labels('runpod')).toEqual(['runpod', 'worker-comfyui']);
    expect(labels('benchmark')).toEqual(['benchmark', 'wrapper']);
  });

  test('recent jobs newest first; old ended jobs deleted with their files; running since a time', () => {
    let now = 1_700_000_000_000;
    const store = openStore(() => now);
    const a = store.insert(newJob());
    const b = store.insert(newJob());
    const c = store.insert(newJob());
    store.claimNext('pa');
    store.finish(a.id, 'completed', { files: [Buffer.from('png')] });
    now += 3_600_000;
    store.claimNext('pb');
    store.finish(b.id, 'failed', { error: { code: 'execution_error', message: 'boom', status: 500 } });
    store.claimNext('pc');
    expect(store.recent(2).map((j) => [j.id, j.status, j.error?.message ?? null])).toEqual([
      [c.id, 'running', null],
      [b.id, 'failed', 'boom'],
    ]);
    expect(store.runningSince(store.now() + 1).map((j) => j.id)).toEqual([c.id]);
    expect(store.runningSince(store.now() - 1)).toEqual([]);
    expect(store.deleteFinishedBefore(store.now() - 1800)).toBe(1);
    expect(store.get(a.id)).toBeUndefined();
    expect(store.file(a.id, 0)).toBeUndefined();
    expect(store.get(b.id)?.status).toBe('failed');
  });

  test('secrets sealed with another key: a clear error, never the plaintext', () => {
    const file = path.join(dir, 'rekey.db');
    const first = new SqliteJobStore({ path: file, secrets: SecretBox.open({ key: 'one', keyFile: '' }) });
    const job = first.insert(newJob({ secrets: { comfyOrgApiKey: 'the-key' } }));
    first.close();
    const second = new SqliteJobStore({ path: file, secrets: SecretBox.open({ key: 'two', keyFile: '' }) });
    opened.push(second);
    expect(() => second.secretsOf(job.id)).toThrow('sealed with another JOB_SECRETS_KEY');
  });
});
