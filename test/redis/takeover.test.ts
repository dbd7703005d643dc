// What a worker that dies leaves behind on a shared queue (real worker processes, a real
// redis-server, SIGKILL): its webhook delivery in flight is made by another worker once its lease
// runs out; a synchronous job it accepted is cancelled, not run for a caller that is gone; a
// cancel sent after it died sticks to the job, for whoever takes the job over.
import path from 'node:path';
import { Redis } from 'ioredis';
import { startSimulator, type Simulator } from '../../simulator';
import { submittedPrefixes, waitForStatus } from '../http-api/support';
import { spawnWorker, type WorkerProcess } from '../support/process';
import { startReceiver, type Receiver } from '../support/receiver';
import { startRedis, type RedisServer } from '../support/redis';
import { tempDir } from '../support/tmp';
import { callJson, postJson, until } from '../support/worker';
import { saveWorkflow, slowWorkflow } from '../support/workflows';

let redis: RedisServer;
let receiver: Receiver;
const sims: Simulator[] = [];
const procs: WorkerProcess[] = [];

beforeEach(async () => {
  redis = await startRedis();
  receiver = await startReceiver();
});
afterEach(async () => {
  for (const proc of procs.splice(0)) await proc.kill('SIGKILL');
  for (const sim of sims.splice(0)) await sim.close();
  await receiver.close();
  await redis.stop();
});

async function simulator(delayMs = 1): Promise<Simulator> {
  const sim = await startSimulator({ nodeDelayMs: { ImageScale: delayMs, '*': 1 } });
  sims.push(sim);
  return sim;
}

async function worker(comfy: string, extra: Record<string, string> = {}): Promise<WorkerProcess> {
  const proc = await spawnWorker({
    COMFYUI_API_BASE: comfy,
    SQLITE_DB_PATH: path.join(tempDir('redis-worker-'), 'jobs.db'),
    JOB_QUEUE_URL: redis.url,
    JOB_SECRETS_KEY: 'one key for every worker',
    JOB_QUEUE_LOCK_S: '2',
    JOB_QUEUE_WEBHOOK_LEASE_S: '3',
    ALLOW_PRIVATE_URLS: 'true',
    HISTORY_POLL_INTERVAL_S: '0.5',
    WEBSOCKET_RECONNECT_DELAY_S: '0.2',
    ...extra,
  });
  procs.push(proc);
  return proc;
}

const jobsOf = (sim: Simulator) => submittedPrefixes(sim.prompts).map((p) => p.replace(/_[0-9a-f]{8}$/, ''));

test('the worker that ended a job dies while delivering its webhook: another worker delivers it once, after the lease', async () => {
  const sim = await simulator();
  let release = () => {};
  receiver.hold = new Promise<void>((resolve) => (release = resolve));
  const a = await worker(sim.url);
  const body = { workflow: saveWorkflow('hooked'), webhook: { url: `${receiver.url}?token=t` } };
  const id = (await postJson(`${a.url}/run`, body)).body.job_id as string;
  await until(() => receiver.held === 1, 15_000, 'the first attempt at the receiver, held');
  await a.kill('SIGKILL');
  await until(() => receiver.dropped === 1, 10_000, 'the dead sender’s connection closed');
  receiver.hold = undefined;
  release();
  expect(receiver.finals()).toHaveLength(0);

  const b = await worker((await simulator()).url);
  const [delivered] = await receiver.waitFor(1, undefined, 30_000);
  expect(delivered!.body).toMatchObject({ event: 'completed', id });
  await until(
    async () => (await callJson('GET', `${b.url}/status/${id}`)).body.webhook?.status === 'delivered',
    10_000,
    'the delivery recorded',
  );
  expect(receiver.finals()).toHaveLength(1);
}, 60_000);

test('a synchronous job whose worker died before it ran is cancelled, not run for a caller that is gone', async () => {
  const api = await worker('http://127.0.0.1:9', { WORKER_ROLE: 'api' });
  const call = fetch(`${api.url}/generate/sync`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ input: { request_id: 'orphan-1', workflow_json: saveWorkflow('orphan') } }),
  }).catch((err: unknown) => err);
  await waitForStatus(api.url, 'orphan-1', ['pending']);
  await api.kill('SIGKILL');
  expect(String(await call)).toMatch(/fetch failed/);
  // Its alive key runs out (3 × JOB_QUEUE_LOCK_S after its last renewal).
  const raw = new Redis(redis.url);
  try {
    await until(async () => (await raw.keys('comfyui-worker:alive:*')).length === 0, 30_000, 'the dead worker’s alive key gone');
  } finally {
    raw.disconnect();
  }
  const sim = await simulator();
  const b = await worker(sim.url);
  const ended = await waitForStatus(b.url, 'orphan-1', ['cancelled', 'completed', 'failed'], 30_000);
  expect(ended.status).toBe('cancelled');
  expect(ended.error).toMatch(/caller waiting for it is gone/);
  // Give the runner a look at the queue: the prompt never reaches ComfyUI.
  expect((await postJson(`${b.url}/run`, { workflow: saveWorkflow('after') })).status).toBe(200);
  await until(() => jobsOf(sim).includes('after'), 15_000, 'the next job run');
  expect(jobsOf(sim)).toEqual(['after']);
}, 90_000);

test('a cancel sent just after the worker running the job died sticks: the worker that takes it over (its backend) interrupts the prompt and ends it cancelled', async () => {
  const simA = await simulator(10_000);
  const a = await worker(simA.url);
  const id = (await postJson(`${a.url}/run`, { workflow: slowWorkflow('sticky') })).body.job_id as string;
  await waitForStatus(a.url, id, ['running']);
  await until(() => simA.prompts.length === 1, 5_000, 'the prompt in ComfyUI A');
  await a.kill('SIGKILL');
  const api = await worker('http://127.0.0.1:9', { WORKER_ROLE: 'api' });
  expect((await callJson('POST', `${api.url}/cancel/${id}`)).status).toBe(200);

  await worker(simA.url); // A again, with the same backend: it takes the job over
  const ended = await waitForStatus(api.url, id, ['cancelled', 'completed', 'failed'], 30_000);
  expect(ended.status).toBe('cancelled');
  expect(simA.requests.some((r) => r.path === '/interrupt')).toBe(true);
  expect(jobsOf(simA)).toEqual(['sticky']);
}, 90_000);

test('a cancel sent just after the worker running the job died sticks: a worker without its backend ends it cancelled without running it', async () => {
  const simA = await simulator(10_000);
  const simB = await simulator();
  const a = await worker(simA.url);
  const id = (await postJson(`${a.url}/run`, { workflow: slowWorkflow('sticky') })).body.job_id as string;
  await waitForStatus(a.url, id, ['running']);
  await until(() => simA.prompts.length === 1, 5_000, 'the prompt in ComfyUI A');
  await a.kill('SIGKILL');
  const b = await worker(simB.url);
  expect((await callJson('POST', `${b.url}/cancel/${id}`)).status).toBe(200);
  // Well within the 60 s a job left running waits for a worker with its backend.
  const ended = await waitForStatus(b.url, id, ['cancelled', 'completed', 'failed'], 30_000);
  expect(ended.status).toBe('cancelled');
  expect(simB.prompts).toHaveLength(0);
}, 90_000);
