import fs from 'node:fs';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { tempDir } from '../../../test/support/tmp';
import Database from 'better-sqlite3';
import { ConfigError } from '../../config';
import { MIGRATIONS } from './migrations';
import { SecretBox } from '../../secrets/secret-box';
import { SqliteJobStore } from './store';
import { SpooledImage } from '../../comfy/inputs';
import type { KeptFile } from '../../delivery/types';
import type { JobRecord, JobSpec, NewJob } from '../types';

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
(async () => {
  const claimed = [];
  for (let i = 0; ; i++) {
    const job = await store.claimNext(workerData.tag + '-' + i);
    if (!job) break;
    claimed.push(job.id);
  }
  await store.close();
  parentPort.postMessage({ claimed });
})();
`;
/** An output of the running job kept for inline answers, as delivery writes it. */
function keep(store: SqliteJobStore, job: JobRecord, index: number, text: string): KeptFile {
  const file = store.outputSink(job).file(index);
  fs.writeFileSync(file, text);
  return { path: file, size: text.length };
}

/** Reads a kept output back, file or (old rows) bytes. */
async function read(store: SqliteJobStore, id: string, index: number): Promise<string | undefined> {
  const stored = await store.file(id, index);
  if (!stored) return undefined;
  return ('bytes' in stored ? stored.bytes : fs.readFileSync(stored.path)).toString();
}

/** Files are deleted in the background: wait (with a deadline) until `check` holds. */
async function eventually(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const opened: SqliteJobStore[] = [];
afterAll(async () => {
  for (const s of opened) await s.close();
});
function openStore(clock?: () => number): SqliteJobStore {
  const store = new SqliteJobStore({ path: path.join(dir, `jobs-${++n}.db`), secrets, clock });
  opened.push(store);
  return store;
}

describe('SqliteJobStore', () => {
  test('insert, get, FIFO claim with prompt id, finish', async () => {
    let now = 1_700_000_000_000;
    const store = openStore(() => now);
    const a = await store.insert(newJob());
    const b = await store.insert(newJob());
    expect(a).toMatchObject({ status: 'pending', attempts: 0, promptId: null, createdAt: 1_700_000_000, startedAt: null });
    // A base64 image is decoded into a file when the job is stored.
    const input = a.spec.images[0]!.image as SpooledImage;
    expect(input).toBeInstanceOf(SpooledImage);
    expect(fs.readFileSync(input.path)).toEqual(Buffer.from('AAAA', 'base64'));
    expect((await store.get(a.id))?.spec.images).toEqual([{ name: 'a.png', image: new SpooledImage(input.path, 3) }]);
    expect(await store.queuePosition(b)).toBe(1);
    now += 1500;
    const claimed = await store.claimNext('p-1');
    expect(claimed).toMatchObject({ id: a.id, status: 'running', promptId: 'p-1', attempts: 1, startedAt: 1_700_000_001.5 });
    expect(await store.queuePosition((await store.get(b.id))!)).toBe(0);
    expect(
      await store.finish(a.id, 'completed', {
        result: { outputs: [], warnings: [], timings: {} as never },
        files: [keep(store, claimed!, 0, 'png')],
      }),
    ).toBe(true);
    const done = (await store.get(a.id))!;
    expect(done.status).toBe('completed');
    expect(done.spec.images).toEqual([]); // inputs purged at the end
    expect(await read(store, a.id, 0)).toBe('png');
    expect(await store.file(a.id, 0)).toMatchObject({ size: 3, path: expect.stringContaining(`${store.files.root}/outputs/`) });
    await eventually(() => !fs.existsSync(input.path), 'the input file to be deleted');
    // First writer wins: a finished job is not finished again.
    expect(await store.finish(a.id, 'failed', { error: { code: 'internal', message: 'x', status: 500 } })).toBe(false);
    expect(await store.counts()).toEqual({ pending: 1, running: 0, completed: 1, failed: 0, cancelled: 0 });
  });

  test('failures are stored as failed with their error, never as completed', async () => {
    const store = openStore();
    const job = await store.insert(newJob());
    await store.claimNext('p');
    await store.finish(job.id, 'failed', { error: { code: 'execution_error', message: 'boom', status: 500 } });
    expect(await store.get(job.id)).toMatchObject({ status: 'failed', error: { message: 'boom' }, result: null });
  });

  test('duplicate id is a 409', async () => {
    const store = openStore();
    await store.insert(newJob({ id: 'same' }));
    await expect(store.insert(newJob({ id: 'same' }))).rejects.toThrow(expect.objectContaining({ status: 409 }));
  });

  test('cancelPending only cancels jobs that have not started', async () => {
    const store = openStore();
    const a = await store.insert(newJob());
    const b = await store.insert(newJob());
    await store.claimNext('p');
    const reason = { code: 'cancelled' as const, message: 'by client', status: 499 };
    expect(await store.cancelPending(a.id, reason)).toBe(false);
    expect(await store.cancelPending(b.id, reason)).toBe(true);
    expect(await store.get(b.id)).toMatchObject({ status: 'cancelled', error: reason });
  });

  test('claim is atomic across connections racing on one file', async () => {
    // Four threads, each with its own connection to one file, claim as fast as they can from the
    // same instant: every job is claimed exactly once, by the claimer whose prompt id it stores.
    const file = path.join(dir, 'shared.db');
    const seed = new SqliteJobStore({ path: file, secrets });
    const ids: string[] = [];
    for (let i = 0; i < 400; i++) ids.push((await seed.insert(newJob())).id);
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
    for (const [k, mine] of claimed.entries()) {
      for (const id of mine) expect((await seed.get(id))?.promptId).toMatch(new RegExp(`^${'abcd'[k]}-\\d+$`));
    }
    expect(await seed.claimNext('x')).toBeUndefined();
    await seed.close();
  });

  test('secrets are sealed at rest and purged when the job ends', async () => {
    const store = openStore();
    const job = await store.insert(newJob({ secrets: { s3SecretAccessKey: 'TOP-SECRET-VALUE', webhookSecret: 'whsec' } }));
    // A webhook secret is kept with the webhook delivery (none here), not with the job.
    expect(await store.secretsOf(job.id)).toEqual({ s3SecretAccessKey: 'TOP-SECRET-VALUE' });
    const onDisk = Buffer.concat([fs.readFileSync(store.path), fs.readFileSync(`${store.path}-wal`)]);
    expect(onDisk.includes('whsec')).toBe(false);
    expect(onDisk.includes('TOP-SECRET-VALUE')).toBe(false);
    expect(onDisk.includes('"spec"') || onDisk.includes('SaveImage')).toBe(true); // the rest is readable
    await store.claimNext('p');
    await store.finish(job.id, 'completed', {});
    expect(await store.secretsOf(job.id)).toEqual({});
  });

  test('a file that is not a database is a clear startup error', async () => {
    const file = path.join(dir, 'garbage.db');
    fs.writeFileSync(file, 'this is not sqlite '.repeat(100));
    expect(() => new SqliteJobStore({ path: file, secrets })).toThrow(ConfigError);
    expect(() => new SqliteJobStore({ path: file, secrets })).toThrow(`SQLITE_DB_PATH: ${file} is not a SQLite database`);
  });

  test('an unwritable location is a clear startup error', async () => {
    const blocker = path.join(dir, 'a-file');
    fs.writeFileSync(blocker, 'x');
    expect(() => new SqliteJobStore({ path: path.join(blocker, 'jobs.db'), secrets })).toThrow(
      /SQLITE_DB_PATH: cannot create the folder/,
    );
  });

  test('requeue puts a job left running back at the head of the queue, to be claimed with a new prompt id', async () => {
    const store = openStore();
    const a = await store.insert(newJob());
    const b = await store.insert(newJob());
    await store.claimNext('first-prompt');
    expect(await store.requeue(a.id)).toBe(true);
    expect(await store.get(a.id)).toMatchObject({ status: 'pending', promptId: null, startedAt: null, attempts: 1 });
    expect(await store.requeue(a.id)).toBe(false); // only running jobs
    expect(await store.queuePosition((await store.get(b.id))!)).toBe(1);
    expect(await store.claimNext('second-prompt')).toMatchObject({ id: a.id, promptId: 'second-prompt', attempts: 2 });
  });

  test('counts are kept per status through every transition and deletion', async () => {
    const store = openStore();
    const ids: string[] = [];
    for (let i = 0; i < 6; i++) ids.push((await store.insert(newJob())).id);
    const first = (await store.claimNext('p1'))!;
    await store.finish(ids[0]!, 'completed', { files: [keep(store, first, 0, 'x')] });
    await store.claimNext('p2');
    await store.finish(ids[1]!, 'failed', { error: { code: 'internal', message: 'x', status: 500 } });
    await store.cancelPending(ids[2]!, { code: 'cancelled', message: 'x', status: 499 });
    await store.claimNext('p3');
    await store.requeue(ids[3]!);
    await store.claimNext('p4');
    expect(await store.deleteFinished(ids[0]!)).toBe(true);
    expect(await store.deleteFinished(ids[3]!)).toBe(false); // running
    expect(await store.deleteFinished(ids[4]!)).toBe(false); // pending
    expect(await store.counts()).toEqual({ pending: 2, running: 1, completed: 0, failed: 1, cancelled: 1 });
    expect(await store.pendingCount()).toBe(2);
  });

  test('a version 1 database gets its counts on migration', async () => {
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
    expect(await store.counts()).toEqual({ pending: 2, running: 1, completed: 1, failed: 3, cancelled: 0 });
    await store.insert(newJob());
    expect(await store.pendingCount()).toBe(3);
  });

  test("a version 3 database's door becomes a source and a contract", async () => {
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
    const labels = async (id: string) => {
      const job = await store.get(id);
      return [job?.source, job?.contract];
    };
    expect(await labels('http')).toEqual(['http', 'worker-comfyui']);
    expect(await labels('wrapper')).toEqual(['http', 'wrapper']);
    expect(await labels('vast')).toEqual(['vast', 'wrapper']);
    expect(await labels('runpod')).toEqual(['runpod', 'worker-comfyui']);
    expect(await labels('benchmark')).toEqual(['benchmark', 'wrapper']);
  });

  test('recent jobs newest first; old ended jobs deleted with their files; running since a time', async () => {
    let now = 1_700_000_000_000;
    const store = openStore(() => now);
    const a = await store.insert(newJob());
    const b = await store.insert(newJob());
    const c = await store.insert(newJob());
    const running = (await store.claimNext('pa'))!;
    const kept = keep(store, running, 0, 'png');
    await store.finish(a.id, 'completed', { files: [kept] });
    now += 3_600_000;
    await store.claimNext('pb');
    await store.finish(b.id, 'failed', { error: { code: 'execution_error', message: 'boom', status: 500 } });
    await store.claimNext('pc');
    expect((await store.recent(2)).map((j) => [j.id, j.status, j.error?.message ?? null])).toEqual([
      [c.id, 'running', null],
      [b.id, 'failed', 'boom'],
    ]);
    expect((await store.runningSince(store.now() + 1)).map((j) => j.id)).toEqual([c.id]);
    expect(await store.runningSince(store.now() - 1)).toEqual([]);
    expect(await store.deleteFinishedBefore(store.now() - 1800)).toBe(1);
    expect(await store.get(a.id)).toBeUndefined();
    expect(await store.file(a.id, 0)).toBeUndefined();
    await eventually(() => !fs.existsSync(path.dirname(kept.path)), "the deleted job's outputs folder to go");
    expect((await store.get(b.id))?.status).toBe('failed');
  });

  test('secrets sealed with another key: a clear error, never the plaintext', async () => {
    const file = path.join(dir, 'rekey.db');
    const first = new SqliteJobStore({ path: file, secrets: SecretBox.open({ key: 'one', keyFile: '' }) });
    const job = await first.insert(newJob({ secrets: { comfyOrgApiKey: 'the-key' } }));
    await first.close();
    const second = new SqliteJobStore({ path: file, secrets: SecretBox.open({ key: 'two', keyFile: '' }) });
    opened.push(second);
    await expect(second.secretsOf(job.id)).rejects.toThrow('sealed with another JOB_SECRETS_KEY');
  });

  describe('job files', () => {
    test('no base64 in the database: text images are stored as files, URLs as text', async () => {
      const store = openStore();
      const job = await store.insert(
        newJob({
          spec: {
            ...spec(),
            images: [
              { name: 'b64.png', image: Buffer.from('some image bytes').toString('base64') },
              { name: 'uri.png', image: `data:image/png;base64,${Buffer.from('other bytes').toString('base64')}` },
              { name: 'url.png', image: 'https://example.com/x.png' },
            ],
          },
        }),
      );
      const images = (await store.get(job.id))!.spec.images;
      expect(fs.readFileSync((images[0]!.image as SpooledImage).path).toString()).toBe('some image bytes');
      expect(fs.readFileSync((images[1]!.image as SpooledImage).path).toString()).toBe('other bytes');
      expect(images[2]).toEqual({ name: 'url.png', image: 'https://example.com/x.png' });
      await store.close();
      const db = new Database(store.path, { readonly: true });
      const row = db.prepare('SELECT inputs FROM jobs WHERE id = ?').get(job.id) as { inputs: string };
      db.close();
      expect(JSON.parse(row.inputs)).toEqual([
        { name: 'b64.png', file: expect.stringMatching(/^inputs\/[0-9a-f-]{36}$/), size: 16 },
        { name: 'uri.png', file: expect.stringMatching(/^inputs\//), size: 11 },
        { name: 'url.png', image: 'https://example.com/x.png' },
      ]);
    });

    test('a spooled image is adopted by its job; a refused insert leaves the spool its files', async () => {
      const store = openStore();
      const spool = store.files.spool();
      const file = spool.create();
      fs.writeFileSync(file, 'decoded');
      const job = await store.insert(
        newJob({ spec: { ...spec(), images: [{ name: 'a.png', image: new SpooledImage(file, 7) }] } }),
      );
      expect((await store.get(job.id))!.spec.images).toEqual([{ name: 'a.png', image: new SpooledImage(file, 7) }]);
      const other = spool.create();
      fs.writeFileSync(other, 'refused');
      await expect(
        store.insert(newJob({ id: job.id, spec: { ...spec(), images: [{ name: 'a.png', image: new SpooledImage(other, 7) }] } })),
      ).rejects.toThrow(expect.objectContaining({ status: 409 }));
      spool.release();
      expect(fs.existsSync(file)).toBe(true); // the job's
      return eventually(() => !fs.existsSync(other), 'the unadopted spool file to be deleted');
    });

    test('inputs go when the job ends or is cancelled; outputs of a job that did not complete go too', async () => {
      const store = openStore();
      const cancelled = await store.insert(newJob());
      const failed = await store.insert(newJob());
      const inputOf = (job: JobRecord) => (job.spec.images[0]!.image as SpooledImage).path;
      expect(await store.cancelPending(cancelled.id, { code: 'cancelled', message: 'x', status: 499 })).toBe(true);
      const running = (await store.claimNext('p'))!;
      const partial = keep(store, running, 0, 'half');
      await store.finish(failed.id, 'failed', { error: { code: 'output_error', message: 'x', status: 500 }, files: [partial] });
      expect(await store.file(failed.id, 0)).toBeUndefined();
      await eventually(
        () => !fs.existsSync(inputOf(cancelled)) && !fs.existsSync(inputOf(failed)) && !fs.existsSync(path.dirname(partial.path)),
        'the files of ended jobs to be deleted',
      );
    });

    test('deleting an ended job deletes its outputs', async () => {
      const store = openStore();
      const job = await store.insert(newJob());
      const kept = keep(store, (await store.claimNext('p'))!, 0, 'out');
      await store.finish(job.id, 'completed', { files: [kept] });
      expect(await store.deleteFinished(job.id)).toBe(true);
      await eventually(() => !fs.existsSync(path.dirname(kept.path)), 'the outputs folder to go');
    });

    test('the sweep deletes only what no job refers to', async () => {
      const store = openStore();
      const pending = await store.insert(newJob());
      const done = await store.insert(newJob());
      await store.claimNext('p');
      const kept = keep(store, (await store.get(pending.id))!, 0, 'kept');
      await store.finish(pending.id, 'completed', { files: [kept] });
      const waiting = ((await store.get(done.id))!.spec.images[0]!.image as SpooledImage).path;
      const old = Date.now() / 1000 - 3600;
      const orphanInput = path.join(store.files.root, 'inputs', 'orphan');
      fs.writeFileSync(orphanInput, 'x');
      fs.utimesSync(orphanInput, old, old);
      fs.utimesSync(waiting, old, old);
      const fresh = path.join(store.files.root, 'inputs', 'being-written');
      fs.writeFileSync(fresh, 'x');
      const spool = store.files.spool();
      const live = spool.create();
      fs.writeFileSync(live, 'x');
      fs.utimesSync(live, old, old);
      const orphanOutputs = path.join(store.files.root, 'outputs', '999999');
      fs.mkdirSync(orphanOutputs);
      fs.writeFileSync(path.join(orphanOutputs, '0'), 'x');

      expect(await store.sweepFiles()).toBe(2);
      expect(fs.existsSync(orphanInput)).toBe(false);
      expect(fs.existsSync(orphanOutputs)).toBe(false);
      for (const file of [waiting, fresh, live, kept.path]) expect(fs.existsSync(file)).toBe(true);
      spool.release();
    });

    test('a version 4 database keeps serving the output bytes it stored in job_files', async () => {
      const file = path.join(dir, 'v4.db');
      const v4 = new Database(file);
      MIGRATIONS.slice(0, 4).forEach((sql) => v4.exec(sql));
      v4.pragma('user_version = 4');
      v4.prepare(
        `INSERT INTO jobs (id, status, created_at, completed_at, spec) VALUES ('old', 'completed', 1, 2, '{"workflow":{}}')`,
      ).run();
      v4.prepare(`INSERT INTO job_files (job_id, idx, bytes) VALUES ('old', 0, ?)`).run(Buffer.from('old png'));
      v4.close();
      const store = new SqliteJobStore({ path: file, secrets });
      opened.push(store);
      expect(await store.file('old', 0)).toEqual({ size: 7, bytes: Buffer.from('old png') });
      expect(await read(store, 'old', 0)).toBe('old png');
      expect(await store.deleteFinishedBefore(3)).toBe(1);
      expect(await store.file('old', 0)).toBeUndefined();
    });
  });
});
