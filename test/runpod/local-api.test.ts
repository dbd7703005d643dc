// The local test API (SERVE_API_LOCALLY=true): RunPod's hosted endpoint routes and statuses,
// backed by the job store with real background execution, against the simulator.
import { startSimulator, type Simulator } from '../../simulator';
import { startReceiver, type Receiver } from '../support/receiver';
import { callJson, getJson, postJson, startTestWorker, until, type TestWorker } from '../support/worker';
import { PNG_MAGIC, saveWorkflow, slowWorkflow } from '../support/workflows';
import { INPUT_DATA_URI, loadImageWorkflow } from './support';

let sim: Simulator;
let worker: TestWorker | undefined;

beforeEach(async () => {
  sim = await startSimulator({ nodeDelayMs: { '*': 1 } });
});
afterEach(async () => {
  await worker?.stop();
  worker = undefined;
  await sim.close();
});

async function start(env: Record<string, string> = {}): Promise<TestWorker> {
  // SERVE_API_LOCALLY alone selects the RunPod door, as worker-comfyui's users set it.
  worker = await startTestWorker(sim.url, { SERVE_API_LOCALLY: 'true', ...env });
  return worker;
}

async function statusOf(id: string, wanted: string[], timeoutMs = 15_000): Promise<any> {
  let body: any;
  await until(
    async () => {
      body = (await getJson(`${worker!.url}/status/${id}`)).body;
      return wanted.includes(body.status);
    },
    timeoutMs,
    `${id} to be ${wanted.join('|')}`,
  );
  return body;
}

test("worker-comfyui's test_input.json shape (a workflow with _meta titles and a data-URI image) is accepted unchanged", async () => {
  const w = await start();
  const testInput = {
    input: { workflow: loadImageWorkflow('test.png', 'ComfyUI'), images: [{ name: 'test.png', image: INPUT_DATA_URI }] },
  };
  const res = await postJson(`${w.url}/runsync`, testInput);
  expect(res.status).toBe(200);
  expect(res.body).toMatchObject({ id: expect.stringMatching(/^sync-[0-9a-f-]{36}$/), status: 'COMPLETED' });
  const [image] = res.body.output.images;
  expect(image).toMatchObject({ filename: expect.stringMatching(/^ComfyUI_[0-9a-f]{8}_00001_\.png$/), type: 'base64' });
  expect(Buffer.from(image.data, 'base64').subarray(0, 8)).toEqual(PNG_MAGIC);
  // Timing fields: integers in ms; the run took at least the simulated node time.
  expect(Number.isInteger(res.body.delayTime) && res.body.delayTime >= 0).toBe(true);
  expect(Number.isInteger(res.body.executionTime) && res.body.executionTime >= 1).toBe(true);
});

test('POST /run → IN_QUEUE; GET and POST /status follow it through IN_QUEUE, IN_PROGRESS and COMPLETED', async () => {
  sim.setNodeDelay({ ImageScale: 800, '*': 1 });
  const w = await start();
  const sentFirst = Date.now();
  const first = await postJson(`${w.url}/run`, { input: { workflow: slowWorkflow('first') } });
  expect(first.body).toEqual({ id: expect.stringMatching(/^[0-9a-f-]{36}$/), status: 'IN_QUEUE' });
  const second = await postJson(`${w.url}/run`, { input: { workflow: saveWorkflow('second') } });
  expect(second.body.status).toBe('IN_QUEUE');
  const submitGap = Date.now() - sentFirst; // at least the time between the two jobs' creation

  const running = await statusOf(first.body.id, ['IN_PROGRESS']);
  expect(running.delayTime).toBeGreaterThanOrEqual(0);
  expect(running.executionTime).toBeUndefined();
  const queued = (await getJson(`${w.url}/status/${second.body.id}`)).body;
  expect(queued).toEqual({ id: second.body.id, status: 'IN_QUEUE' });

  const done = await statusOf(first.body.id, ['COMPLETED']);
  expect(done.output.images[0].filename).toMatch(/^first_/);
  // The slow node ran inside executionTime; the second job waited behind the first (delayTime).
  expect(done.executionTime).toBeGreaterThanOrEqual(800);
  const secondDone = await statusOf(second.body.id, ['COMPLETED']);
  // The second could start only after the first's 800 ms node ended, and that node started after
  // the first job was created: the second waited at least 800 ms less the gap between submissions.
  expect(secondDone.delayTime).toBeGreaterThanOrEqual(800 - submitGap - 2);
  const viaPost = await postJson(`${w.url}/status/${second.body.id}`, {});
  expect(viaPost.body).toEqual(secondDone);
  // The hosted API's path prefix works too.
  expect((await getJson(`${w.url}/v2/my-endpoint/status/${second.body.id}`)).body).toEqual(secondDone);
});

