// Every way a job can go wrong on the ComfyUI side must end in a clear answer, never a hang.
import { startSimulator, type Simulator } from '../../simulator';
import { postJson, startTestWorker, until, type TestWorker } from '../support/worker';
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

  // While ComfyUI is down, new synchronous work is refused with a clear 503.
  const refused = await sync({ workflow_json: saveWorkflow('down') });
  expect(refused.status).toBe(503);
  expect(refused.body.error.code).toBe('comfy_unavailable');

  await sim.restart();
  await until(() => worker.comfy.isReady, 10_000, 'worker reconnected');
  const next = await sync({ workflow_json: saveWorkflow('after') });
  expect(next.status).toBe(200);
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

test('before ComfyUI answers, requests get 503 with a clear message', async () => {
  await worker.stop();
  await sim.crash();
  worker = await startTestWorker(sim.url, {}, false);
  const res = await sync({ workflow_json: saveWorkflow() });
  expect(res.status).toBe(503);
  expect(res.body.error.message).toContain('not ready');
  await sim.restart();
  await until(() => worker.comfy.isReady, 10_000, 'worker connected');
  expect((await sync({ workflow_json: saveWorkflow() })).status).toBe(200);
});

test('ComfyUI away longer than the reconnect budget while the worker is idle: it comes back by itself', async () => {
  await sim.crash();
  await until(() => worker.comfy.session.state === 'down', 5_000, 'session down');
  expect((await sync({ workflow_json: saveWorkflow('while_down') })).status).toBe(503);
  await sim.restart();
  await until(() => worker.comfy.isReady, 15_000, 'reconnected without any job asking');
  expect((await sync({ workflow_json: saveWorkflow('back') })).status).toBe(200);
});
