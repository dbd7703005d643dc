// Cleanup and stuck-job reset, on demand (/admin) and in the background, with a controlled clock.
import Database from 'better-sqlite3';
import { startSimulator, type Simulator } from '../../simulator';
import type { NewJob } from '../../worker/jobs/types';
import { saveWorkflow } from '../support/workflows';
import { callJson, postJson, startTestWorker, until, type TestWorker } from '../support/worker';
import { slowWorkflow, waitForStatus } from './support';

const HOUR_MS = 3600_000;
let sim: Simulator;
let now = Date.UTC(2026, 0, 1);
const clock = () => now;

beforeAll(async () => {
  sim = await startSimulator({ nodeDelayMs: 2 });
});
afterAll(async () => {
  await sim?.close();
});

const runJob = async (worker: TestWorker, prefix: string) =>
  (await postJson(`${worker.url}/run`, { workflow: saveWorkflow(prefix) })).body.job_id as string;

/** A job marked running without the runner, as a previous process would have left it. */
async function leftoverRunning(worker: TestWorker, id: string): Promise<void> {
  const job: NewJob = {
    id,
    source: 'http',
    contract: 'worker-comfyui',
    sync: false,
    spec: {
      workflow: saveWorkflow('left'),
      images: [],
      includeTempOutputs: false,
      forceBase64: false,
      includeComfyResponse: false,
      allowPartial: false,
    },
  };
  await worker.store.insert(job);
  expect((await worker.store.claimNext('00000000-0000-4000-8000-000000000000'))?.id).toBe(id);
}

function fileCount(dbPath: string, jobId: string): number {
  const db = new Database(dbPath, { readonly: true });
  try {
    return (db.prepare('SELECT COUNT(*) AS n FROM job_files WHERE job_id = ?').get(jobId) as { n: number }).n;
  } finally {
    db.close();
  }
}

