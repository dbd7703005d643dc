// One job queue across workers (JOB_QUEUE_URL): two workers on one real redis-server, each with
// its own simulator. A job submitted to one runs on either and is read from both; a cancel sent to
// the one not running it stops it; the roles split serving from running; every prompt runs once.
import { Queue } from 'bullmq';
import { startSimulator, type Simulator } from '../../simulator';
import { QUEUE_NAME } from '../../worker/jobs/redis/store';
import { submittedPrefixes, waitForStatus } from '../http-api/support';
import { startRedis, type RedisServer } from '../support/redis';
import { callJson, postJson, startTestWorker, until, type TestWorker } from '../support/worker';
import { fileSaverNode, saveWorkflow, slowWorkflow } from '../support/workflows';

let redis: RedisServer;
const sims: Simulator[] = [];
const workers: TestWorker[] = [];

beforeEach(async () => {
  redis = await startRedis();
});
afterEach(async () => {
  for (const worker of workers.splice(0)) await worker.stop();
  for (const sim of sims.splice(0)) await sim.close();
  await redis.stop();
});

const shared = (extra: Record<string, string> = {}) => ({
  JOB_QUEUE_URL: redis.url,
  JOB_SECRETS_KEY: 'one key for every worker',
  JOB_QUEUE_LOCK_S: '2',
  ...extra,
});

async function worker(sim: Simulator | undefined, env: Record<string, string> = {}): Promise<TestWorker> {
  const w = await startTestWorker(sim?.url ?? 'http://127.0.0.1:9', shared(env), sim !== undefined && env.WORKER_ROLE !== 'api');
  workers.push(w);
  return w;
}

async function simulator(delayMs = 1): Promise<Simulator> {
  const sim = await startSimulator({ nodeDelayMs: { ImageScale: delayMs, '*': 1 } });
  sims.push(sim);
  return sim;
}

test('a job submitted to one worker runs on either and is read from both; each prompt runs once', async () => {
  const [simA, simB] = [await simulator(150), await simulator(150)];
  const a = await worker(simA);
  const b = await worker(simB);
  const ids: string[] = [];
  for (let i = 0; i < 12; i++) {
    ids.push((await postJson(`${a.url}/run`, { workflow: slowWorkflow(`job${i}`) })).body.job_id as string);
  }
  for (const id of ids) {
    const fromB = await waitForStatus(b.url, id, ['completed'], 30_000);
    expect(fromB.result.images).toHaveLength(1);
    const fromA = (await callJson('GET', `${a.url}/status/${id}`)).body;
    expect(fromA).toEqual(fromB);
  }
  // Both backends ran jobs, and no prompt ran twice.
  const ran = [...submittedPrefixes(simA.prompts), ...submittedPrefixes(simB.prompts)].map((p) => p.replace(/_[0-9a-f]{8}$/, ''));
  expect(ran.sort()).toEqual(ids.map((_, i) => `job${i}`).sort());
  expect(simA.prompts.length).toBeGreaterThan(0);
  expect(simB.prompts.length).toBeGreaterThan(0);
  const stats = (await callJson('GET', `${b.url}/stats`)).body;
  expect(stats).toMatchObject({ total_jobs: 12, completed_jobs: 12, pending_jobs: 0, running_jobs: 0 });
  const health = (await callJson('GET', `${a.url}/health`)).body;
  expect(health.database_path).toBe(redis.url);
});

test('a cancel sent to the worker that does not run the job stops it where it runs', async () => {
  const sim = await simulator(5_000);
  const runner = await worker(sim, { WORKER_ROLE: 'runner' });
  const api = await worker(undefined, { WORKER_ROLE: 'api' });
  const id = (await postJson(`${api.url}/run`, { workflow: slowWorkflow('long') })).body.job_id as string;
  await waitForStatus(api.url, id, ['running']);
  await until(() => sim.prompts.length === 1, 5_000, 'the prompt in ComfyUI');
  const cancel = await callJson('POST', `${api.url}/cancel/${id}`);
  expect(cancel.status).toBe(200);
  expect(cancel.body.status).toBe('cancelled');
  expect((await callJson('GET', `${api.url}/status/${id}`)).body.status).toBe('cancelled');
  // The runner interrupted the prompt in its ComfyUI, and is free for the next job.
  expect(sim.requests.some((r) => r.path === '/interrupt')).toBe(true);
  expect(runner.runner.runningJobIds).toEqual([]);
});

test('roles: an api worker needs no ComfyUI and runs nothing; a runner serves only /health and /metrics', async () => {
  const api = await worker(undefined, { WORKER_ROLE: 'api' });
  const health = await callJson('GET', `${api.url}/health`);
  expect(health.status).toBe(200);
  expect(health.body).toMatchObject({ status: 'healthy', role: 'api' });
  const id = (await postJson(`${api.url}/run`, { workflow: saveWorkflow('later') })).body.job_id as string;
  const waiting = (await callJson('GET', `${api.url}/status/${id}`)).body;
  expect(waiting).toMatchObject({ status: 'pending', queue_position: 0 });

  const sim = await simulator();
  const runner = await worker(sim, { WORKER_ROLE: 'runner' });
  expect((await callJson('GET', `${runner.url}/status/${id}`)).status).toBe(404);
  expect((await callJson('GET', `${runner.url}/metrics`)).status).toBe(200);
  expect((await callJson('GET', `${runner.url}/health`)).body).toMatchObject({ status: 'healthy', role: 'runner' });
  const done = await waitForStatus(api.url, id, ['completed'], 15_000);
  expect(done.result.images).toHaveLength(1);
});

