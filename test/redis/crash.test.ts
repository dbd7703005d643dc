// The shared queue's guarantees with real processes and a real redis-server: a worker SIGKILLed
// mid-job leaves its job to BullMQ's stalled handling and the job completes with its prompt run
// once and its webhook delivered once; Redis restarted under load gives clear 503s while it is
// away, then every job completes, none lost, none run twice.
import fs from 'node:fs';
import path from 'node:path';
import { startSimulator, type Simulator } from '../../simulator';
import { submittedPrefixes, waitForStatus } from '../http-api/support';
import { spawnWorker } from '../support/process';
import { startReceiver, type Receiver } from '../support/receiver';
import { startRedis, type RedisServer } from '../support/redis';
import { tempDir } from '../support/tmp';
import { callJson, postJson, startTestWorker, until } from '../support/worker';
import { saveWorkflow, slowWorkflow } from '../support/workflows';

let redis: RedisServer;
let receiver: Receiver;
const sims: Simulator[] = [];

beforeEach(async () => {
  redis = await startRedis();
  receiver = await startReceiver();
});
afterEach(async () => {
  for (const sim of sims.splice(0)) await sim.close();
  await receiver.close();
  await redis.stop();
});

async function simulator(delayMs = 1): Promise<Simulator> {
  const sim = await startSimulator({ nodeDelayMs: { ImageScale: delayMs, '*': 1 } });
  sims.push(sim);
  return sim;
}

const env = (sim: Simulator) => ({
  COMFYUI_API_BASE: sim.url,
  SQLITE_DB_PATH: path.join(tempDir('redis-worker-'), 'jobs.db'),
  JOB_QUEUE_URL: redis.url,
  JOB_SECRETS_KEY: 'one key for every worker',
  JOB_QUEUE_LOCK_S: '2',
  ALLOW_PRIVATE_URLS: 'true',
  HISTORY_POLL_INTERVAL_S: '0.5',
  WEBSOCKET_RECONNECT_DELAY_S: '0.2',
});

/** The jobs (by save prefix) whose prompts ComfyUI accepted, once per prompt. */
const jobsOf = (sim: Simulator) => submittedPrefixes(sim.prompts).map((p) => p.replace(/_[0-9a-f]{8}$/, ''));

/** The slow workflow with its own image, so ComfyUI's cache cannot answer it from another job. */
function uncached(prefix: string, color: number) {
  const workflow = slowWorkflow(prefix);
  workflow['1']!.inputs.color = 1_000 + color;
  return workflow;
}

/** Every byte Redis wrote to disk. */
function redisFiles(dir: string): Buffer {
  const parts: Buffer[] = [];
  for (const entry of fs.readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (entry.isFile()) parts.push(fs.readFileSync(path.join(entry.parentPath, entry.name)));
  }
  return Buffer.concat(parts);
}

test('SIGKILL of the worker running a job: it completes once that worker is back, its prompt ran once, its webhook was delivered once', async () => {
  const simA = await simulator(3_000);
  const simB = await simulator();
  const a = await spawnWorker(env(simA));
  const body = {
    workflow: slowWorkflow('victim'),
    webhook: { url: `${receiver.url}/hook?token=tok-SECRET-1`, secret: 'whsec-SECRET-2' },
  };
  const id = (await postJson(`${a.url}/run`, body)).body.job_id as string;
  await waitForStatus(a.url, id, ['running']);
  await until(() => simA.prompts.length === 1, 5_000, 'the prompt in ComfyUI A');
  const b = await spawnWorker(env(simB));
  await a.kill('SIGKILL');

  // B serves the job meanwhile; it does not run it on its own backend (its prompt is on A's).
  await new Promise((r) => setTimeout(r, 4_000));
  const meanwhile = (await callJson('GET', `${b.url}/status/${id}`)).body;
  expect(meanwhile.status).toBe('running');
  expect(simB.prompts).toHaveLength(0);
  // Credentials and the webhook's URL are sealed in Redis, as in SQLite.
  const onDisk = redisFiles(redis.dir);
  expect(onDisk.includes(id)).toBe(true);
  expect(onDisk.includes('whsec-SECRET-2')).toBe(false);
  expect(onDisk.includes('tok-SECRET-1')).toBe(false);

  // A comes back: it takes the job over from BullMQ, finds the prompt done in its ComfyUI's
  // history and collects its outputs without submitting it again.
  const again = await spawnWorker(env(simA));
  // B hands the job back each time it takes it (every ~2 s) until A does: allow for a loaded machine.
  const done = await waitForStatus(b.url, id, ['completed'], 60_000);
  expect(done.result.images).toHaveLength(1);
  expect(jobsOf(simA)).toEqual(['victim']);
  expect(simB.prompts).toHaveLength(0);
  await receiver.waitFor(1);
  await new Promise((r) => setTimeout(r, 1_500));
  expect(receiver.finals()).toHaveLength(1);
  expect(receiver.finals()[0]!.body).toMatchObject({ event: 'completed', id });
  await again.kill('SIGTERM');
  await b.kill('SIGTERM');
}, 120_000);