test('/runsync?wait= answers with the status when the job is not done in time; the job carries on', async () => {
  sim.setNodeDelay({ ImageScale: 2_500, '*': 1 });
  const w = await start();
  const res = await postJson(`${w.url}/runsync?wait=1000`, { input: { workflow: slowWorkflow('late') } });
  expect(res.status).toBe(200);
  expect(['IN_QUEUE', 'IN_PROGRESS']).toContain(res.body.status);
  expect(res.body.output?.images).toBeUndefined();
  const done = await statusOf(res.body.id, ['COMPLETED']);
  expect(done.output.images[0].filename).toMatch(/^late_/);
});

test("FAILED: a refused input with worker-comfyui's message, and ComfyUI's rejection", async () => {
  const w = await start();
  const missing = await postJson(`${w.url}/run`, { input: { images: [] } });
  expect(missing.body.status).toBe('FAILED');
  expect((await getJson(`${w.url}/status/${missing.body.id}`)).body).toEqual({
    id: missing.body.id,
    status: 'FAILED',
    delayTime: 0,
    executionTime: 0,
    error: "Missing 'workflow' parameter",
  });
  const unknown = await postJson(`${w.url}/runsync`, { input: { workflow: { '1': { class_type: 'NoSuchNode', inputs: {} } } } });
  expect(unknown.body).toMatchObject({
    status: 'FAILED',
    error: expect.stringMatching(/^Cannot execute because node NoSuchNode does not exist/),
  });
  expect(unknown.body.executionTime).toBeGreaterThanOrEqual(0);
  expect(sim.prompts).toHaveLength(0);
});

test('CANCELLED: /cancel of a queued job and of the running one (its prompt interrupted)', async () => {
  sim.setNodeDelay({ ImageScale: 3_000, '*': 1 });
  const w = await start();
  const running = (await postJson(`${w.url}/run`, { input: { workflow: slowWorkflow('r') } })).body.id;
  const queued = (await postJson(`${w.url}/run`, { input: { workflow: saveWorkflow('q') } })).body.id;
  await statusOf(running, ['IN_PROGRESS']);
  expect((await postJson(`${w.url}/cancel/${queued}`, {})).body).toEqual({ id: queued, status: 'CANCELLED' });
  expect((await postJson(`${w.url}/cancel/${running}`, {})).body).toEqual({ id: running, status: 'CANCELLED' });
  const final = await statusOf(running, ['CANCELLED']);
  expect(final.error).toBe('Job cancelled by the client (/cancel)');
  expect((await getJson(`${w.url}/status/${queued}`)).body.status).toBe('CANCELLED');
  expect(sim.requests.some((r) => r.method === 'POST' && r.path === '/interrupt')).toBe(true);
  // A finished job is not cancelled again: its status is returned.
  expect((await postJson(`${w.url}/cancel/${queued}`, {})).body.status).toBe('CANCELLED');
});

test('TIMED_OUT (the job deadline), then /retry runs it again under the same id', async () => {
  sim.setNodeDelay({ ImageScale: 2_000, '*': 1 });
  const w = await start({ JOB_TIMEOUT_S: '0.5' });
  const id = (await postJson(`${w.url}/run`, { input: { workflow: slowWorkflow('retry'), comfy_org_api_key: 'k-123' } })).body.id;
  const timedOut = await statusOf(id, ['TIMED_OUT']);
  expect(timedOut.error).toMatch(/deadline/);

  sim.setNodeDelay({ '*': 1 });
  await until(() => w.runner.runningJobId === undefined, 10_000, 'the runner to let go');
  const retried = await postJson(`${w.url}/retry/${id}`, {});
  expect(retried.body).toEqual({ id, status: 'IN_QUEUE' });
  const done = await statusOf(id, ['COMPLETED']);
  expect(done.output.images[0].filename).toMatch(/^retry_/);
  expect(sim.prompts).toHaveLength(2);
  // The request's credentials are gone with the first run; the retry runs without them.
  expect((sim.prompts[1]!.body as { extra_data?: unknown }).extra_data).toEqual({});
  expect((await getJson(`${w.url}/health`)).body.jobs.retried).toBe(1);
  // Only FAILED or TIMED_OUT jobs can be retried.
  const again = await postJson(`${w.url}/retry/${id}`, {});
  expect(again.status).toBe(400);
  expect(again.body.error).toBe(`Job ${id} is COMPLETED; only FAILED or TIMED_OUT jobs can be retried`);
});

