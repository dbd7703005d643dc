// Recovery at startup, in process: a database left by a "previous process" (written here with the
// store itself, and its prompt submitted to the simulator as that process would have) is opened by
// a new worker, which must reconcile every job left running with ComfyUI and never submit a
// prompt twice. The same with real processes and SIGKILL is in crash.test.ts.
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import type { Workflow } from '../../worker/comfy/types';
import { withUniquePrefix } from '../../worker/comfy/workflow';
import { SecretBox } from '../../worker/secrets/secret-box';
import { SqliteJobStore } from '../../worker/jobs/sqlite/store';
import type { JobSpec } from '../../worker/jobs/types';
import { startSimulator, type Simulator } from '../../simulator';
import { tempDir } from '../support/tmp';
import { PNG_MAGIC, saveWorkflow } from '../support/workflows';
import { callJson, postJson, startTestWorker, until, type TestWorker } from '../support/worker';
import { slowWorkflow, submittedPrefixes, waitForStatus } from './support';

const SECRETS_KEY = 'recovery test passphrase';
let sim: Simulator;
let worker: TestWorker | undefined;

beforeEach(async () => {
  sim = await startSimulator({ nodeDelayMs: 2 });
});
afterEach(async () => {
  await worker?.stop();
  worker = undefined;
  await sim?.close();
});

const spec = (workflow: Workflow): JobSpec => ({
  workflow,
  images: [],
  includeTempOutputs: false,
  forceBase64: false,
  includeComfyResponse: false,
  allowPartial: false,
});

/** The database a previous process left behind. */
function previousProcess(clock?: () => number): { store: SqliteJobStore; dbPath: string } {
  const dbPath = path.join(tempDir('recovery-'), 'jobs.db');
  const store = new SqliteJobStore({
    path: dbPath,
    secrets: SecretBox.open({ key: SECRETS_KEY, keyFile: '/nonexistent' }),
    clock,
  });
  return { store, dbPath };
}

/** Claims the job as the old runner did and, if asked, submits its prompt as it would have. */
async function leftRunning(store: SqliteJobStore, submit: boolean): Promise<string> {
  const promptId = randomUUID();
  const job = await store.claimNext(promptId);
  if (!job) throw new Error('nothing to claim');
  if (submit) {
    const res = await postJson(`${sim.url}/prompt`, {
      prompt: withUniquePrefix(job.spec.workflow, promptId.slice(0, 8)),
      client_id: 'previous-process',
      prompt_id: promptId,
    });
    expect(res.status).toBe(200);
  }
  return promptId;
}

const historyOf = async (promptId: string) => (await callJson('GET', `${sim.url}/history/${promptId}`)).body[promptId];

const start = (dbPath: string, env: Record<string, string> = {}, ready = true) =>
  startTestWorker(
    sim.url,
    { SQLITE_DB_PATH: dbPath, JOB_SECRETS_KEY: SECRETS_KEY, HISTORY_POLL_INTERVAL_S: '0.5', ...env },
    ready,
  );

test('finished in /history while the worker was down: outputs collected, nothing resubmitted', async () => {
  const { store, dbPath } = previousProcess();
  await store.insert({
    id: 'done-while-down',
    source: 'http',
    contract: 'worker-comfyui',
    sync: false,
    spec: spec(saveWorkflow('recovered')),
  });
  const promptId = await leftRunning(store, true);
  await until(async () => (await historyOf(promptId)) !== undefined, 5_000, 'prompt finished');
  await store.close();

  worker = await start(dbPath);
  const final = await waitForStatus(worker.url, 'done-while-down');
  expect(final.status).toBe('completed');
  expect(final.result.images[0].filename).toMatch(/^recovered_[0-9a-f]{8}_00001_\.png$/);
  expect(Buffer.from(final.result.images[0].data, 'base64').subarray(0, 8)).toEqual(PNG_MAGIC);
  expect(sim.prompts.map((p) => p.prompt_id)).toEqual([promptId]);
});

