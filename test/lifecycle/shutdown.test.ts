// SIGTERM/SIGINT on the built worker as a real process (test/support/process.ts) against the
// simulator: no new job is admitted, every caller waiting on its connection gets an HTTP answer,
// the running job finishes within SHUTDOWN_GRACE_S or is left for the next start, exit 0. A signal
// during startup is a clean stop too.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { startSimulator, type Simulator } from '../../simulator';
import { spawnWorker, WORKER_MAIN } from '../support/process';
import { tempDir } from '../support/tmp';
import { getJson, postJson, until } from '../support/worker';
import { saveWorkflow, slowWorkflow } from '../support/workflows';

let sim: Simulator;
let dbPath: string;

beforeEach(async () => {
  sim = await startSimulator({ nodeDelayMs: { ImageScale: 1_500, '*': 1 } });
  dbPath = path.join(tempDir('shutdown-'), 'jobs.db');
});
afterEach(async () => {
  await sim.close();
});

const env = (extra: Record<string, string> = {}) => ({
  WORKER_MODE: 'http',
  COMFYUI_API_BASE: sim.url,
  SQLITE_DB_PATH: dbPath,
  ...extra,
});

type Answer = { status: number; body: any; headers: Headers } | { error: string };
const sync = (url: string, id: string, workflow: unknown): Promise<Answer> =>
  postJson(`${url}/generate/sync`, { input: { request_id: id, workflow_json: workflow } }).catch((err: Error) => ({
    error: `${err.message}: ${String((err.cause as Error | undefined)?.message)}`,
  }));

describe('SIGTERM with one job running and two synchronous callers queued behind it', () => {
  test('the running job finishes, every caller gets an HTTP answer, new jobs get 503, exit 0', async () => {
    const worker = await spawnWorker(env());
    const running = sync(worker.url, 'running', slowWorkflow('run'));
    await until(() => sim.prompts.length === 1, 10_000, 'the first prompt to run');
    const queued = [sync(worker.url, 'queued-1', saveWorkflow('q1')), sync(worker.url, 'queued-2', saveWorkflow('q2'))];
    // Both wait behind the running job (one may already wait in ComfyUI's own queue).
    for (const id of ['queued-1', 'queued-2']) {
      await until(async () => (await getJson(`${worker.url}/result/${id}`)).status === 200, 5_000, `${id} admitted`);
    }
    worker.child.kill('SIGTERM');
    await until(() => worker.output().includes('"stopping"'), 5_000, 'the stop to begin');
    const refused = await postJson(`${worker.url}/generate`, { input: { workflow_json: saveWorkflow('late') } });
    expect(refused.status).toBe(503);
    expect(refused.body.error.code).toBe('worker_stopping');
    expect(refused.headers.get('retry-after')).toBe('5');
    const health = await getJson(`${worker.url}/health`);
    expect([health.status, health.body.status]).toEqual([503, 'stopping']);

    const first = await running;
    expect(first).toMatchObject({ status: 200, body: { id: 'running', status: 'completed' } });
    for (const answer of await Promise.all(queued)) {
      // Taken early into ComfyUI's queue it may finish too; otherwise it is answered with a 503.
      expect('status' in answer && [200, 503]).toContain('status' in answer ? answer.status : answer);
      if ('status' in answer && answer.status === 503) {
        expect(answer.body).toMatchObject({ status: 'failed', error: { code: 'worker_stopping' } });
        expect(answer.headers.get('retry-after')).toBe('5');
      }
    }
    expect(await worker.exited).toEqual({ code: 0, signal: null });
    expect(worker.output()).toContain('"worker stopped"');
  });

  test('a job that outlasts SHUTDOWN_GRACE_S is left for the next start, its caller answered 503, exit 0', async () => {
    sim.setNodeDelay({ ImageScale: 5_000, '*': 1 });
    const worker = await spawnWorker(env({ SHUTDOWN_GRACE_S: '0.5' }));
    const running = sync(worker.url, 'long', slowWorkflow('long'));
    const queued = sync(worker.url, 'behind', saveWorkflow('behind'));
    await until(() => sim.prompts.length >= 1, 10_000, 'the first prompt to run');
    worker.child.kill('SIGINT');
    const [first, second] = await Promise.all([running, queued]);
    expect(first).toMatchObject({ status: 503, body: { error: { code: 'worker_stopping' } } });
    expect(second).toMatchObject({ status: 503 });
    expect(await worker.exited).toEqual({ code: 0, signal: null });
    expect(worker.output()).toContain('left as they are, the next start recovers them');
  });
});

test('SIGTERM while the worker is starting exits 0', async () => {
  const child = spawn(process.execPath, [WORKER_MAIN, '--simulate'], {
    env: { PATH: process.env.PATH ?? '', API_HOST: '127.0.0.1', API_PORT: '0', LOG_LEVEL: 'info', SQLITE_DB_PATH: dbPath },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<[number | null, string | null]>((resolve) => child.once('exit', (c, s) => resolve([c, s])));
  // The simulator line comes before the worker starts: the signal lands during startup.
  child.stderr.on('data', (chunk: Buffer) => {
    if (chunk.toString().includes('--simulate')) child.kill('SIGTERM');
  });
  expect(await exited).toEqual([0, null]);
});
