// Every way a job can go wrong on the ComfyUI side must end in a clear answer, never a hang.
import { startSimulator, type Simulator } from '../../simulator';
import { getJson, postJson, startTestWorker, until, type TestWorker } from '../support/worker';
import { saveWorkflow, slowWorkflow } from '../support/workflows';

let sim: Simulator;
let worker: TestWorker;

beforeEach(async () => {
  sim = await startSimulator({ nodeDelayMs: 5 });
  worker = await startTestWorker(sim.url, {
    WEBSOCKET_RECONNECT_ATTEMPTS: '3',
    WEBSOCKET_RECONNECT_DELAY_S: '0.2',
    HISTORY_POLL_INTERVAL_S: '0.5',
    COMFY_READY_TIMEOUT_S: '30',
  });
});
afterEach(async () => {
  await worker?.stop();
  await sim?.close();
});

const sync = (input: Record<string, unknown>, signal?: AbortSignal) =>
  postJson(`${worker.url}/generate/sync`, { input }, { signal });

/** The test's one prompt was taken out of ComfyUI by its id: dequeued and interrupted, and the
 *  worker sent no other (or bare) /interrupt. */
function expectCancelledByPromptId(): void {
  expect(sim.prompts).toHaveLength(1);
  const promptId = sim.prompts[0]!.prompt_id;
  const bodies = (path: string) => sim.requests.filter((r) => r.method === 'POST' && r.path === path).map((r) => r.body);
  expect(bodies('/interrupt')).toEqual([{ prompt_id: promptId }]);
  expect(bodies('/queue')).toEqual([{ delete: [promptId] }]);
}

test('websocket dropped mid-job: the job still completes', async () => {
  sim.faults.dropWebsocketAfterEvents = 4;
  const res = await sync({ workflow_json: saveWorkflow('drop') });
  expect(res.status).toBe(200);
  expect(res.body.output).toHaveLength(1);
  await until(() => worker.comfy.isReady, 5_000, 'websocket back');
});

test('websocket silent while the job finishes: /history backstop completes it', async () => {
  sim.faults.stallWebsocket = true;
  const started = Date.now();
  const res = await sync({ workflow_json: saveWorkflow('stall') });
  expect(res.status).toBe(200);
  expect(res.body.output).toHaveLength(1);
  expect(Date.now() - started).toBeLessThan(5_000);
});

test('ComfyUI dies mid-job: the job fails within seconds; the next runs once ComfyUI is back', async () => {
  sim.setNodeDelay(50);
  sim.faults.dieAfterEvents = 5;
  const started = Date.now();
  const res = await sync({ workflow_json: saveWorkflow('die') });
  expect(res.status).toBe(502);
  expect(res.body.status).toBe('failed');
  expect(res.body.message).toMatch(/ComfyUI/);
  expect(Date.now() - started).toBeLessThan(10_000);

  // While ComfyUI is down, new synchronous work waits for it (COMFY_READY_TIMEOUT_S).
  const waiting = sync({ request_id: 'while-down', workflow_json: saveWorkflow('down') });
  await until(async () => (await worker.queue.get('while-down')) !== undefined, 5_000, 'the job admitted');
  await sim.restart();
  const next = await waiting;
  expect(next.status).toBe(200);
  expect(next.body.timings.comfy_wait_ms).toBeGreaterThan(0);
});

test('deadline: the prompt is interrupted and the answer is a 504', async () => {
  await worker.stop();
  worker = await startTestWorker(sim.url, { JOB_TIMEOUT_S: '0.5', HISTORY_POLL_INTERVAL_S: '0.5' });
  sim.setNodeDelay({ ImageScale: 5_000 });
  const wf = slowWorkflow('slow');
  const started = Date.now();
  const res = await sync({ workflow_json: wf });
  expect(res.status).toBe(504);
  expect(res.body.error.code).toBe('timeout');
  expect(res.body.message).toContain('JOB_TIMEOUT_S');
  expect(Date.now() - started).toBeLessThan(4_000);
  expect(sim.requests.some((r) => r.method === 'POST' && r.path === '/interrupt')).toBe(true);
  expectCancelledByPromptId();
});