test('Redis restarted under load: 503 JSON while it is away, then every job completes, none lost, none run twice', async () => {
  const sim = await simulator(200);
  const worker = await startTestWorker(sim.url, {
    JOB_QUEUE_URL: redis.url,
    JOB_SECRETS_KEY: 'k',
    JOB_QUEUE_LOCK_S: '2',
  });
  try {
    const ids: string[] = [];
    for (let i = 0; i < 10; i++) {
      ids.push((await postJson(`${worker.url}/run`, { workflow: slowWorkflow(`load${i}`) })).body.job_id as string);
    }
    await waitForStatus(worker.url, ids[0]!, ['completed'], 15_000);
    await redis.stop();

    const refused = await postJson(`${worker.url}/run`, { workflow: saveWorkflow('refused') });
    expect(refused.status).toBe(503);
    expect(refused.body.error.code).toBe('store_unavailable');
    expect(refused.headers.get('retry-after')).toBe('5');
    const status = await callJson('GET', `${worker.url}/status/${ids[5]}`);
    expect(status.status).toBe(503);
    expect(status.body.error.code).toBe('store_unavailable');
    const health = await callJson('GET', `${worker.url}/health`);
    expect(health.status).toBe(503);
    expect(health.body.database_error).toMatch(/Redis/);

    await new Promise((r) => setTimeout(r, 1_000));
    await redis.start();
    for (const id of ids) expect((await waitForStatus(worker.url, id, ['completed'], 40_000)).status).toBe('completed');
    expect(jobsOf(sim).sort()).toEqual(ids.map((_, i) => `load${i}`).sort());
    expect((await callJson('GET', `${worker.url}/stats`)).body).toMatchObject({ total_jobs: 10, completed_jobs: 10 });
  } finally {
    await worker.stop();
  }
}, 90_000);

test('two worker processes, each with its own simulator: jobs sent to one run on both and read the same from either; a cancel sent to the other stops one', async () => {
  const simA = await simulator(300);
  const simB = await simulator(300);
  const a = await spawnWorker(env(simA));
  const b = await spawnWorker(env(simB));
  try {
    const ids: string[] = [];
    for (let i = 0; i < 10; i++) ids.push((await postJson(`${a.url}/run`, { workflow: uncached(`both${i}`, i) })).body.job_id);
    for (const id of ids) {
      const fromB = await waitForStatus(b.url, id, ['completed'], 30_000);
      expect((await callJson('GET', `${a.url}/status/${id}`)).body).toEqual(fromB);
    }
    expect([...jobsOf(simA), ...jobsOf(simB)].sort()).toEqual(ids.map((_, i) => `both${i}`).sort());
    expect(jobsOf(simA).length).toBeGreaterThan(0);
    expect(jobsOf(simB).length).toBeGreaterThan(0);

    for (const sim of [simA, simB]) sim.setNodeDelay({ ImageScale: 10_000, '*': 1 });
    const id = (await postJson(`${a.url}/run`, { workflow: uncached('stopped', 99) })).body.job_id as string;
    await until(() => [...jobsOf(simA), ...jobsOf(simB)].includes('stopped'), 10_000, 'the prompt in a ComfyUI');
    const [runs, other] = jobsOf(simA).includes('stopped') ? [simA, b] : [simB, a];
    const cancel = await callJson('POST', `${other.url}/cancel/${id}`);
    expect(cancel.body.status).toBe('cancelled');
    expect((await callJson('GET', `${a.url}/status/${id}`)).body.status).toBe('cancelled');
    expect(runs.requests.some((r) => r.path === '/interrupt')).toBe(true);
  } finally {
    await a.kill('SIGTERM');
    await b.kill('SIGTERM');
  }
}, 60_000);
