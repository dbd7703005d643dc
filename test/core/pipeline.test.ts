// Keeping ComfyUI busy: the next job's prompt waits in ComfyUI's own queue while the current one
// executes, a cancel takes it out of there without touching the running one, and a job's deadline
// does not count the time it waited behind the worker's previous job.
import { startSimulator, type Simulator } from '../../simulator';
import { submittedPrefixes, waitForStatus } from '../http-api/support';
import { callJson, postJson, startTestWorker, until, type TestWorker } from '../support/worker';
import { saveWorkflow, slowWorkflow } from '../support/workflows';

let sim: Simulator;
let worker: TestWorker;

beforeAll(async () => {
  sim = await startSimulator({ nodeDelayMs: { ImageScale: 800, '*': 1 } });
  worker = await startTestWorker(sim.url, { JOB_TIMEOUT_S: '3' });
});
afterAll(async () => {
  await worker?.stop();
  await sim?.close();
});

const promptOf = (prefix: string) =>
  sim.prompts.find((p) => submittedPrefixes([p]).some((name) => name.startsWith(`${prefix}_`)))?.prompt_id;
const comfyQueue = async () =>
  (await callJson('GET', `${sim.url}/queue`)).body as { queue_running: unknown[][]; queue_pending: unknown[][] };
const ids = (items: unknown[][]) => items.map((item) => item[1]);
/** A slow workflow ComfyUI cannot answer from its cache (its first node differs by `color`). */
function uncached(prefix: string, color: number) {
  const workflow = slowWorkflow(prefix);
  workflow['1']!.inputs.color = color;
  return workflow;
}
const history = async (promptId: string) =>
  (await callJson('GET', `${sim.url}/history/${promptId}`)).body as Record<string, unknown>;

test("while job 1 executes, job 2's prompt waits in ComfyUI's queue; cancelling job 2 takes it out of there only", async () => {
  const first = (await postJson(`${worker.url}/run`, { workflow: slowWorkflow('pipe_first') })).body.job_id as string;
  const second = (await postJson(`${worker.url}/run`, { workflow: saveWorkflow('pipe_second') })).body.job_id as string;
  await until(() => promptOf('pipe_second') !== undefined, 5_000, "job 2's prompt in ComfyUI");
  const firstPrompt = promptOf('pipe_first')!;
  const secondPrompt = promptOf('pipe_second')!;
  const queued = await comfyQueue();
  expect(ids(queued.queue_running)).toEqual([firstPrompt]);
  expect(ids(queued.queue_pending)).toEqual([secondPrompt]);
  expect((await callJson('GET', `${worker.url}/status/${second}`)).body.status).toBe('running');

  const cancel = await postJson(`${worker.url}/cancel/${second}`, {});
  expect(cancel.body.status).toBe('cancelled');
  const after = await comfyQueue();
  expect(ids(after.queue_pending)).toEqual([]);
  expect(ids(after.queue_running)).toEqual([firstPrompt]);

  expect((await waitForStatus(worker.url, first)).status).toBe('completed');
  expect((await waitForStatus(worker.url, second)).status).toBe('cancelled');
  expect(Object.keys(await history(firstPrompt))).toEqual([firstPrompt]);
  expect(await history(secondPrompt)).toEqual({}); // never ran
});

test('a job waiting in ComfyUI behind the previous one has its full deadline once it starts', async () => {
  // Each takes ~2 s against a 3 s deadline; the second finishes ~4 s after it was handed to
  // ComfyUI, which a deadline counted from then would have cut.
  sim.setNodeDelay({ ImageScale: 2_000, '*': 1 });
  const a = (await postJson(`${worker.url}/run`, { workflow: uncached('deadline_a', 11) })).body.job_id as string;
  const b = (await postJson(`${worker.url}/run`, { workflow: uncached('deadline_b', 12) })).body.job_id as string;
  await until(() => promptOf('deadline_b') !== undefined, 5_000, "b's prompt in ComfyUI");
  expect(ids((await comfyQueue()).queue_pending)).toEqual([promptOf('deadline_b')]);
  const finals = [await waitForStatus(worker.url, a), await waitForStatus(worker.url, b)];
  sim.setNodeDelay({ ImageScale: 800, '*': 1 });
  expect(finals.map((f) => [f.status, f.error])).toEqual([
    ['completed', null],
    ['completed', null],
  ]);
});

test('with COMFY_QUEUE_AHEAD=2, two prompts wait in ComfyUI, in the order their jobs were submitted; the rest wait in the worker', async () => {
  const deeper = await startTestWorker(sim.url, { JOB_TIMEOUT_S: '3', COMFY_QUEUE_AHEAD: '2' });
  try {
    await ahead(deeper);
  } finally {
    await deeper.stop();
  }
});

async function ahead(w: TestWorker) {
  const jobs: string[] = [];
  for (const [i, prefix] of ['ahead_a', 'ahead_b', 'ahead_c', 'ahead_d'].entries())
    jobs.push((await postJson(`${w.url}/run`, { workflow: uncached(prefix, 0x405060 + i) })).body.job_id as string);
  await until(() => promptOf('ahead_c') !== undefined, 5_000, "job 3's prompt in ComfyUI");
  const queued = await comfyQueue();
  expect(ids(queued.queue_running)).toEqual([promptOf('ahead_a')]);
  expect(ids(queued.queue_pending)).toEqual([promptOf('ahead_b'), promptOf('ahead_c')]);
  // The fourth is not handed over while two of ours wait there.
  expect(promptOf('ahead_d')).toBeUndefined();
  expect((await callJson('GET', `${w.url}/status/${jobs[3]}`)).body.status).toBe('pending');
  for (const id of jobs) expect((await waitForStatus(w.url, id)).status).toBe('completed');
  // ComfyUI received the prompts in the jobs' order.
  const order = ['ahead_a', 'ahead_b', 'ahead_c', 'ahead_d'].map((prefix) =>
    sim.prompts.findIndex((p) => p.prompt_id === promptOf(prefix)),
  );
  expect([...order].sort((x, y) => x - y)).toEqual(order);
}