describe('on demand', () => {
  let worker: TestWorker;
  beforeAll(async () => {
    worker = await startTestWorker(sim.url, { HISTORY_POLL_INTERVAL_S: '0.5' }, true, { clock });
  });
  afterAll(() => worker?.stop());

  test('POST /admin/cleanup deletes ended jobs older than max_age_hours (files too); pending ones never expire', async () => {
    const old = [await runJob(worker, 'old_1'), await runJob(worker, 'old_2')];
    for (const id of old) await waitForStatus(worker.url, id);
    const failed = (await postJson(`${worker.url}/run`, { workflow: { '1': { class_type: 'Nope', inputs: {} } } })).body.job_id;
    await waitForStatus(worker.url, failed);
    expect(fileCount(worker.dbPath, old[0]!)).toBe(1);
    worker.runner.pause();
    const waiting = await runJob(worker, 'waiting');

    now += 25 * HOUR_MS;
    worker.runner.resume();
    const fresh = await runJob(worker, 'fresh');
    await waitForStatus(worker.url, fresh);
    await waitForStatus(worker.url, waiting);
    worker.runner.pause();
    const stillPending = await runJob(worker, 'still_pending');

    const res = await postJson(`${worker.url}/admin/cleanup`, {});
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ message: 'Cleaned up 3 old jobs', deleted: 3 });
    for (const id of [...old, failed]) expect((await callJson('GET', `${worker.url}/status/${id}`)).status).toBe(404);
    expect(fileCount(worker.dbPath, old[0]!)).toBe(0);
    // The job created before the jump but finished after it is recent; pending jobs stay.
    expect((await callJson('GET', `${worker.url}/status/${waiting}`)).body.status).toBe('completed');
    expect((await callJson('GET', `${worker.url}/status/${stillPending}`)).body.status).toBe('pending');

    now += 2 * HOUR_MS;
    expect((await postJson(`${worker.url}/admin/cleanup?max_age_hours=3`, {})).body.deleted).toBe(0);
    expect((await postJson(`${worker.url}/admin/cleanup?max_age_hours=1`, {})).body.deleted).toBe(2);
    expect((await callJson('GET', `${worker.url}/status/${stillPending}`)).body.status).toBe('pending');
    worker.runner.resume();
    await waitForStatus(worker.url, stillPending);
  });

  test('POST /admin/reset-stuck fails the running job after interrupting its prompt', async () => {
    sim.setNodeDelay({ ImageScale: 2_000, '*': 2 });
    const id = (await postJson(`${worker.url}/run`, { workflow: slowWorkflow('stuck') })).body.job_id;
    await waitForStatus(worker.url, id, ['running']);
    await until(() => sim.prompts.some((p) => JSON.stringify(p.body).includes('stuck_')), 5_000, 'submitted');

    now += HOUR_MS;
    expect((await postJson(`${worker.url}/admin/reset-stuck`, {})).body).toEqual({ message: 'Reset 0 stuck jobs', reset: 0 });
    now += 1.5 * HOUR_MS;
    const interruptsBefore = sim.requests.filter((r) => r.path === '/interrupt').length;
    const requestsBefore = sim.requests.length;
    const res = await postJson(`${worker.url}/admin/reset-stuck`, {});
    expect(res.body).toEqual({ message: 'Reset 1 stuck jobs', reset: 1 });
    const final = await waitForStatus(worker.url, id);
    expect(final).toMatchObject({ status: 'failed', error_code: 'timeout' });
    expect(final.error).toContain('stuck in running state');
    expect(sim.requests.filter((r) => r.path === '/interrupt').length).toBeGreaterThan(interruptsBefore);
    // By its prompt id (dequeued and interrupted), and no other (or bare) interrupt.
    const promptId = sim.prompts.find((p) => JSON.stringify(p.body).includes('stuck_'))!.prompt_id;
    const since = sim.requests.slice(requestsBefore).filter((r) => r.method === 'POST');
    expect(since.filter((r) => r.path === '/interrupt').map((r) => r.body)).toEqual([{ prompt_id: promptId }]);
    expect(since.filter((r) => r.path === '/queue').map((r) => r.body)).toEqual([{ delete: [promptId] }]);
    sim.setNodeDelay(2);
  });

  test('reset-stuck with a threshold; a job a previous process left running is failed at once', async () => {
    worker.runner.pause();
    await leftoverRunning(worker, 'left-1');
    now += 30 * 60_000;
    expect((await postJson(`${worker.url}/admin/reset-stuck?max_running_time_hours=1`, {})).body.reset).toBe(0);
    const res = await postJson(`${worker.url}/admin/reset-stuck?max_running_time_hours=0.25`, {});
    expect(res.body.reset).toBe(1);
    const final = (await callJson('GET', `${worker.url}/status/left-1`)).body;
    expect(final).toMatchObject({ status: 'failed', error_code: 'timeout' });
    worker.runner.resume();
  });
});

test('in the background: every CLEANUP_INTERVAL_S, old jobs deleted and stuck ones failed', async () => {
  const worker = await startTestWorker(
    sim.url,
    { CLEANUP_INTERVAL_S: '0.2', JOB_RETENTION_HOURS: '1', STUCK_JOB_HOURS: '2' },
    true,
    { clock },
  );
  try {
    const done = await runJob(worker, 'bg_done');
    await waitForStatus(worker.url, done);
    worker.runner.pause();
    await leftoverRunning(worker, 'bg-stuck');
    await new Promise((r) => setTimeout(r, 500));
    expect((await callJson('GET', `${worker.url}/status/${done}`)).status).toBe(200);
    expect((await callJson('GET', `${worker.url}/status/bg-stuck`)).body.status).toBe('running');

    now += 1.5 * HOUR_MS;
    await until(async () => (await callJson('GET', `${worker.url}/status/${done}`)).status === 404, 5_000, 'old job deleted');
    expect((await callJson('GET', `${worker.url}/status/bg-stuck`)).body.status).toBe('running');

    now += 1 * HOUR_MS;
    await until(
      async () => (await callJson('GET', `${worker.url}/status/bg-stuck`)).body.status === 'failed',
      5_000,
      'stuck failed',
    );
  } finally {
    await worker.stop();
  }
});