test('/purge-queue removes the queued jobs; the running one finishes; /health shows the counts', async () => {
  sim.setNodeDelay({ ImageScale: 1_500, '*': 1 });
  const w = await start();
  const running = (await postJson(`${w.url}/run`, { input: { workflow: slowWorkflow('keep') } })).body.id;
  await statusOf(running, ['IN_PROGRESS']);
  const queued = [];
  for (let i = 0; i < 3; i++)
    queued.push((await postJson(`${w.url}/run`, { input: { workflow: saveWorkflow(`q${i}`) } })).body.id);
  const health = (await getJson(`${w.url}/health`)).body;
  expect(health).toEqual({
    jobs: { completed: 0, failed: 0, inProgress: 1, inQueue: 3, retried: 0 },
    workers: { idle: 0, running: 1, initializing: 0 },
  });
  expect((await postJson(`${w.url}/purge-queue`, {})).body).toEqual({ removed: 3, status: 'completed' });
  for (const id of queued) expect((await getJson(`${w.url}/status/${id}`)).body.status).toBe('CANCELLED');
  await statusOf(running, ['COMPLETED']);
  expect((await getJson(`${w.url}/health`)).body).toEqual({
    jobs: { completed: 1, failed: 0, inProgress: 0, inQueue: 0, retried: 0 },
    workers: { idle: 1, running: 0, initializing: 0 },
  });
  // Only the kept job ran: a purged one whose prompt already waited in ComfyUI's queue (handed over
  // early to keep ComfyUI busy) was taken out of it before it ran.
  const ran = [];
  for (const p of sim.prompts) {
    if (Object.keys((await getJson(`${sim.url}/history/${p.prompt_id}`)).body).length > 0) ran.push(p.prompt_id);
  }
  expect(ran).toEqual([sim.prompts[0]!.prompt_id]);
  expect(sim.prompts.length).toBeLessThanOrEqual(2);
});

test('unknown ids are 404s; a body that is not an object is a 400', async () => {
  const w = await start();
  for (const [method, route] of [
    ['GET', 'status'],
    ['POST', 'cancel'],
    ['POST', 'retry'],
  ]) {
    const res = await callJson(method!, `${w.url}/${route}/nope`, method === 'POST' ? {} : undefined);
    expect(res.status).toBe(404);
    expect(res.body).toEqual({ id: 'nope', status: 'FAILED', error: 'Job ID not found' });
  }
  const bad = await postJson(`${w.url}/run`, '[1, 2]');
  expect(bad.status).toBe(400);
  expect(bad.body.error).toMatch(/^body: must be a JSON object/);
});

