import fs from 'node:fs';
import path from 'node:path';
import { tempDir } from '../../test/support/tmp';
import { ConfigError } from '../config';
import { SecretBox } from './secrets';
import { JobStore } from './store';
import type { JobSpec, NewJob } from './types';

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
const newJob = (extra: Partial<NewJob> = {}): NewJob => ({ id: `job-${++n}`, door: 'http', sync: false, spec: spec(), ...extra });

const opened: JobStore[] = [];
afterAll(() => opened.forEach((s) => s.close()));
function openStore(clock?: () => number): JobStore {
  const store = new JobStore({ path: path.join(dir, `jobs-${++n}.db`), secrets, clock });
  opened.push(store);
  return store;
}

describe('JobStore', () => {
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

  test('claim is atomic across two connections to one file', () => {
    const file = path.join(dir, 'shared.db');
    const one = new JobStore({ path: file, secrets });
    const two = new JobStore({ path: file, secrets });
    for (let i = 0; i < 20; i++) one.insert(newJob());
    const claimed = new Set<string>();
    for (let i = 0; i < 20; i++) {
      const job = (i % 2 === 0 ? one : two).claimNext(`p${i}`);
      expect(job).toBeDefined();
      expect(claimed.has(job!.id)).toBe(false);
      claimed.add(job!.id);
    }
    expect(one.claimNext('x')).toBeUndefined();
    one.close();
    two.close();
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
    expect(() => new JobStore({ path: file, secrets })).toThrow(ConfigError);
    expect(() => new JobStore({ path: file, secrets })).toThrow(`SQLITE_DB_PATH: ${file} is not a SQLite database`);
  });

  test('an unwritable location is a clear startup error', () => {
    const blocker = path.join(dir, 'a-file');
    fs.writeFileSync(blocker, 'x');
    expect(() => new JobStore({ path: path.join(blocker, 'jobs.db'), secrets })).toThrow(
      /SQLITE_DB_PATH: cannot create the folder/,
    );
  });
});
