// Webhooks against a real receiver: signatures, events, progress throttling, retries with
// backoff, delivery across a restart, and exhausted retries made visible.
import fs from 'node:fs';
import path from 'node:path';
import { verify } from '../../worker/webhooks/sign';
import { startSimulator, type Simulator } from '../../simulator';
import { serve } from '../support/http-server';
import { startReceiver, type Receiver } from '../support/receiver';
import { tempDir } from '../support/tmp';
import { getJson, postJson, startTestWorker, until, type TestWorker } from '../support/worker';
import { saveWorkflow, slowWorkflow } from '../support/workflows';

let sim: Simulator;
let receiver: Receiver;
const workers: TestWorker[] = [];

beforeAll(async () => {
  sim = await startSimulator();
});
beforeEach(async () => {
  receiver = await startReceiver();
});
afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.stop()));
  await receiver.close();
});
afterAll(async () => {
  await sim?.close();
});

async function worker(env: Record<string, string> = {}): Promise<TestWorker> {
  const w = await startTestWorker(sim.url, { ALLOW_PRIVATE_URLS: 'true', ...env });
  workers.push(w);
  return w;
}
const sync = (w: TestWorker, input: Record<string, unknown>) => postJson(`${w.url}/generate/sync`, { input });

test('completed: signed body with the job, its outputs, timings, extra params and a timestamp', async () => {
  const w = await worker();
  const res = await sync(w, {
    request_id: 'hook-1',
    workflow_json: saveWorkflow('hook'),
    webhook: { url: receiver.url, extra_params: { user: 'u1', ticket: 7 }, secret: 's3cret' },
  });
  expect(res.status).toBe(200);
  const [delivery] = await receiver.waitFor(1);
  expect(delivery!.headers['content-type']).toBe('application/json');
  expect(verify('s3cret', delivery!.raw, delivery!.headers['x-webhook-signature'] as string)).toBe(true);
  expect(verify('other', delivery!.raw, delivery!.headers['x-webhook-signature'] as string)).toBe(false);
  const body = delivery!.body;
  expect(body).toMatchObject({
    event: 'completed',
    id: 'hook-1',
    status: 'completed',
    message: 'Processing complete.',
    extra: { user: 'u1', ticket: 7 },
  });
  expect(body.output).toEqual(res.body.output);
  expect(body.timings.total_ms).toBeGreaterThanOrEqual(0);
  expect(Math.abs(body.timestamp - Date.now() / 1000)).toBeLessThan(30);
  expect(delivery!.headers['x-webhook-timestamp']).toBe(String(body.timestamp));
  // The URL may carry a token: the database holds it sealed, like the secret.
  const onDisk = Buffer.concat([fs.readFileSync(w.dbPath), fs.readFileSync(`${w.dbPath}-wal`)]);
  expect(onDisk.includes(receiver.url)).toBe(false);
  expect(onDisk.includes('s3cret')).toBe(false);
});

test('WEBHOOK_URL and WEBHOOK_SECRET are the defaults; an explicit empty secret sends it unsigned', async () => {
  const w = await worker({ WEBHOOK_URL: receiver.url, WEBHOOK_SECRET: 'env-secret' });
  await sync(w, { request_id: 'hook-env', workflow_json: saveWorkflow() });
  await sync(w, { request_id: 'hook-unsigned', workflow_json: saveWorkflow(), webhook: { url: receiver.url, secret: '' } });
  const deliveries = await receiver.waitFor(2);
  const byId = new Map(deliveries.map((d) => [d.body.id, d]));
  expect(verify('env-secret', byId.get('hook-env')!.raw, byId.get('hook-env')!.headers['x-webhook-signature'] as string)).toBe(
    true,
  );
  expect(byId.get('hook-unsigned')!.headers['x-webhook-signature']).toBeUndefined();
});

test('failed and cancelled jobs are reported too', async () => {
  const w = await worker();
  const bad = await sync(w, {
    request_id: 'hook-failed',
    workflow_json: { '1': { class_type: 'NoSuchNode', inputs: {} } },
    webhook: { url: receiver.url },
  });
  expect(bad.status).toBe(400);
  sim.setNodeDelay({ ImageScale: 1_500 });
  const controller = new AbortController();
  const slow = slowWorkflow('c');
  const pending = postJson(
    `${w.url}/generate/sync`,
    { input: { request_id: 'hook-cancelled', workflow_json: slow, webhook: { url: receiver.url } } },
    { signal: controller.signal },
  ).catch(() => undefined);
  await until(() => w.runner.runningJobId === 'hook-cancelled', 5_000, 'running');
  controller.abort();
  await pending;
  const deliveries = await receiver.waitFor(2);
  sim.setNodeDelay(0);
  const byId = new Map(deliveries.map((d) => [d.body.id, d.body]));
  expect(byId.get('hook-failed')).toMatchObject({ event: 'failed', status: 'failed', error: { code: 'comfy_validation' } });
  expect(byId.get('hook-cancelled')).toMatchObject({
    event: 'cancelled',
    status: 'cancelled',
    error: { code: 'client_disconnected' },
  });
});