describe('webhooks', () => {
  let receiver: Receiver;
  beforeEach(async () => {
    receiver = await startReceiver();
  });
  afterEach(() => receiver.close());

  test('a top-level webhook gets the job as /status shows it, on completion and on failure', async () => {
    const w = await start({ ALLOW_PRIVATE_URLS: 'true', I2V_WEBHOOK_BACKOFF_S: '0.05' });
    receiver.failNext = 1;
    const ok = (await postJson(`${w.url}/run`, { input: { workflow: saveWorkflow('hook') }, webhook: receiver.url })).body.id;
    const bad = (await postJson(`${w.url}/run`, { input: {}, webhook: receiver.url })).body.id;
    const deliveries = await receiver.waitFor(3, () => true);
    const last = (id: string) => deliveries.filter((d) => d.body.id === id).pop()!;
    expect(last(ok).body).toEqual((await getJson(`${w.url}/status/${ok}`)).body);
    expect(last(ok).body.status).toBe('COMPLETED');
    expect(last(bad).body).toEqual({
      id: bad,
      status: 'FAILED',
      delayTime: 0,
      executionTime: 0,
      error: "Missing 'workflow' parameter",
    });
    // The first delivery was refused (500) and retried.
    expect(deliveries.filter((d) => d.body.id === ok || d.body.id === bad).map((d) => d.answered)).toContain(500);
  });

  test('callback_url: the worker-comfyui webhook, retried as I2V_WEBHOOK_* say', async () => {
    const w = await start({ ALLOW_PRIVATE_URLS: 'true', I2V_WEBHOOK_RETRIES: '2', I2V_WEBHOOK_BACKOFF_S: '0.05' });
    receiver.failNext = 2;
    const id = (await postJson(`${w.url}/run`, { input: { workflow: saveWorkflow('cb'), callback_url: receiver.url } })).body.id;
    const finals = await receiver.waitFor(3);
    expect(finals.map((d) => d.answered)).toEqual([500, 500, 200]);
    expect(finals[2]!.body).toMatchObject({ event: 'completed', id, status: 'completed' });
    expect(finals[2]!.body.output.images[0].filename).toMatch(/^cb_/);
  });
});

test('GET /metrics: the Prometheus text with the process metrics and the jobs of this door', async () => {
  const w = await start();
  expect((await postJson(`${w.url}/runsync`, { input: { workflow: saveWorkflow('metered') } })).body.status).toBe('COMPLETED');
  const res = await fetch(`${w.url}/metrics`);
  expect(res.status).toBe(200);
  const text = await res.text();
  expect(text).toMatch(/^process_resident_memory_bytes \d+/m);
  expect(text).toContain('comfyui_worker_jobs_finished_total{source="runpod",contract="worker-comfyui",status="completed"} 1');
  // Not a hosted-API route: at the top only.
  expect((await fetch(`${w.url}/v2/endpoint-1/metrics`)).status).toBe(404);
});

test('/runsync sent before ComfyUI is up waits for it and completes', async () => {
  await sim.crash();
  worker = await startTestWorker(sim.url, { SERVE_API_LOCALLY: 'true' }, false);
  const pending = postJson(`${worker.url}/runsync?wait=60000`, { input: { workflow: saveWorkflow('early') } });
  await until(async () => (await getJson(`${worker!.url}/health`)).body.jobs.inQueue === 1, 5_000, 'the job queued');
  await sim.restart();
  const res = await pending;
  expect(res.status).toBe(200);
  expect(res.body.status).toBe('COMPLETED');
  expect(res.body.delayTime).toBeGreaterThan(0);
});

test('stopping with a job running and /runsync callers queued: each is answered, a job not taken yet IN_QUEUE and kept for the next start', async () => {
  sim.setNodeDelay({ ImageScale: 1_000, '*': 1 });
  const w = await start();
  const running = (await postJson(`${w.url}/run`, { input: { workflow: slowWorkflow('long') } })).body.id;
  await statusOf(running, ['IN_PROGRESS']);
  // The first may be handed to ComfyUI early (behind the running one) and finish in the grace
  // period; the second is not taken before the stop.
  const waiting = ['behind1', 'behind2'].map((name) =>
    postJson(`${w.url}/runsync?wait=60000`, { input: { workflow: saveWorkflow(name) } }),
  );
  await until(async () => (await getJson(`${w.url}/health`)).body.jobs.inQueue === 2, 5_000, 'the runsync jobs queued');
  const stopped = w.stop();
  const answers = await Promise.all(waiting);
  for (const answer of answers) {
    expect(answer.status).toBe(200);
    expect(['IN_QUEUE', 'COMPLETED']).toContain(answer.body.status);
  }
  expect(answers.map((a) => a.body.status)).toContain('IN_QUEUE');
  await stopped;
  // The running job had the grace period to finish; a queued one runs at the next start.
  worker = await startTestWorker(sim.url, { SERVE_API_LOCALLY: 'true', SQLITE_DB_PATH: w.dbPath });
  expect((await getJson(`${worker.url}/status/${running}`)).body.status).toBe('COMPLETED');
  for (const answer of answers) await statusOf(answer.body.id, ['COMPLETED']);
});