test('still running in ComfyUI: watched to its end in the runner slot; the next job waits for it', async () => {
  sim.setNodeDelay({ ImageScale: 1_500, '*': 2 });
  const { store, dbPath } = previousProcess();
  await store.insert({
    id: 'still-running',
    source: 'http',
    contract: 'worker-comfyui',
    sync: false,
    spec: spec(slowWorkflow('resumed')),
  });
  await store.insert({
    id: 'behind',
    source: 'http',
    contract: 'worker-comfyui',
    sync: false,
    spec: spec(saveWorkflow('behind')),
  });
  const promptId = await leftRunning(store, true);
  await store.close();

  worker = await start(dbPath);
  const running = await waitForStatus(worker.url, 'still-running', ['running', 'completed']);
  expect(running.status).toBe('running');
  expect((await callJson('GET', `${worker.url}/status/behind`)).body.status).toBe('pending');

  const final = await waitForStatus(worker.url, 'still-running');
  expect(final.status).toBe('completed');
  expect(final.result.images[0].filename).toMatch(/^resumed_/);
  await waitForStatus(worker.url, 'behind');
  expect(sim.prompts.map((p) => p.prompt_id)[0]).toBe(promptId);
  expect(submittedPrefixes(sim.prompts).map((p) => p.replace(/_[0-9a-f]{8}$/, ''))).toEqual(['resumed', 'behind']);
  // Single flight: the job behind was submitted only once the resumed one had finished.
  expect(sim.prompts[1]!.at).toBeGreaterThanOrEqual(final.completed_at * 1000 - 5);
});

test('unknown to ComfyUI: run again once, ahead of the jobs that were waiting', async () => {
  const { store, dbPath } = previousProcess();
  await store.insert({
    id: 'never-sent',
    source: 'http',
    contract: 'worker-comfyui',
    sync: false,
    spec: spec(saveWorkflow('again')),
  });
  await store.insert({
    id: 'waiting',
    source: 'http',
    contract: 'worker-comfyui',
    sync: false,
    spec: spec(saveWorkflow('waiting')),
  });
  const lostPrompt = await leftRunning(store, false);
  await store.close();

  worker = await start(dbPath);
  expect((await waitForStatus(worker.url, 'never-sent')).status).toBe('completed');
  await waitForStatus(worker.url, 'waiting');
  expect(submittedPrefixes(sim.prompts).map((p) => p.replace(/_[0-9a-f]{8}$/, ''))).toEqual(['again', 'waiting']);
  expect(sim.prompts.map((p) => p.prompt_id)).not.toContain(lostPrompt);
  expect((await worker.store.get('never-sent'))?.attempts).toBe(2);
});

test('unknown to ComfyUI after it was already run again once: failed with a clear reason, not sent', async () => {
  const { store, dbPath } = previousProcess();
  await store.insert({
    id: 'twice-lost',
    source: 'http',
    contract: 'worker-comfyui',
    sync: false,
    spec: spec(saveWorkflow('twice')),
  });
  await leftRunning(store, false);
  await store.requeue('twice-lost');
  await leftRunning(store, false);
  expect((await store.get('twice-lost'))?.attempts).toBe(2);
  await store.close();

  worker = await start(dbPath);
  const final = await waitForStatus(worker.url, 'twice-lost');
  expect(final).toMatchObject({ status: 'failed', error_code: 'prompt_lost' });
  expect(final.error).toContain('already been run again once');
  expect(sim.prompts).toHaveLength(0);
});