test('progress is sent at most once per WEBHOOK_PROGRESS_INTERVAL_S and never retried', async () => {
  const w = await worker({ WEBHOOK_PROGRESS_INTERVAL_S: '0.3' });
  const stepping = await startSimulator({ stepDelayMs: 40 });
  const w2 = await startTestWorker(stepping.url, { ALLOW_PRIVATE_URLS: 'true', WEBHOOK_PROGRESS_INTERVAL_S: '0.3' });
  try {
    receiver.failProgress = true; // failed progress POSTs must not be sent again
    const res = await sync(w2, {
      modifier: 'Text2Image',
      modifications: { width: 64, height: 64, steps: 30, seed: 1 },
      webhook: { url: receiver.url, extra_params: { k: 'v' } },
    });
    expect(res.status).toBe(200);
    await receiver.waitFor(1);
    const progress = receiver.deliveries.filter((d) => d.body.event === 'progress');
    expect(progress.length).toBeGreaterThanOrEqual(2);
    expect(progress.length).toBeLessThanOrEqual(Math.ceil(1.2 / 0.3) + 2); // 30 steps × 40 ms ≈ 1.2 s
    for (let i = 1; i < progress.length; i++) expect(progress[i]!.at - progress[i - 1]!.at).toBeGreaterThanOrEqual(250);
    expect(progress[0]!.body).toMatchObject({ status: 'processing', extra: { k: 'v' }, progress: { total_nodes: 7 } });
    const percentages = progress.map((d) => d.body.progress.percentage);
    expect(percentages).toEqual([...percentages].sort((a, b) => a - b));
    expect(new Set(progress.map((d) => d.raw)).size).toBe(progress.length);
  } finally {
    await w2.stop();
    await stepping.close();
  }
  void w;
});

test('a receiver that fails three times: delivered once, with growing gaps, without holding up jobs', async () => {
  const w = await worker({ WEBHOOK_BACKOFF_S: '0.2', WEBHOOK_MAX_BACKOFF_S: '5' });
  receiver.failNext = 3;
  // The first attempt goes unanswered until both jobs have answered: jobs that waited for their
  // webhook would never answer.
  let release = () => {};
  receiver.hold = new Promise<void>((resolve) => (release = resolve));
  const res = await sync(w, { request_id: 'hook-retry', workflow_json: saveWorkflow(), webhook: { url: receiver.url } });
  expect(res.status).toBe(200);
  const next = await sync(w, { workflow_json: saveWorkflow('next') });
  expect(next.status).toBe(200);
  expect(receiver.finals()).toHaveLength(0); // the delivery is still at its first attempt
  receiver.hold = undefined;
  release();
  const deliveries = await receiver.waitFor(4, (d) => d.body.id === 'hook-retry' && d.body.event !== 'progress');
  expect(deliveries.map((d) => d.answered)).toEqual([500, 500, 500, 200]);
  const gaps = deliveries.slice(1).map((d, i) => d.at - deliveries[i]!.at);
  expect(gaps[0]).toBeGreaterThanOrEqual(180);
  expect(gaps[1]).toBeGreaterThan(gaps[0]!);
  expect(gaps[2]).toBeGreaterThan(gaps[1]!);
  await new Promise((r) => setTimeout(r, 1_000));
  expect(receiver.finals().filter((d) => d.body.id === 'hook-retry')).toHaveLength(4);
});