test('client disconnect: the job is cancelled and its prompt interrupted', async () => {
  sim.setNodeDelay({ ImageScale: 5_000 });
  const wf = slowWorkflow('gone');
  const controller = new AbortController();
  const pending = sync({ request_id: 'gone-1', workflow_json: wf }, controller.signal).catch((err: Error) => err);
  await until(() => worker.runner.runningJobId === 'gone-1', 5_000, 'job running');
  // Its prompt is in ComfyUI (a caller leaving before that has nothing to interrupt).
  await until(() => sim.prompts.some((p) => JSON.stringify(p.body).includes('"gone_')), 5_000, 'prompt submitted');
  controller.abort();
  await pending;
  await until(async () => (await worker.queue.get('gone-1'))?.status === 'cancelled', 5_000, 'job cancelled');
  expect((await worker.queue.get('gone-1'))?.error?.code).toBe('client_disconnected');
  expect(sim.requests.some((r) => r.method === 'POST' && r.path === '/interrupt')).toBe(true);
  expectCancelledByPromptId();
});

test('slow /view still delivers', async () => {
  sim.faults.viewDelayMs = 300;
  const res = await sync({ workflow_json: saveWorkflow('slowview') });
  expect(res.status).toBe(200);
  expect(res.body.output[0].data.length).toBeGreaterThan(10);
});

test('a synchronous request sent before ComfyUI is up waits for it, the wait in its timings', async () => {
  await worker.stop();
  await sim.crash();
  worker = await startTestWorker(sim.url, { COMFY_READY_TIMEOUT_S: '30' }, false);
  const early = sync({ request_id: 'early', workflow_json: saveWorkflow('early') });
  await until(async () => (await worker.queue.get('early')) !== undefined, 5_000, 'the job admitted');
  await sim.restart();
  const res = await early;
  expect(res.status).toBe(200);
  expect(res.body.status).toBe('completed');
  expect(res.body.timings.comfy_wait_ms).toBeGreaterThan(0);
  expect(res.body.timings.queue_ms).toBeGreaterThanOrEqual(res.body.timings.comfy_wait_ms);
  // A job submitted once ComfyUI is up waited for nothing.
  const later = await sync({ workflow_json: saveWorkflow('later') });
  expect(later.body.timings.comfy_wait_ms).toBeUndefined();
});

test('when ComfyUI never comes, a synchronous request gets a clear 503 after COMFY_READY_TIMEOUT_S', async () => {
  await worker.stop();
  await sim.crash();
  worker = await startTestWorker(sim.url, { COMFY_READY_TIMEOUT_S: '1' }, false);
  const sent = Date.now();
  const res = await sync({ workflow_json: saveWorkflow('never') });
  expect(Date.now() - sent).toBeGreaterThanOrEqual(1_000);
  expect(res.status).toBe(503);
  expect(res.headers.get('retry-after')).toBe('5');
  expect(res.body).toMatchObject({ status: 'failed', error: { code: 'comfy_unavailable' } });
  expect(res.body.message).toContain('did not become ready within COMFY_READY_TIMEOUT_S (1 s)');
  // Async jobs keep waiting for ComfyUI.
  const queued = await postJson(`${worker.url}/generate`, { input: { request_id: 'async', workflow_json: saveWorkflow('a') } });
  expect(queued.status).toBe(202);
  await sim.restart();
  await until(async () => (await worker.queue.get('async'))?.status === 'completed', 10_000, 'the async job to run');
});

test('ComfyUI away longer than the reconnect budget while the worker is idle: it comes back by itself', async () => {
  await sim.crash();
  await until(() => worker.comfy.session.state === 'down', 5_000, 'session down');
  expect((await getJson(`${worker.url}/health`)).status).toBe(503);
  await sim.restart();
  await until(() => worker.comfy.isReady, 15_000, 'reconnected without any job asking');
  expect((await sync({ workflow_json: saveWorkflow('back') })).status).toBe(200);
});