test("finished with an execution error in /history: failed with ComfyUI's error", async () => {
  const { store, dbPath } = previousProcess();
  const wf: Workflow = {
    '1': { class_type: 'EmptyImage', inputs: { width: 64, height: 64, batch_size: 2, color: 0 } },
    '2': { class_type: 'EmptyImage', inputs: { width: 64, height: 64, batch_size: 3, color: 0 } },
    '3': { class_type: 'ImageBlend', inputs: { image1: ['1', 0], image2: ['2', 0], blend_factor: 0.5, blend_mode: 'normal' } },
    '4': { class_type: 'SaveImage', inputs: { images: ['3', 0], filename_prefix: 'blend' } },
  };
  await store.insert({ id: 'errored', source: 'http', contract: 'worker-comfyui', sync: false, spec: spec(wf) });
  const promptId = await leftRunning(store, true);
  await until(async () => (await historyOf(promptId)) !== undefined, 5_000, 'prompt finished');
  await store.close();

  worker = await start(dbPath);
  const final = await waitForStatus(worker.url, 'errored');
  expect(final).toMatchObject({ status: 'failed', error_code: 'execution_error' });
  expect(final.error_details).toMatchObject({ node_id: '3', node_type: 'ImageBlend' });
  expect(sim.prompts).toHaveLength(1);
});

test('still queued but past its deadline: its prompt is taken out of ComfyUI and the job times out', async () => {
  sim.setNodeDelay({ ImageScale: 1_000, '*': 2 });
  let now = Date.now() - 3_600_000;
  const { store, dbPath } = previousProcess(() => now);
  await store.insert({ id: 'late', source: 'http', contract: 'worker-comfyui', sync: false, spec: spec(slowWorkflow('late')) });
  const promptId = await leftRunning(store, true);
  await store.close();
  now = Date.now();

  worker = await start(dbPath, { JOB_TIMEOUT_S: '600' });
  const final = await waitForStatus(worker.url, 'late');
  expect(final).toMatchObject({ status: 'failed', error_code: 'timeout' });
  expect(final.error).toContain('JOB_TIMEOUT_S');
  expect(sim.requests.some((r) => r.method === 'POST' && (r.path === '/interrupt' || r.path === '/queue'))).toBe(true);
  await until(async () => (await historyOf(promptId)) !== undefined, 5_000, 'interrupted prompt left ComfyUI');
  expect((await historyOf(promptId)).status.messages.some((m: [string]) => m[0] === 'execution_interrupted')).toBe(true);
});

test('pending synchronous jobs are cancelled at startup (their caller is gone); pending async ones run', async () => {
  const { store, dbPath } = previousProcess();
  await store.insert({ id: 'sync-orphan', source: 'http', contract: 'wrapper', sync: true, spec: spec(saveWorkflow('orphan')) });
  await store.insert({
    id: 'async-kept',
    source: 'http',
    contract: 'worker-comfyui',
    sync: false,
    spec: spec(saveWorkflow('kept')),
  });
  await store.close();

  worker = await start(dbPath);
  expect((await waitForStatus(worker.url, 'async-kept')).status).toBe('completed');
  const orphan = await callJson('GET', `${worker.url}/result/sync-orphan`);
  expect(orphan.status).toBe(499);
  expect(orphan.body).toMatchObject({ status: 'cancelled', error: { code: 'client_disconnected' } });
  expect(orphan.body.message).toContain('the worker restarted before this synchronous job ran');
  expect(submittedPrefixes(sim.prompts).some((p) => p.startsWith('orphan'))).toBe(false);
});