test('a receiver down while the worker restarts: delivered after the restart', async () => {
  const dbPath = path.join(tempDir('hook-restart-'), 'jobs.db');
  const port = receiver.port;
  await receiver.close();
  const first = await startTestWorker(sim.url, { ALLOW_PRIVATE_URLS: 'true', SQLITE_DB_PATH: dbPath, WEBHOOK_BACKOFF_S: '0.1' });
  const res = await sync(first, {
    request_id: 'hook-restart',
    workflow_json: saveWorkflow(),
    webhook: { url: `http://127.0.0.1:${port}/hook` },
  });
  expect(res.status).toBe(200);
  // A first attempt fails against the closed port, and the delivery waits for its retry.
  await until(
    async () => ((await getJson(`${first.url}/status/hook-restart`)).body.webhook?.attempts ?? 0) >= 1,
    5_000,
    'a failed attempt',
  );
  expect((await getJson(`${first.url}/status/hook-restart`)).body.webhook).toMatchObject({
    status: 'pending',
    last_error: 'ECONNREFUSED',
  });
  await first.stop();

  receiver = await startReceiver(port);
  const second = await worker({ SQLITE_DB_PATH: dbPath });
  const [delivery] = await receiver.waitFor(1);
  expect(delivery!.body).toMatchObject({ id: 'hook-restart', event: 'completed' });
  void second;
});

test('exhausted retries: marked failed and visible in the metrics', async () => {
  const w = await worker({ WEBHOOK_RETRIES: '2', WEBHOOK_BACKOFF_S: '0.05' });
  receiver.failNext = 100;
  await sync(w, { request_id: 'hook-exhausted', workflow_json: saveWorkflow(), webhook: { url: receiver.url } });
  await receiver.waitFor(3);
  await until(
    async () => (await (await fetch(`${w.url}/metrics`)).text()).includes('comfyui_worker_webhooks{state="failed"} 1'),
    5_000,
    'metric',
  );
  await new Promise((r) => setTimeout(r, 300));
  expect(receiver.finals()).toHaveLength(3);
  const metrics = await (await fetch(`${w.url}/metrics`)).text();
  expect(metrics).toContain('comfyui_worker_webhook_attempts_total{result="failed"} 1');
  expect(metrics).toContain('comfyui_worker_webhook_attempts_total{result="retrying"} 2');
});

test('malformed webhook blocks, non-http and private URLs are 400s naming the field', async () => {
  const strict = await startTestWorker(sim.url);
  workers.push(strict);
  const cases: Array<[unknown, string, string]> = [
    ['http://example.com/hook', 'input.webhook', 'must be an object'],
    [{ url: 'ftp://example.com/hook' }, 'input.webhook.url', 'must be an http or https URL'],
    [{ url: 'http://127.0.0.1:9/hook' }, 'input.webhook.url', 'private'],
    [{ url: 'http://169.254.169.254/latest/meta-data' }, 'input.webhook.url', 'private'],
    [{ url: 'https://8.8.8.8/h', extra_params: [1] }, 'input.webhook.extra_params', 'must be an object'],
    [{ url: 'https://8.8.8.8/h', timeout: 'long' }, 'input.webhook.timeout', 'must be a number'],
  ];
  for (const [webhook, field, message] of cases) {
    const res = await sync(strict, { workflow_json: saveWorkflow(), webhook });
    expect(res.status).toBe(400);
    expect(res.body.error.field).toBe(field);
    expect(res.body.error.message).toContain(message);
  }
});

test("the job API: callback_url and RunPod's top-level webhook, in worker-comfyui's shape; /status shows the delivery", async () => {
  const w = await worker({ WEBHOOK_RETRIES: '1', WEBHOOK_BACKOFF_S: '0.05' });
  const viaCallback = await postJson(`${w.url}/run`, { input: { workflow: saveWorkflow('cb'), callback_url: receiver.url } });
  const viaTopLevel = await postJson(`${w.url}/run`, { input: { workflow: saveWorkflow('top') }, webhook: receiver.url });
  expect(viaCallback.status).toBe(200);
  expect(viaTopLevel.status).toBe(200);
  const deliveries = await receiver.waitFor(2);
  const ids = deliveries.map((d) => d.body.id).sort();
  expect(ids).toEqual([viaCallback.body.job_id, viaTopLevel.body.job_id].sort());
  for (const d of deliveries) {
    expect(d.body).toMatchObject({ event: 'completed', status: 'completed' });
    expect(d.body.output.images[0]).toMatchObject({ type: 'base64', node_id: '2' });
  }
  await until(
    async () => (await getJson(`${w.url}/status/${viaCallback.body.job_id}`)).body.webhook?.status === 'delivered',
    5_000,
    'delivered',
  );
  const status = await getJson(`${w.url}/status/${viaCallback.body.job_id}`);
  expect(status.body.webhook).toEqual({ status: 'delivered', attempts: 1, last_error: null });

  receiver.failNext = 100;
  const failing = await postJson(`${w.url}/run`, { workflow: saveWorkflow('fails'), callback_url: receiver.url });
  await until(
    async () => (await getJson(`${w.url}/status/${failing.body.job_id}`)).body.webhook?.status === 'failed',
    5_000,
    'failed',
  );
  const failed = await getJson(`${w.url}/status/${failing.body.job_id}`);
  expect(failed.body.webhook).toEqual({ status: 'failed', attempts: 2, last_error: 'HTTP 500' });
  expect(JSON.stringify(failed.body)).not.toContain(receiver.url);
});

