// What a worker that dies leaves behind on a shared queue (real worker processes, a real
// redis-server, SIGKILL): its webhook delivery in flight is made by another worker once its lease
// runs out; a synchronous job it accepted is cancelled, not run for a caller that is gone; a
// cancel sent after it died sticks to the job, for whoever takes the job over; a job whose prompt
// it had sent is reconciled by a worker with its backend, or after JOB_QUEUE_TAKEOVER_S failed by
// another (never run twice); a job whose prompt it had not sent yet simply runs elsewhere.
import path from 'node:path';
import { Redis } from 'ioredis';
import { startSimulator, type Simulator } from '../../simulator';
import { TERMINAL, submittedPrefixes, waitForStatus } from '../http-api/support';
import { serve } from '../support/http-server';
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

const PNG = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==',
  'base64',
);

test('SIGKILL of the worker on machine A after its prompt reached ComfyUI: after JOB_QUEUE_TAKEOVER_S a worker on machine B fails it worker_lost, never sending the prompt; its webhook is delivered once', async () => {
  const simA = await simulator(10_000);
  const simB = await simulator();
  const a = await worker(simA.url, { WORKER_NODE_ID: 'machine-a' });
  const body = { workflow: slowWorkflow('lost'), webhook: { url: `${receiver.url}?token=t` } };
  const id = (await postJson(`${a.url}/run`, body)).body.job_id as string;
  await waitForStatus(a.url, id, ['running']);
  await until(() => simA.prompts.length === 1, 5_000, 'the prompt in ComfyUI A');
  await a.kill('SIGKILL');
  const diedAt = Date.now();

  const b = await worker(simB.url, { WORKER_NODE_ID: 'machine-b', JOB_QUEUE_TAKEOVER_S: '3' });
  const ended = await waitForStatus(b.url, id, TERMINAL, 30_000);
  expect(Date.now() - diedAt).toBeGreaterThanOrEqual(3_000);
  expect(ended).toMatchObject({ status: 'failed', error_code: 'worker_lost' });
  expect(ended.error).toMatch(/machine-a http:\/\/127\.0\.0\.1:\d+.*may have run there, so it was not resubmitted/);
  expect(simB.prompts).toHaveLength(0);
  const [delivered] = await receiver.waitFor(1, undefined, 15_000);
  expect(delivered!.body).toMatchObject({ event: 'failed', id });
  // B's runner goes on with other jobs; the lost one is never sent anywhere.
  expect((await postJson(`${b.url}/run`, { workflow: saveWorkflow('next') })).status).toBe(200);
  await until(() => jobsOf(simB).includes('next'), 15_000, 'the next job run on B');
  expect(jobsOf(simB)).toEqual(['next']);
  expect(jobsOf(simA)).toEqual(['lost']);
  expect(receiver.finals()).toHaveLength(1);
}, 90_000);

test('SIGKILL of the worker on machine A after its prompt reached ComfyUI: B hands it back meanwhile; A back (same machine, same backend) reconciles it even past its takeover wait; the prompt ran once, its webhook delivered once', async () => {
  const simA = await simulator(3_000);
  const simB = await simulator();
  const a = await worker(simA.url, { WORKER_NODE_ID: 'machine-a' });
  const body = { workflow: slowWorkflow('victim'), webhook: { url: `${receiver.url}?token=t` } };
  const id = (await postJson(`${a.url}/run`, body)).body.job_id as string;
  await waitForStatus(a.url, id, ['running']);
  await until(() => simA.prompts.length === 1, 5_000, 'the prompt in ComfyUI A');
  // B joins once A has the job (the queue is shared: started earlier, B could take it first).
  const b = await worker(simB.url, { WORKER_NODE_ID: 'machine-b' });
  await a.kill('SIGKILL');
  // B sees it left running (its lock runs out after 2 s) and hands it back for 60 s.
  await new Promise((r) => setTimeout(r, 5_000));
  expect((await callJson('GET', `${b.url}/status/${id}`)).body.status).toBe('running');

  // A comes back with a takeover wait already passed: the job is its own to reconcile, not to fail.
  const again = await worker(simA.url, { WORKER_NODE_ID: 'machine-a', JOB_QUEUE_TAKEOVER_S: '1' });
  const done = await waitForStatus(again.url, id, TERMINAL, 30_000);
  expect(done.status).toBe('completed');
  expect(done.result.images).toHaveLength(1);
  expect(jobsOf(simA)).toEqual(['victim']);
  expect(simB.prompts).toHaveLength(0);
  const [delivered] = await receiver.waitFor(1, undefined, 15_000);
  expect(delivered!.body).toMatchObject({ event: 'completed', id });
  await new Promise((r) => setTimeout(r, 1_500));
  expect(receiver.finals()).toHaveLength(1);
}, 90_000);

test('SIGKILL of the worker on machine A before its prompt was sent (fetching an input image): a worker on machine B runs it at once, its prompt sent once', async () => {
  let release = () => {};
  const held = new Promise<void>((resolve) => (release = resolve));
  let asked = 0;
  const images = await serve((_req, res) => {
    asked++;
    void held.then(() => {
      res.writeHead(200, { 'content-type': 'image/png' });
      res.end(PNG);
    });
  });
  try {
    const simA = await simulator();
    const simB = await simulator();
    const a = await worker(simA.url, { WORKER_NODE_ID: 'machine-a' });
    const body = {
      workflow: {
        '1': { class_type: 'LoadImage', inputs: { image: 'cat.png' } },
        '2': { class_type: 'SaveImage', inputs: { images: ['1', 0], filename_prefix: 'unsent' } },
      },
      images: [{ name: 'cat.png', image: `${images.url}/cat.png` }],
    };
    const id = (await postJson(`${a.url}/run`, body)).body.job_id as string;
    await until(() => asked === 1, 10_000, 'A fetching the input image');
    await a.kill('SIGKILL');
    release();

    // Well within the (default, 60 s) takeover wait: nothing of it is in any ComfyUI.
    const b = await worker(simB.url, { WORKER_NODE_ID: 'machine-b' });
    const done = await waitForStatus(b.url, id, TERMINAL, 30_000);
    expect(done.status).toBe('completed');
    expect(jobsOf(simB)).toEqual(['unsent']);
    expect(simA.prompts).toHaveLength(0);
  } finally {
    await images.close();
  }
}, 90_000);