test('/generate/sync on one worker is answered when another worker runs the job', async () => {
  const sim = await simulator();
  await worker(sim, { WORKER_ROLE: 'runner' });
  const api = await worker(undefined, { WORKER_ROLE: 'api' });
  const answer = await postJson(`${api.url}/generate/sync`, { input: { workflow_json: saveWorkflow('synced') } });
  expect(answer.status).toBe(200);
  expect(answer.body.status).toBe('completed');
  expect(answer.body.output[0].data).toMatch(/^iVBORw0KGgo/);
});

test('admin routes and result expiry work across workers; inline outputs above the cap fail naming S3', async () => {
  const sim = await simulator();
  const a = await worker(sim);
  const b = await worker(undefined, { WORKER_ROLE: 'api' });
  const first = (await postJson(`${a.url}/run`, { workflow: saveWorkflow('first') })).body.job_id as string;
  const second = (await postJson(`${b.url}/run`, { workflow: saveWorkflow('second') })).body.job_id as string;
  await waitForStatus(b.url, first, ['completed']);
  await waitForStatus(a.url, second, ['completed']);
  expect((await callJson('DELETE', `${b.url}/admin/job/${first}`)).status).toBe(200);
  expect((await callJson('GET', `${a.url}/status/${first}`)).status).toBe(404);
  // The upkeep's cleanup (here on demand) deletes ended jobs and their kept outputs.
  const cleaned = await callJson('POST', `${b.url}/admin/cleanup?max_age_hours=0`);
  expect(cleaned.body).toMatchObject({ deleted: 1 });
  expect((await callJson('GET', `${a.url}/status/${second}`)).status).toBe(404);
  expect((await callJson('GET', `${a.url}/stats`)).body).toMatchObject({ total_jobs: 0 });

  const capped = await worker(await simulator(), { JOB_QUEUE_INLINE_MAX_BYTES: '16' });
  const big = (await postJson(`${capped.url}/run`, { workflow: saveWorkflow('big') })).body.job_id as string;
  const failed = await waitForStatus(capped.url, big, ['failed', 'completed']);
  expect(failed.status).toBe('failed');
  expect(failed.error).toMatch(/JOB_QUEUE_INLINE_MAX_BYTES \(16\).*S3/);
});

test('/generate/stream on the api worker follows a job another worker runs to its final result, with its progress', async () => {
  // Long enough for several of the api worker's looks (each second) while the job runs.
  const sim = await simulator(3_000);
  await worker(sim, { WORKER_ROLE: 'runner' });
  const api = await worker(undefined, { WORKER_ROLE: 'api' });
  const res = await fetch(`${api.url}/generate/stream`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ input: { request_id: 'streamed-elsewhere', workflow_json: slowWorkflow('streamed') } }),
  });
  expect(res.status).toBe(200);
  const text = await res.text();
  const events = text
    .split('\n')
    .filter((line) => line.startsWith('data: '))
    .map((line) => JSON.parse(line.slice(6)) as Record<string, any>);
  expect(events[events.length - 1]).toMatchObject({
    status: 'final_result',
    result: { id: 'streamed-elsewhere', status: 'completed' },
  });
  // The runner saved the job's progress in Redis; the api worker streamed it.
  expect(events.some((e) => e.progress?.total_nodes === 3)).toBe(true);
});

test('a submission interrupted between its two steps is failed within JOB_QUEUE_LOCK_S of its 60 s, not at the hourly upkeep', async () => {
  let offsetS = 0;
  const api = await startTestWorker('http://127.0.0.1:9', shared({ WORKER_ROLE: 'api', CLEANUP_INTERVAL_S: '3600' }), false, {
    clock: () => Date.now() + offsetS * 1000,
  });
  workers.push(api);
  const id = (await postJson(`${api.url}/run`, { workflow: saveWorkflow('interrupted') })).body.job_id as string;
  // Only its first step done: the record without its BullMQ job (Redis failed in between).
  const bull = new Queue(QUEUE_NAME, { connection: { host: '127.0.0.1', port: redis.port } });
  await bull.remove(id);
  await bull.close();
  await new Promise((r) => setTimeout(r, 1_500));
  expect((await callJson('GET', `${api.url}/status/${id}`)).body.status).toBe('pending'); // young: not yet
  offsetS = 61;
  const failed = await waitForStatus(api.url, id, ['failed'], 5_000);
  expect(failed.error_code).toBe('store_unavailable');
  expect(failed.error).toMatch(/submission was interrupted/);
});

test('a waiting caller gets an inline output over 1 MiB whole (the store moved its file into Redis meanwhile)', async () => {
  const sim = await startSimulator({ extraNodes: { SaveBytes: fileSaverNode('SaveBytes', 'big') } });
  sims.push(sim);
  const a = await worker(sim);
  const size = 2 * 1024 * 1024 + 3;
  const res = await postJson(`${a.url}/generate/sync`, {
    input: { request_id: 'big-1', workflow_json: { '1': { class_type: 'SaveBytes', inputs: { size } } } },
  });
  expect(res.status).toBe(200);
  const [output] = res.body.output as Array<{ data: string }>;
  expect(Buffer.from(output!.data, 'base64')).toEqual(Buffer.alloc(size, 7));
});