test('cleanup keeps a finished job until its webhook is delivered or has failed', async () => {
  let now = Date.now();
  const w = await startTestWorker(sim.url, { ALLOW_PRIVATE_URLS: 'true', WEBHOOK_BACKOFF_S: '3600' }, true, { clock: () => now });
  workers.push(w);
  receiver.failNext = 1; // the first attempt fails; the retry is an hour away
  const res = await postJson(`${w.url}/generate/sync`, {
    input: { request_id: 'hook-keep', workflow_json: saveWorkflow(), webhook: { url: receiver.url } },
  });
  expect(res.status).toBe(200);
  await receiver.waitFor(1);
  now += 48 * 3600 * 1000;
  const cleaned = await postJson(`${w.url}/admin/cleanup?max_age_hours=1`, {});
  expect(cleaned.status).toBe(200);
  expect((await getJson(`${w.url}/status/hook-keep`)).status).toBe(200);
});

test('restarted with another JOB_SECRETS_KEY: the worker starts, jobs run, a webhook it cannot sign fails visibly', async () => {
  const dbPath = path.join(tempDir('hook-rekey-'), 'jobs.db');
  const env = { ALLOW_PRIVATE_URLS: 'true', SQLITE_DB_PATH: dbPath, WEBHOOK_BACKOFF_S: '1.5' };
  const first = await startTestWorker(sim.url, { ...env, JOB_SECRETS_KEY: 'first-key' });
  receiver.failNext = 1; // the finished job's delivery stays pending across the restart
  await postJson(`${first.url}/generate/sync`, {
    input: { request_id: 'rekey-done', workflow_json: saveWorkflow(), webhook: { url: receiver.url, secret: 'hook-secret' } },
  });
  await receiver.waitFor(1);
  first.runner.pause();
  const queued = await postJson(`${first.url}/run`, {
    input: { workflow: saveWorkflow('rekey_pending'), webhook: { url: receiver.url, secret: 'hook-secret' } },
  });
  await first.stop();

  const second = await worker({ ...env, JOB_SECRETS_KEY: 'second-key' });
  await until(
    async () => (await getJson(`${second.url}/status/${queued.body.job_id}`)).body.status === 'completed',
    10_000,
    'ran',
  );
  for (const id of ['rekey-done', queued.body.job_id as string]) {
    await until(
      async () => (await getJson(`${second.url}/status/${id}`)).body.webhook?.status === 'failed',
      5_000,
      `${id} failed`,
    );
    const status = await getJson(`${second.url}/status/${id}`);
    expect(status.body.webhook.last_error).toContain('sealed with another JOB_SECRETS_KEY');
    expect(status.body.webhook).toEqual({ status: 'failed', attempts: expect.any(Number), last_error: expect.any(String) });
  }
  expect(receiver.finals()).toHaveLength(1); // nothing was sent unsigned
});

test('a receiver that never answers is cut off at WEBHOOK_TIMEOUT_S; a 2xx is enough, whatever body follows', async () => {
  const silent = await serve(() => undefined); // reads the request, never answers
  const streaming = await serve((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    const timer = setInterval(() => res.write('x'.repeat(64 * 1024)), 20);
    res.on('close', () => clearInterval(timer));
  });
  try {
    const w = await worker({ WEBHOOK_TIMEOUT_S: '0.5', WEBHOOK_RETRIES: '0' });
    const send = (id: string, url: string) =>
      postJson(`${w.url}/generate/sync`, { input: { request_id: id, workflow_json: saveWorkflow(), webhook: { url } } });
    await send('silent', `${silent.url}/h`);
    await send('streaming', `${streaming.url}/h`);
    const started = Date.now();
    await until(async () => (await getJson(`${w.url}/status/silent`)).body.webhook?.status === 'failed', 5_000, 'cut off');
    expect(Date.now() - started).toBeLessThan(3_000);
    expect((await getJson(`${w.url}/status/silent`)).body.webhook.last_error).toBe('timed out after 500 ms');
    await until(
      async () => (await getJson(`${w.url}/status/streaming`)).body.webhook?.status === 'delivered',
      5_000,
      'delivered',
    );
  } finally {
    await silent.close();
    await streaming.close();
  }
});