test('ComfyUI down at startup: recovery waits for it; ComfyUI lost the prompt, so it runs again once', async () => {
  const { store, dbPath } = previousProcess();
  await store.insert({
    id: 'left-a',
    source: 'http',
    contract: 'worker-comfyui',
    sync: false,
    spec: spec(saveWorkflow('left_a')),
  });
  await leftRunning(store, true);
  await store.insert({
    id: 'left-b',
    source: 'http',
    contract: 'worker-comfyui',
    sync: false,
    spec: spec(saveWorkflow('left_b')),
  });
  await store.close();
  await until(async () => (await historyOf(sim.prompts[0]!.prompt_id)) !== undefined, 5_000, 'prompt finished');
  await sim.crash();

  worker = await start(dbPath, { COMFY_READY_TIMEOUT_S: '30' }, false);
  await new Promise((r) => setTimeout(r, 300));
  expect((await callJson('GET', `${worker.url}/status/left-a`)).body.status).toBe('running');
  // ComfyUI restarted and lost its history: the job is unknown to it and runs again, once.
  await sim.restart();
  expect((await waitForStatus(worker.url, 'left-a')).status).toBe('completed');
  expect((await worker.store.get('left-a'))?.attempts).toBe(2);
  await waitForStatus(worker.url, 'left-b');
  const prompts = submittedPrefixes(sim.prompts).map((p) => p.replace(/_[0-9a-f]{8}$/, ''));
  expect(prompts).toEqual(['left_a', 'left_a', 'left_b']);
  expect(new Set(sim.prompts.map((p) => p.prompt_id)).size).toBe(3);
});

test('a leftover cancelled while ComfyUI is away ends at once and is not recovered later', async () => {
  const { store, dbPath } = previousProcess();
  await store.insert({
    id: 'cancel-me',
    source: 'http',
    contract: 'worker-comfyui',
    sync: false,
    spec: spec(saveWorkflow('cancel_me')),
  });
  await leftRunning(store, false);
  await store.close();
  await sim.crash();

  worker = await start(dbPath, {}, false);
  const res = await postJson(`${worker.url}/cancel/cancel-me`, {});
  expect(res.body).toEqual({ message: 'Successfully cancelled request cancel-me', status: 'cancelled' });
  expect((await callJson('GET', `${worker.url}/status/cancel-me`)).body.status).toBe('cancelled');
  await sim.restart();
  await until(() => worker!.comfy.isReady, 10_000, 'ComfyUI back');
  const after = (await postJson(`${worker.url}/run`, { workflow: saveWorkflow('after') })).body.job_id;
  await waitForStatus(worker.url, after);
  expect(submittedPrefixes(sim.prompts).some((p) => p.startsWith('cancel_me'))).toBe(false);
  expect((await callJson('GET', `${worker.url}/status/cancel-me`)).body.status).toBe('cancelled');
});

test('a completed job whose row cannot be written after its caller was answered stays running, and the next start completes it without running it again', async () => {
  const dbPath = path.join(tempDir('recovery-'), 'jobs.db');
  const env = { SQLITE_DB_PATH: dbPath, JOB_SECRETS_KEY: SECRETS_KEY };
  worker = await startTestWorker(sim.url, env, true, { captureLogs: true });
  const first = worker;
  const store = first.store as SqliteJobStore;
  const finish = store.finish.bind(store);
  // The disk refuses the write that ends the job (once), after the caller's answer has gone.
  first.events.once('completing', () => {
    store.finish = async () => {
      store.finish = finish;
      throw Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' });
    };
  });
  const answer = await postJson(`${first.url}/generate/sync`, {
    input: { request_id: 'unwritten-1', workflow_json: saveWorkflow('unwritten') },
  });
  expect(answer.status).toBe(200);
  expect(answer.body).toMatchObject({ status: 'completed' });
  expect(Buffer.from(answer.body.output[0].data, 'base64').subarray(0, 8).equals(PNG_MAGIC)).toBe(true);
  await until(() => first.logs.some((l) => String(l.msg).includes('could not be recorded')), 5_000, 'the failed write logged');
  expect((await first.queue.get('unwritten-1'))?.status).toBe('running');
  await first.stop();

  worker = await startTestWorker(sim.url, env);
  const done = await waitForStatus(worker.url, 'unwritten-1', ['completed'], 10_000);
  expect(done.status).toBe('completed');
  expect(submittedPrefixes(sim.prompts).filter((p) => p.startsWith('unwritten'))).toHaveLength(1);
});
